"""When a bearer token stops working (SPEC §3 Auth): TOKEN_TTL_MINUTES after it was issued, or at its logout.

Pure rules, no database: issuing a token, the check on every request and the
logout all ask here. A token is expired from the moment `now >= expires_at`:
at `expires_at` minus a microsecond it still works, at `expires_at` it does
not — the convention of a stale payment (`now - created_at >= timeout`) and
of an Idempotency-Key's 24 hours. A logged-out token is refused whatever its
expiry says.
"""

import enum
from datetime import datetime, timedelta


class TokenState(enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def expires_at(issued_at: datetime, ttl_minutes: float) -> datetime:
    """When a token issued at `issued_at` stops working: `ttl_minutes` later, rounded up to the millisecond."""
    exact = issued_at + timedelta(minutes=ttl_minutes)
    # Answers give times to the millisecond (SPEC §2): kept at that precision, the `expires_at` a client
    # is told is the very instant the token stops working. Rounded up, so it never works less than the TTL.
    return exact + timedelta(microseconds=-exact.microsecond % 1000)


def state(expires: datetime, revoked_at: datetime | None, now: datetime) -> TokenState:
    """What a token is at `now`: a revocation comes first, then the expiry."""
    if revoked_at is not None:
        return TokenState.REVOKED
    if now >= expires:
        return TokenState.EXPIRED
    return TokenState.ACTIVE
