"""Registration, tokens and logout."""

from datetime import timedelta

from flask import Blueprint, current_app, request

from persistence import accounts
from persistence.login_throttle import TooManyFailures
from web.auth import current_user, require_token
from web.clock import now
from web.errors import ApiError
from web.requests import parse
from web.responses import Registered, Token
from web.schemas import Credentials, Empty, Registration

bp = Blueprint("accounts", __name__, url_prefix="/api/auth")
# The one endpoint under /api/auth that needs a token: the token it revokes.
session_bp = require_token(Blueprint("sessions", __name__, url_prefix="/api/auth"))


def _ttl() -> float:
    return current_app.config["TOKEN_TTL_MINUTES"]


@bp.post("/register")
def register():
    """Create an account and return its first token."""
    body = parse(Registration)
    user, issued = accounts.register(body.email, body.password, now=now(), ttl_minutes=_ttl(),
                                     hash_method=current_app.config["PASSWORD_HASH_METHOD"])
    return Registered(user_id=user.id, email=user.email, token=issued.token, expires_at=issued.expires_at).body(), 201


@bp.post("/token")
def token():
    """Exchange email and password for a new bearer token."""
    body = parse(Credentials)
    config = current_app.config
    limits = accounts.LoginLimits(config["LOGIN_MAX_FAILURES_PER_EMAIL"], config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
                                  timedelta(minutes=config["LOGIN_FAILURE_WINDOW_MINUTES"]))
    try:
        issued = accounts.log_in(body.email, body.password, address=request.remote_addr or "unknown", now=now(),
                                 limits=limits, ttl_minutes=_ttl())
    except TooManyFailures as exc:
        raise ApiError(429, "Too Many Requests", "Too many failed logins for this email or address; retry in "
                       f"{exc.retry_after_seconds} seconds.", headers={"Retry-After": str(exc.retry_after_seconds)},
                       reason="too_many_failed_logins") from None
    return Token(token=issued.token, expires_at=issued.expires_at).body()


@session_bp.post("/logout")
def logout():
    """Log out: revoke the bearer token sent, at once on every process.

    Only that token: the user's other tokens keep working. The row is kept, with `revoked_at`.
    """
    parse(Empty)
    accounts.log_out(current_user(), now=now())
    answer = current_app.response_class(status=204)
    del answer.headers["Content-Type"]  # no body, so no type (Flask would say text/html)
    return answer
