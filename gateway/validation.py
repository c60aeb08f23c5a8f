"""Reading request bodies: one JSON object, each field checked, every error naming field and value."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import request

from shared.errors import BadRequest, NotFound, PayloadTooLarge
from shared.uploads import is_owned_key

MAX_JSON_BYTES = 64 * 1024
CATEGORIES = ("auto", "upper", "lower", "overall")
# The events' `$defs/id` and `$defs/key` patterns (cloudevents-schemas/*.json).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-](?!.*\.\.)(?!.*//)[A-Za-z0-9._~+=@,/-]*$")
_MISSING = object()


def show(value: Any) -> str:
    """A value for an error message, shortened."""
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def json_body() -> dict[str, Any]:
    """The request's JSON object; 400 for anything else (wrong type, bad JSON, not an object)."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"the JSON body is {request.content_length} bytes; at most {MAX_JSON_BYTES} are allowed")
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


def only_fields(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """400 naming the first field that is not allowed."""
    allowed = set(allowed)
    for name in body:
        if name not in allowed:
            raise BadRequest(
                f"field {name!r} cannot be set here; allowed: {', '.join(sorted(allowed))}", field=name
            )


def pick(body: Mapping[str, Any], *names: str) -> tuple[str, Any]:
    """The first of `names` present in the body (name, value), or (names[0], _MISSING)."""
    for name in names:
        if name in body:
            return name, body[name]
    return names[0], _MISSING


def string(
    body: Mapping[str, Any], *names: str, required: bool = True, max_len: int = 255, secret: bool = False
) -> str | None:
    """A non-empty string field (first of several spellings); None if optional and absent."""
    name, value = pick(body, *names)
    if value is _MISSING or (value is None and not required):
        if required:
            raise BadRequest(f"{name} is required", field=name)
        return None
    shown = "a value" if secret else show(value)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string, got {type(value).__name__} {shown}", field=name)
    if not value.strip():
        raise BadRequest(f"{name} must not be empty", field=name)
    if len(value) > max_len:
        raise BadRequest(f"{name} must be at most {max_len} characters, got {len(value)}", field=name)
    return value


def integer(body: Mapping[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRequest(f"{name} must be an integer from {lo} to {hi}, got {show(value)}", field=name)
    return value


def number(body: Mapping[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise BadRequest(f"{name} must be a number from {lo:g} to {hi:g}, got {show(value)}", field=name)
    return float(value)


def boolean(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false, got {show(value)}", field=name)
    return value


def choice(body: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return default
    if value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, got {show(value)}", field=name)
    return value  # type: ignore[no-any-return]


def owned_key(user_id: str, name: str, value: Any) -> str:
    """A storage key under one of the caller's prefixes (uploads/, outputs/weaver/, outputs/tailor/)."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a storage key string, got {show(value)}", field=name)
    if len(value) > 1024 or not KEY_PATTERN.match(value) or not is_owned_key(user_id, value):
        raise BadRequest(
            f"{name} {show(value)} is not one of your storage keys "
            f"(uploads/{user_id}/..., outputs/weaver/{user_id}/... or outputs/tailor/{user_id}/...)",
            field=name,
        )
    return value


def key_field(body: Mapping[str, Any], user_id: str, *names: str, required: bool = True) -> str | None:
    name, value = pick(body, *names)
    if value is _MISSING or value is None:
        if required:
            raise BadRequest(f"{name} is required", field=name)
        return None
    return owned_key(user_id, name, value)


def check_id(value: Any, what: str) -> str:
    """A path or body id that can exist; anything else is as unknown as a missing row (404)."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise NotFound(f"{what} {show(value)} does not exist")
    return value
