"""Reading request bodies: one JSON object, checked by its contract model (shared/contracts/rest.py).

Every refusal names the field and the value: `{"error", "message", "code", "field"}`.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from flask import request

from shared.contracts.base import Contract, show
from shared.contracts.fields import ID_PATTERN
from shared.errors import BadRequest, NotFound, PayloadTooLarge

__all__ = ["MAX_JSON_BYTES", "check_id", "json_body", "parse_body", "show"]

MAX_JSON_BYTES = 64 * 1024
_ID = re.compile(ID_PATTERN)
M = TypeVar("M", bound=Contract)


def json_body(max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object; 400 for anything else (wrong type, bad JSON, not an object)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"the JSON body is {request.content_length} bytes; at most {max_bytes} are allowed")
    if not request.is_json:
        raise BadRequest(
            f"the body must be a JSON object sent with Content-Type: application/json, "
            f"got Content-Type {request.mimetype or 'none'!r}"
        )
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        if data is None:
            raise BadRequest("the body is not valid JSON; a JSON object was expected")
        raise BadRequest(f"the body must be a JSON object, got {type(data).__name__} {show(data)}")
    return data


def parse_body(model: type[M], **context: Any) -> M:
    """The request's JSON body as `model` (context, e.g. user_id, reaches its validators)."""
    return model.parse(json_body(), context=context)


def check_id(value: Any, what: str) -> str:
    """A path or body id that can exist; anything else is as unknown as a missing row (404)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise NotFound(f"{what} {show(value)} does not exist")
    return value
