"""The errors an event can raise, and the `{"field", "message", "value"}` problems they list."""

from __future__ import annotations

import json
from typing import Any, Final

from shared.errors import BadRequest
from shared.event_types import ALL_TYPES

MAX_VALUE_CHARS: Final = 120


class InvalidEvent(BadRequest):
    """HTTP 400: a malformed event or an attribute with a bad value (never retried)."""

    code = "invalid_event"


class UnknownEventType(InvalidEvent):
    """HTTP 400: an event type Proteus does not know."""

    code = "unknown_event_type"


class InvalidEventData(InvalidEvent):
    """HTTP 400: the event's data breaks its type's JSON Schema."""

    code = "invalid_event_data"


def unknown_type(event_type: Any) -> UnknownEventType:
    """The error for a type that is not in shared.event_types."""
    return UnknownEventType(f"unknown event type {event_type!r}; known types: {', '.join(ALL_TYPES)}", field="type")


def problem(field: str, message: str, value: Any) -> dict[str, Any]:
    """One entry of an InvalidEvent's `details["errors"]`, with long values shortened."""
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        value = value[:MAX_VALUE_CHARS] + "..."
    elif isinstance(value, (dict, list)):
        value = shorten(json.dumps(value))
    return {"field": field, "message": message, "value": value}


def shorten(text: str) -> str:
    """At most 300 characters of `text`, for messages."""
    return text if len(text) <= 300 else text[:300] + "..."


def type_name(value: Any) -> str:
    """JSON's name for a Python value's type, for error messages."""
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )
