"""Reading a request body: bounded, as JSON, into a schema."""

import json
from typing import TypeVar

from flask import g, request
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from web.errors import ApiError

MAX_BODY_BYTES = 64 * 1024
_READ_SIZE = 16 * 1024


def raw_body() -> bytes:
    """The body as sent, read once: over MAX_BODY_BYTES is a 413 and an unreadable one a 400, chunked or not.

    A body with a Content-Length is Werkzeug's (it refuses one declared too long);
    a chunked one is read here, because Werkzeug stops reading it at the limit
    without a word, so a longer body would arrive cut short.
    """
    if "raw_body" not in g:
        try:
            if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
                g.raw_body = _read_at_most(request.environ["wsgi.input"], MAX_BODY_BYTES)
            else:
                g.raw_body = request.get_data(cache=True)
        except HTTPException:
            raise
        except Exception:  # the server's own decoder gave up: a malformed chunk, a cut connection
            raise ApiError(400, "Unreadable body", "The request body could not be read (malformed chunked "
                                                   "encoding or a cut connection).") from None
    return g.raw_body


def _read_at_most(stream, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := stream.read(_READ_SIZE):
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def json_object() -> dict:
    """The body as a JSON object; no body at all is `{}`. Another media type is a 415, malformed JSON a 400."""
    raw = raw_body()
    if not raw:
        return {}
    if request.mimetype and not request.is_json:
        raise ApiError(415, "Unsupported Media Type", "Send the body as application/json.")
    try:
        # Decoded first: json.loads would take bytes with a byte-order mark as if it were not there.
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: nesting too deep
        raise ApiError(400, "Malformed JSON", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid request", "The request body must be a JSON object.",
                       fields={"body": "must be a JSON object"})
    # PostgreSQL cannot store NUL in text: refuse it here rather than fail in the driver (a 500).
    if bad := {str(k).replace("\x00", "\\u0000"): "must not contain the NUL character (\\u0000)"
               for k, v in data.items() if _contains_nul(k) or _contains_nul(v)}:
        raise ApiError(400, "Invalid request", "One or more fields are invalid.", fields=bad)
    return data


def _contains_nul(value) -> bool:
    """Whether any string in a parsed JSON value holds a NUL; iterative, so any nesting depth is fine."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M]) -> M:
    """Validate the body against `model`; pydantic's errors become a 400 naming each field."""
    return model.model_validate(json_object())
