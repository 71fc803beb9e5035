"""Users and their bearer tokens."""

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from machines.ids import new_uuid
from persistence import login_throttle
from persistence.db import db
from persistence.errors import BadCredentials, Conflict
from persistence.models import ApiToken, User
from persistence.uow import UnitOfWork, unit_of_work

# Checked against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


DEFAULT_HASH_METHOD = "scrypt"


def _new_user(email: str, password: str, *, now: datetime, is_admin: bool, hash_method: str) -> User:
    # Hashing takes ~100 ms: done before the unit of work, which on SQLite holds the write lock.
    return User(id=new_uuid(), email=normalise_email(email),
                password_hash=generate_password_hash(password, method=hash_method), is_admin=is_admin,
                created_at=now)


def _add_user(uow: UnitOfWork, user: User) -> None:
    uow.session.add(user)
    try:
        uow.session.flush()
    except IntegrityError:
        raise Conflict("email_taken", "An account with this email already exists.") from None


def create_user(email: str, password: str, *, now: datetime, is_admin: bool = False,
                hash_method: str = DEFAULT_HASH_METHOD) -> User:
    """Create a user; a taken email is a Conflict."""
    user = _new_user(email, password, now=now, is_admin=is_admin, hash_method=hash_method)
    with unit_of_work() as uow:
        _add_user(uow, user)
        uow.commit()
    return user


def _issue_token(uow: UnitOfWork, user_id: str, *, now: datetime) -> str:
    """Add a new bearer token for the user and return it; only its hash is kept."""
    token = secrets.token_urlsafe(32)
    uow.session.add(ApiToken(token_hash=_token_digest(token), user_id=user_id, created_at=now))
    return token


def register(email: str, password: str, *, now: datetime,
             hash_method: str = DEFAULT_HASH_METHOD) -> tuple[User, str]:
    user = _new_user(email, password, now=now, is_admin=False, hash_method=hash_method)
    with unit_of_work() as uow:
        _add_user(uow, user)
        token = _issue_token(uow, user.id, now=now)
        uow.commit()
    return user, token


@dataclass(frozen=True)
class LoginLimits:
    per_email: int = 5
    per_address: int = 50
    window: timedelta = timedelta(minutes=15)


def log_in(email: str, password: str, *, address: str, now: datetime, limits: LoginLimits) -> str:
    """A new token for good credentials; failures are counted per email and per address."""
    email_key, address_key = f"email:{normalise_email(email)}", f"addr:{address}"
    login_throttle.check([login_throttle.Limit(email_key, limits.per_email),
                          login_throttle.Limit(address_key, limits.per_address)], now=now, window=limits.window)
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    good = check_password_hash(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    with unit_of_work() as uow:
        if not good:
            login_throttle.record_failure(uow, [email_key, address_key], now=now, window=limits.window)
            uow.commit()
            raise BadCredentials()
        login_throttle.forget(uow, email_key)
        token = _issue_token(uow, user.id, now=now)
        uow.commit()
    return token


@dataclass(frozen=True)
class Caller:
    """Who a bearer token speaks for: all a request needs of its user."""

    id: str
    is_admin: bool


# Asked on every authenticated request: built once (SQLAlchemy then keeps its compiled
# form), and plain columns rather than a User object to load.
_CALLER_BY_TOKEN = (select(User.id, User.is_admin).join(ApiToken, ApiToken.user_id == User.id)
                    .where(ApiToken.token_hash == bindparam("p_token_hash")))


# Whom a token speaks for never changes: tokens are never reassigned or revoked and `is_admin`
# is set once, at creation (README, Decisions). So each worker remembers the callers it has
# seen, which takes a round trip off every authenticated request. The age cap bounds how long
# a revocation, should one ever be added, could go unnoticed; the size cap bounds the memory.
CALLER_MEMORY_SECONDS = 60.0
CALLER_MEMORY_SIZE = 10_000
_known_callers: dict[str, tuple[float, Caller]] = {}


def user_for_token(token: str) -> Caller | None:
    digest = _token_digest(token)
    known = _known_callers.get(digest)
    if known is not None and time.monotonic() - known[0] < CALLER_MEMORY_SECONDS:
        return known[1]
    row = db.session.execute(_CALLER_BY_TOKEN, {"p_token_hash": digest}).first()
    if row is None:
        return None  # an unknown token is asked again every time: nothing to remember
    if len(_known_callers) >= CALLER_MEMORY_SIZE:
        _known_callers.clear()
    caller = _known_callers[digest] = (time.monotonic(), Caller(row.id, row.is_admin))
    return caller[1]
