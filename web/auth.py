"""Bearer-token authentication for the /api/ blueprints."""

from flask import Blueprint, g, request

from persistence.accounts import Caller, caller_for_token
from web import path_ids
from web.clock import now
from web.errors import UNAUTHORIZED, ApiError


def _authenticate() -> None:
    if request.method == "OPTIONS":  # answered by Flask with the route's Allow header; it reveals nothing
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Unauthorized", "Send Authorization: Bearer <token>.", headers=UNAUTHORIZED)
    # An unknown, logged-out or expired token raises here: a 401 (web/errors.py).
    g.user = caller_for_token(token.strip(), now=now())


def require_token(blueprint: Blueprint) -> Blueprint:
    """Every endpoint of `blueprint` needs a valid bearer token, checked before anything about its path ids."""
    blueprint.before_request(_authenticate)
    path_ids.check_after_earlier_hooks(blueprint)
    return blueprint


def require_admin(blueprint: Blueprint, what: str) -> Blueprint:
    """Every endpoint of `blueprint` is for admins only.

    Without a valid token it is a 401, for anyone else a 403 ("Only an administrator
    can <what>."), both before anything about its path ids.
    """
    blueprint.before_request(_authenticate)

    @blueprint.before_request
    def _admins_only() -> None:
        if request.method != "OPTIONS" and not g.user.is_admin:
            raise ApiError(403, "Forbidden", f"Only an administrator can {what}.")

    path_ids.check_after_earlier_hooks(blueprint)
    return blueprint


def current_user() -> Caller:
    return g.user


def actor() -> str:
    return f"user:{g.user.id}"
