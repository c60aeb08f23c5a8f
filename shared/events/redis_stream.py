"""The Redis stream binding: one event per entry, `{"event": <structured JSON>, "type": <type>}`.

The `type` field repeats the event type for people reading the stream with XRANGE.
"""

from __future__ import annotations

from collections.abc import Mapping

from cloudevents.core.v1.event import CloudEvent

from shared.events.errors import InvalidEvent
from shared.events.event import FORMAT, parse_structured


def to_stream_fields(event: CloudEvent) -> dict[str, str]:
    """The stream entry for an event: `{"event": <structured JSON>, "type": <type>}`."""
    return {"event": FORMAT.write(event).decode("utf-8"), "type": event.get_type()}


def from_stream_fields(
    fields: Mapping[str, str] | Mapping[bytes, bytes] | Mapping[str | bytes, str | bytes],
) -> CloudEvent:
    """The event in a stream entry (keys/values as str or bytes); InvalidEvent if malformed."""
    decoded = {_text(k): _text(v) for k, v in fields.items()}
    if "event" not in decoded:
        raise InvalidEvent(
            f"stream entry has no 'event' field (fields: {', '.join(sorted(decoded)) or 'none'})",
            field="event",
        )
    return parse_structured(decoded["event"].encode("utf-8"))


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
