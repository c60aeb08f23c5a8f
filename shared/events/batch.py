"""The HTTP batched content mode (`application/cloudevents-batch+json`) and its reply.

A batch request's body is a JSON array of structured-mode events. Each entry is parsed on
its own, so one malformed entry fails alone. The reply (`application/json`) says per event,
in the request's order, what happened:

    {"results": [{"id": "<event id>", "status": 200},
                 {"id": "<event id>", "status": 400, "code": "invalid_event_data",
                  "message": "...", "retryable": false}]}

`status` is the HTTP status the event would have had on its own (2xx: handled).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from shared.errors import ProteusError, UnsupportedMediaType
from shared.events.errors import InvalidEvent, type_name
from shared.events.event import FORMAT, JSON_MEDIA_TYPE, media_type, parse_structured
from shared.events.http import BATCH_MEDIA_TYPE


def is_batch(headers: Mapping[str, str]) -> bool:
    """Whether a request uses the batched content mode."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    return media_type(lowered.get("content-type", "")) == BATCH_MEDIA_TYPE


def to_http_batch(events: Sequence[CloudEvent]) -> tuple[dict[str, str], bytes]:
    """Batched mode: `Content-Type: application/cloudevents-batch+json`, a JSON array of events."""
    body = b"[" + b",".join(FORMAT.write(event) for event in events) + b"]"
    return {"content-type": BATCH_MEDIA_TYPE}, body


def from_http_batch(headers: Mapping[str, str], body: bytes) -> list[CloudEvent | InvalidEvent]:
    """The entries of a batch request, each an event or the InvalidEvent saying why it is not.

    Raises UnsupportedMediaType (415) for another Content-Type and InvalidEvent (400) when
    the body is not a JSON array.
    """
    if not is_batch(headers):
        raise UnsupportedMediaType(f"a batch must carry Content-Type {BATCH_MEDIA_TYPE}", field="content-type")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"batch body is not valid JSON: {exc}", field="body") from None
    if not isinstance(document, list):
        raise InvalidEvent(f"a batch must be a JSON array of events, got {type_name(document)}", field="body")
    entries: list[CloudEvent | InvalidEvent] = []
    for item in document:
        try:
            entries.append(parse_structured(json.dumps(item).encode("utf-8")))
        except InvalidEvent as exc:
            entries.append(exc)
    return entries


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one event of a batch."""

    id: str | None
    status: int
    code: str | None = None
    message: str | None = None
    retryable: bool = False

    @classmethod
    def handled(cls, event_id: str | None, status: int = 200) -> BatchOutcome:
        return cls(event_id, status)

    @classmethod
    def failed(cls, event_id: str | None, error: ProteusError) -> BatchOutcome:
        return cls(event_id, error.status, error.code, error.message, error.retryable)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if not self.ok:
            body.update(code=self.code, message=self.message, retryable=self.retryable)
        return body


def batch_reply(outcomes: Sequence[BatchOutcome]) -> tuple[dict[str, str], bytes]:
    """The reply to a batch request: per event, in order, its status (and error)."""
    body = json.dumps({"results": [o.to_dict() for o in outcomes]}).encode("utf-8")
    return {"content-type": JSON_MEDIA_TYPE}, body


def read_batch_reply(body: bytes, expected: int) -> list[BatchOutcome]:
    """The outcomes in a batch reply; ValueError when it is not one for `expected` events."""
    document = json.loads(body)
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list) or len(results) != expected:
        raise ValueError(f"a batch reply must list {expected} results, got {str(document)[:200]}")
    outcomes = []
    for item in results:
        if not isinstance(item, dict) or not isinstance(item.get("status"), int):
            raise ValueError(f"a batch result needs an integer status, got {str(item)[:200]}")
        outcomes.append(
            BatchOutcome(
                id=item.get("id"),
                status=item["status"],
                code=item.get("code"),
                message=item.get("message"),
                retryable=bool(item.get("retryable", False)),
            )
        )
    return outcomes
