"""Domain errors the service functions raise; the web layer maps each to a status."""

from datetime import datetime


class NotFound(Exception):
    """No such resource for this caller (another user's resource is not found either)."""

    def __init__(self, what: str):
        super().__init__(f"{what} not found")
        self.what = what


class Conflict(Exception):
    """The request is well formed but the current state refuses it (409).

    `retry_after_seconds` is set when the same request may succeed that much
    later (the web layer sends it as Retry-After); `extra` goes into the body.
    """

    def __init__(self, reason: str, detail: str, error: str = "Conflict", *, retry_after_seconds: int | None = None,
                 **extra):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.error = error
        self.retry_after_seconds = retry_after_seconds
        self.extra = extra


class InvalidFields(Exception):
    """Request fields that parse but are not acceptable (400 with `fields`, and `detail` if one is given)."""

    def __init__(self, fields: dict[str, str], detail: str = "One or more fields are invalid."):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields
        self.detail = detail


class InvalidSignature(Exception):
    """A capture's signature did not verify (400, nothing changes)."""


class BadCredentials(Exception):
    """Unknown email or wrong password (401)."""


class InvalidToken(Exception):
    """A bearer token that is unknown or was logged out (401)."""


class ExpiredToken(Exception):
    """A bearer token past its `expires_at` (401 `token_expired`)."""

    def __init__(self, expires_at: datetime):
        super().__init__(f"expired at {expires_at.isoformat()}")
        self.expires_at = expires_at
