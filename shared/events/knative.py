"""The Knative RedisStreamSource binding: the Proteus event inside its wrapper event.

Knative eventing-redis (source/pkg/adapter/adapter.go) sends one event per stream entry,
with this type, source "<address>/<stream>", id = the entry id, and data = the entry's
field/value list as a JSON array ["f1", "v1", "f2", "v2"] (values may arrive base64-encoded,
as Go marshals []byte).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent

from shared.events.errors import InvalidEvent
from shared.events.redis_stream import from_stream_fields

REDIS_STREAM_SOURCE_TYPE: Final = "dev.knative.sources.redisstream"


def unwrap_redis_stream_source(event: CloudEvent) -> CloudEvent:
    """The Proteus event inside a Knative RedisStreamSource event (type
    `dev.knative.sources.redisstream`, data `["event", "<json>", "type", "<type>"]`)."""
    data = event.get_data()
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            pass
    fields = _pairs(data)
    if "event" not in fields:
        decoded = _pairs(_b64_all(data))
        fields = decoded if "event" in decoded else fields
    if "event" not in fields:
        raise InvalidEvent(
            f"{REDIS_STREAM_SOURCE_TYPE} event {event.get_id()!r} carries no 'event' field; "
            "its data must be the entry's field/value list",
            field="data",
        )
    return from_stream_fields(fields)


def _pairs(data: Any) -> dict[str, str]:
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items() if isinstance(v, str)}
    if isinstance(data, list) and len(data) % 2 == 0 and all(isinstance(x, str) for x in data):
        return dict(zip(data[0::2], data[1::2]))
    return {}


def _b64_all(data: Any) -> list[str] | None:
    if not isinstance(data, list):
        return None
    try:
        return [base64.b64decode(x, validate=True).decode("utf-8") for x in data]
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError):
        return None
