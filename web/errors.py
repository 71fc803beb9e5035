"""One JSON error envelope for every error, Werkzeug's included."""

import structlog
from flask import Flask, jsonify, request
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from machines import InvalidTransition
from persistence.errors import (BadCredentials, Conflict, ExpiredToken, InvalidFields, InvalidSignature,
                                InvalidToken, NotFound)
from persistence.writer import TransitionConflict
from web.responses import iso

log = structlog.get_logger()

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


class ApiError(Exception):
    """An error answer the views raise directly."""

    def __init__(self, status: int, error: str, detail: str, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status = status
        self.body = {"error": error, "detail": detail, **extra}
        self.headers = headers or {}


def error_response(status_code: int, error: str, detail: str, headers: dict | None = None, /, **extra):
    """The envelope: {"error", "detail", ...extra}; positional-only so `extra` may hold any name."""
    response = jsonify({"error": error, "detail": detail, **extra})
    response.status_code = status_code
    response.headers.update(headers or {})
    return response


def conflict_body(exc: Conflict | InvalidTransition | TransitionConflict) -> dict:
    """The 409 envelope of a refusal by the current state, as the error handlers answer it."""
    if isinstance(exc, Conflict):
        return {"error": exc.error, "detail": exc.detail, "reason": exc.reason, **exc.extra}
    return {"error": "Conflict", "detail": "The resource changed state while the request ran; re-read it.",
            "reason": "state_conflict"}


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors as {field: message}; a body-level error is under `body`."""
    fields: dict[str, str] = {}
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "Unknown field."
        fields.setdefault(name, message)
    return fields


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.body.pop("error"), exc.body.pop("detail"), exc.headers, **exc.body)

    @app.errorhandler(ValidationError)
    def invalid_body(exc: ValidationError):
        return error_response(400, "Invalid request", "One or more fields are invalid.", fields=field_errors(exc))

    @app.errorhandler(InvalidFields)
    def invalid_fields(exc: InvalidFields):
        return error_response(400, "Invalid request", exc.detail, fields=exc.fields)

    @app.errorhandler(InvalidSignature)
    def invalid_signature(exc):
        return error_response(400, "Invalid signature", "The payment signature did not verify; nothing changed.",
                              reason="invalid_signature")

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return error_response(404, "Not found", f"No such {exc.what}.")

    @app.errorhandler(BadCredentials)
    def bad_credentials(exc):
        return error_response(401, "Unauthorized", "Wrong email or password.", UNAUTHORIZED)

    @app.errorhandler(InvalidToken)
    def invalid_token(exc):
        # Unknown and logged out are said alike: neither tells the caller more than "not valid".
        return error_response(401, "Unauthorized", "The bearer token is not valid.", UNAUTHORIZED)

    @app.errorhandler(ExpiredToken)
    def expired_token(exc: ExpiredToken):
        return error_response(401, "Unauthorized", f"The bearer token expired at {iso(exc.expires_at)}; get a new "
                              "one from POST /api/auth/token.", UNAUTHORIZED, reason="token_expired")

    def refused(exc: Conflict | InvalidTransition | TransitionConflict, headers: dict | None = None):
        body = conflict_body(exc)
        return error_response(409, body.pop("error"), body.pop("detail"), headers, **body)

    @app.errorhandler(Conflict)
    def conflict(exc: Conflict):
        if exc.retry_after_seconds is None:
            return refused(exc)
        return refused(exc, {"Retry-After": str(exc.retry_after_seconds)})

    @app.errorhandler(InvalidTransition)
    @app.errorhandler(TransitionConflict)
    def lost_race(exc):
        return refused(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        return error_response(exc.code or 500, exc.name, exc.description or exc.name, headers)

    @app.after_request
    def options_without_html(response):
        # Flask answers OPTIONS itself with 200 and an empty text/html body: say the same with no body at all.
        if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
            response.status_code = 204
            del response.headers["Content-Type"]
        return response

    @app.after_request
    def json_redirect(response):
        # A doubled or missing slash is a routing redirect (308), which Flask answers with Werkzeug's
        # HTML page without calling any error handler: answer it in JSON like everything else.
        if 300 <= response.status_code < 400 and response.mimetype == "text/html":
            location = response.headers.get("Location", "")
            return error_response(response.status_code, HTTP_STATUS_CODES.get(response.status_code, "Redirect"),
                                  f"The resource is at {location}.", {"Location": location})
        return response

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError):
        log.error("database.unavailable", error=type(exc.orig).__name__ if exc.orig else type(exc).__name__)
        return error_response(503, "Service Unavailable", "The database cannot be reached; retry shortly.",
                              {"Retry-After": "1"})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Logged with its traceback; the client never sees internals.
        log.exception("request.unhandled_error")
        return error_response(500, "Internal Server Error", "The server could not complete the request.")
