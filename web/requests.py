"""Reading a JSON request body into a schema."""

import json
from typing import TypeVar

from flask import request
from pydantic import BaseModel

from web.errors import ApiError


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def json_object() -> dict:
    """The body as a JSON object; an empty body is `{}`. Malformed JSON is a 400."""
    raw = request.get_data(cache=True)  # Werkzeug raises 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting too deep
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
