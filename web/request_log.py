"""One `request` log event and one latency observation per request, and the X-Request-ID header."""

import re
import time
import uuid

import structlog
from flask import Flask, Response, g, request, request_started

from web import metrics

log = structlog.get_logger()

REQUEST_ID_HEADER = "X-Request-ID"
_CALLER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # fullmatch: `$` would also match before a final newline
UNMATCHED = "<unmatched>"


def request_id_from(header: str | None) -> str:
    """The caller's id if it is 1-128 letters, digits, '-' or '_'; else a new one."""
    if header is not None and _CALLER_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def register(app: Flask) -> None:
    request_started.connect(_start, app, weak=False)
    app.after_request(_finish)
    app.teardown_request(_forget)


def _start(_sender, **_extra) -> None:
    # A worker thread serves many requests: nothing bound by the last one may leak into this one.
    structlog.contextvars.clear_contextvars()
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.request_started_at = time.perf_counter()
    structlog.contextvars.bind_contextvars(request_id=g.request_id)


def endpoint_label() -> str:
    """The URL rule that served the request ("/api/payments/<transaction_id>/"), never the raw path."""
    return request.url_rule.rule if request.url_rule is not None else UNMATCHED


def _finish(response: Response) -> Response:
    started = g.get("request_started_at")
    if started is None:  # not a request we saw start (cannot happen through the WSGI app)
        return response
    seconds = time.perf_counter() - started
    response.headers[REQUEST_ID_HEADER] = g.request_id
    endpoint = endpoint_label()
    metrics.observe_request(endpoint, request.method, response.status_code, seconds)
    user = g.get("user")
    fields = {"method": request.method, "path": request.path, "endpoint": endpoint,
              "status": response.status_code, "duration_ms": round(seconds * 1000, 2)}
    if user is not None:  # a plain value, not a session object: readable even after a database error
        fields["user_id"] = user.id
    if response.status_code >= 500:
        log.error("request", **fields)
    else:
        log.info("request", **fields)
    return response


def _forget(_exc) -> None:
    # Lines logged between requests (a worker shutting down) belong to no request.
    structlog.contextvars.clear_contextvars()
