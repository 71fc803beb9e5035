"""Registration and tokens."""

from datetime import timedelta

from flask import Blueprint, current_app, request

from persistence import accounts
from persistence.login_throttle import TooManyFailures
from web.clock import now
from web.errors import ApiError
from web.requests import parse
from web.responses import Registered, Token
from web.schemas import Credentials, Registration

bp = Blueprint("accounts", __name__, url_prefix="/api/auth")


@bp.post("/register")
def register():
    """Create an account and return its first token."""
    body = parse(Registration)
    user, token = accounts.register(body.email, body.password, now=now(),
                                    hash_method=current_app.config["PASSWORD_HASH_METHOD"])
    return Registered(user_id=user.id, email=user.email, token=token).body(), 201


@bp.post("/token")
def token():
    """Exchange email and password for a new bearer token."""
    body = parse(Credentials)
    config = current_app.config
    limits = accounts.LoginLimits(config["LOGIN_MAX_FAILURES_PER_EMAIL"], config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
                                  timedelta(minutes=config["LOGIN_FAILURE_WINDOW_MINUTES"]))
    try:
        token = accounts.log_in(body.email, body.password, address=request.remote_addr or "unknown", now=now(),
                                limits=limits)
    except TooManyFailures as exc:
        raise ApiError(429, "Too Many Requests", "Too many failed logins for this email or address; retry in "
                       f"{exc.retry_after_seconds} seconds.", headers={"Retry-After": str(exc.retry_after_seconds)},
                       reason="too_many_failed_logins") from None
    return Token(token=token).body()
