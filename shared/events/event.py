"""Building and parsing one CloudEvent (the SDK's v1 event with JSON data).

`make_event` builds a new event; `parse_structured` reads the structured-mode JSON that both
the HTTP binding and stream entries carry. Every SDK error becomes an InvalidEvent that
names the attribute.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.events.errors import InvalidEvent, problem, type_name
from shared.observability import tracing
from shared.timestamps import parse_timestamp

JSON_MEDIA_TYPE: Final = "application/json"
USER_ID_EXTENSION: Final = "userid"
REQUIRED_ATTRIBUTES: Final = ("id", "source", "type", "specversion")
FORMAT: Final = JSONFormat()


def source_for(component: str) -> str:
    """The `source` attribute of events a component produces, e.g. `/proteus/weave`."""
    return f"/proteus/{component}"


def make_event(
    type: str,
    data: Mapping[str, Any],
    *,
    source: str,
    subject: str | None = None,
    user_id: str | None = None,
    id: str | None = None,
) -> CloudEvent:
    """A new event with JSON data, `time` now, a uuid4 `id` unless given.

    `subject` defaults to `data["job_id"]` and the `userid` extension to `data["user_id"]`
    where the data has them. The event is not validated here: `publish()` and the runtime do.

    Example:
        >>> make_event("dev.proteus.weave.progress", {...}, source="/proteus/weave")
    """
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"data must be a JSON object, got {type_name(data)}", field="data")
    try:
        body = json.loads(json.dumps(dict(data)))
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"data is not JSON-serialisable: {exc}", field="data") from None
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": datetime.now(UTC),
        "datacontenttype": JSON_MEDIA_TYPE,
    }
    subject = subject if subject is not None else _str_or_none(body.get("job_id"))
    user_id = user_id if user_id is not None else _str_or_none(body.get("user_id"))
    if subject is not None:
        attributes["subject"] = subject
    if user_id is not None:
        attributes[USER_ID_EXTENSION] = user_id
    tracing.inject_current(attributes)  # distributed-tracing extension; nothing when tracing is off
    return guard(lambda: CloudEvent(attributes, body))


def event_data(event: BaseCloudEvent) -> dict[str, Any]:
    """The event's data as a dict (a validated event always has one)."""
    data = event.get_data()
    if not isinstance(data, dict):
        raise InvalidEvent(f"data must be a JSON object, got {type_name(data)}", field="data")
    return data


def parse_structured(body: bytes) -> CloudEvent:
    """One structured-mode event (`{"specversion": ..., "data": ...}`); InvalidEvent if malformed."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"structured-mode body is not valid JSON: {exc}", field="body") from None
    if not isinstance(document, dict):
        raise InvalidEvent(f"a structured-mode event must be a JSON object, got {type_name(document)}", field="body")
    require_attributes(document, "")
    check_time(document.get("time"))
    return guard(lambda: FORMAT.read(CloudEvent, body))


def require_attributes(attributes: Mapping[str, Any], prefix: str) -> None:
    """The SDK would invent a missing id or specversion; a received event must carry them."""
    missing = [name for name in REQUIRED_ATTRIBUTES if attributes.get(name) in (None, "")]
    if missing:
        problems = [problem(name, f"is required ({prefix}{name})", None) for name in missing]
        names = ", ".join(f"{prefix}{name}" for name in missing)
        raise InvalidEvent(f"malformed CloudEvent: missing {names}", field=missing[0], errors=problems)


def check_time(value: Any) -> None:
    """A received `time` attribute must be a timestamp with a zone."""
    if value is None or isinstance(value, datetime) and value.tzinfo is not None:
        return
    try:
        parsed = value if isinstance(value, datetime) else parse_timestamp(str(value))
    except ValueError:
        raise InvalidEvent(f"time must be an RFC 3339 timestamp, got {value!r}", field="time") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(f"time must carry a timezone (e.g. 'Z'), got {value!r}", field="time")


def guard(build: Callable[[], BaseCloudEvent]) -> CloudEvent:
    """Run an SDK constructor, turning its errors into InvalidEvent naming the attribute."""
    try:
        return cast(CloudEvent, build())
    except CloudEventValidationError as exc:
        problems = [problem(name, str(err), None) for name, errors in exc.errors.items() for err in errors[:1]]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidEvent(f"malformed CloudEvent: {summary}", field=problems[0]["field"], errors=problems) from None
    except (ValueError, TypeError, AttributeError) as exc:  # e.g. undecodable data_base64
        raise InvalidEvent(f"malformed CloudEvent: {exc.__class__.__name__}: {exc}", field="body") from None


def media_type(content_type: str) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return content_type.split(";", 1)[0].strip().lower()


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
