"""The HTTP binding: binary and structured content modes (a RedisStreamSource event is unwrapped).

Binary mode carries the attributes as `ce-*` headers and the JSON data as the body;
structured mode the whole event as `application/cloudevents+json`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent

from shared.errors import UnsupportedMediaType
from shared.events.errors import InvalidEvent
from shared.events.event import (
    FORMAT,
    JSON_MEDIA_TYPE,
    check_time,
    guard,
    media_type,
    parse_structured,
    require_attributes,
)
from shared.events.knative import REDIS_STREAM_SOURCE_TYPE, unwrap_redis_stream_source

STRUCTURED_MEDIA_TYPE: Final = "application/cloudevents+json"
BATCH_MEDIA_TYPE: Final = "application/cloudevents-batch+json"


def to_http_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Binary mode: attributes as `ce-*` headers, `Content-Type` and the JSON data as body."""
    message = ce_http.to_binary(event, FORMAT)
    return dict(message.headers), message.body


def to_http_structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Structured mode: `Content-Type: application/cloudevents+json`, the whole event as body."""
    message = ce_http.to_structured(event, FORMAT)
    return dict(message.headers), message.body


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a binary- or structured-mode request (and unwrap a RedisStreamSource event).

    Raises UnsupportedMediaType (415) for a Content-Type neither mode accepts and
    InvalidEvent (400) naming the attribute for a malformed event. Does not validate the
    data against its schema: call `validate_event`.
    """
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    content_type = lowered.get("content-type")
    if any(name.startswith("ce-") for name in lowered):
        event = _parse_binary(lowered, body, content_type)
    else:
        kind = media_type(content_type or "")
        if kind == BATCH_MEDIA_TYPE:
            raise UnsupportedMediaType("batched CloudEvents are not supported; send one event", field="content-type")
        if kind != STRUCTURED_MEDIA_TYPE:
            raise UnsupportedMediaType(
                f"no ce-* headers, so a structured-mode event with Content-Type {STRUCTURED_MEDIA_TYPE} "
                f"was expected, got {content_type!r}; for binary mode send ce-specversion, ce-id, "
                f"ce-source and ce-type headers with Content-Type {JSON_MEDIA_TYPE}",
                field="content-type",
            )
        event = parse_structured(body)
    if event.get_type() == REDIS_STREAM_SOURCE_TYPE:
        return unwrap_redis_stream_source(event)
    return event


def _parse_binary(headers: dict[str, str], body: bytes, content_type: str | None) -> CloudEvent:
    if content_type is not None and media_type(content_type) != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"binary-mode CloudEvents must carry Content-Type {JSON_MEDIA_TYPE}, got {content_type!r}",
            field="content-type",
        )
    require_attributes({name[3:]: value for name, value in headers.items() if name.startswith("ce-")}, "ce-")
    check_time(headers.get("ce-time"))
    if body.strip():
        try:
            json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"data is not valid JSON: {exc}", field="data") from None
    if content_type is None:
        headers = dict(headers, **{"content-type": JSON_MEDIA_TYPE})
    message = ce_http.HTTPMessage(headers=headers, body=body)
    return guard(lambda: ce_http.from_binary(message, FORMAT, CloudEvent))
