"""Users and their bearer tokens."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from machines import token_lifetime
from machines.ids import new_uuid
from machines.token_lifetime import TokenState
from persistence import login_throttle
from persistence.db import db
from persistence.errors import BadCredentials, Conflict, ExpiredToken, InvalidToken
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


@dataclass(frozen=True)
class IssuedToken:
    """A new bearer token, as its owner gets it once: the token itself is never stored."""

    token: str
    expires_at: datetime


def _issue_token(uow: UnitOfWork, user_id: str, *, now: datetime, ttl_minutes: float) -> IssuedToken:
    """Add a new bearer token for the user, good for `ttl_minutes`; only its hash is kept."""
    issued = IssuedToken(secrets.token_urlsafe(32), token_lifetime.expires_at(now, ttl_minutes))
    uow.session.add(ApiToken(token_hash=_token_digest(issued.token), user_id=user_id, created_at=now,
                             expires_at=issued.expires_at))
    return issued


def register(email: str, password: str, *, now: datetime, ttl_minutes: float,
             hash_method: str = DEFAULT_HASH_METHOD) -> tuple[User, IssuedToken]:
    user = _new_user(email, password, now=now, is_admin=False, hash_method=hash_method)
    with unit_of_work() as uow:
        _add_user(uow, user)
        issued = _issue_token(uow, user.id, now=now, ttl_minutes=ttl_minutes)
        uow.commit()
    return user, issued


@dataclass(frozen=True)
class LoginLimits:
    per_email: int = 5
    per_address: int = 50
    window: timedelta = timedelta(minutes=15)


def log_in(email: str, password: str, *, address: str, now: datetime, limits: LoginLimits,
           ttl_minutes: float) -> IssuedToken:
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
        issued = _issue_token(uow, user.id, now=now, ttl_minutes=ttl_minutes)
        uow.commit()
    return issued


@dataclass(frozen=True)
class Caller:
    """Who a bearer token speaks for: all a request needs of its user, and which token it came with."""

    id: str
    is_admin: bool
    token_hash: str  # a logout revokes this token, and only this one


# Asked on every authenticated request, of the database every time: a logout on any process holds
# on the next request everywhere, with no memory in a worker to invalidate (README, Decisions: it
# costs one primary-key read per request). Built once, so SQLAlchemy keeps its compiled form, and
# plain columns rather than objects to load.
_TOKEN_AND_CALLER = (select(User.id, User.is_admin, ApiToken.expires_at, ApiToken.revoked_at)
                     .join(ApiToken, ApiToken.user_id == User.id)
                     .where(ApiToken.token_hash == bindparam("p_token_hash")))


def _refuse_unless_active(expires_at: datetime, revoked_at: datetime | None, now: datetime) -> None:
    match token_lifetime.state(expires_at, revoked_at, now):
        case TokenState.REVOKED:
            raise InvalidToken()
        case TokenState.EXPIRED:
            raise ExpiredToken(expires_at)


def caller_for_token(token: str, *, now: datetime) -> Caller:
    """Whom a bearer token speaks for at `now`; InvalidToken if unknown or logged out, ExpiredToken if expired."""
    digest = _token_digest(token)
    row = db.session.execute(_TOKEN_AND_CALLER, {"p_token_hash": digest}).first()
    if row is None:
        raise InvalidToken()
    _refuse_unless_active(row.expires_at, row.revoked_at, now)
    return Caller(row.id, row.is_admin, digest)


def log_out(caller: Caller, *, now: datetime) -> None:
    """Revoke the caller's token, and only that one: recorded in `revoked_at`, the row kept.

    The token is read again under its row lock (SQLite: the write lock), so of two logouts with one
    token, or a logout racing the token's expiry, one revokes it and the other is refused as if it
    came a moment later.
    """
    with unit_of_work() as uow:
        token = uow.session.scalar(select(ApiToken).where(ApiToken.token_hash == caller.token_hash)
                                   .with_for_update().execution_options(populate_existing=True))
        if token is None:
            raise InvalidToken()
        _refuse_unless_active(token.expires_at, token.revoked_at, now)
        token.revoked_at = now
        uow.commit()
