"""CloudEvents as curl sends them (binary `ce-*` headers or a structured JSON document),
reading replies and streams, a notification channel, and the table of invalid events every
function refuses the same way (`INVALID_CASES`, `check_invalid`, `check_valid_pair`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from werkzeug.test import TestResponse

from shared.events import CloudEvent, from_http, from_stream_fields
from shared.routing import prefixed

JSON = "application/json"
STRUCTURED = "application/cloudevents+json"


def binary_request(
    event_type: str,
    data: Any,
    *,
    user_id: str,
    subject: str | None = None,
    event_id: str | None = None,
    content_type: str | None = JSON,
) -> tuple[dict[str, str], bytes]:
    """`curl -H 'ce-...' -H 'Content-Type: application/json' -d '<data>'`."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id or f"curl-{uuid.uuid4().hex[:12]}",
        "ce-type": event_type,
        "ce-source": "/curl",
        "ce-userid": user_id,
    }
    if subject is not None:
        headers["ce-subject"] = subject
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return headers, body


def structured_request(
    event_type: str,
    data: Any,
    *,
    user_id: str,
    subject: str | None = None,
    event_id: str | None = None,
    content_type: str = STRUCTURED,
    drop: tuple[str, ...] = (),
) -> tuple[dict[str, str], bytes]:
    """`curl -H 'Content-Type: application/cloudevents+json' -d '<the whole event>'`."""
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or f"curl-{uuid.uuid4().hex[:12]}",
        "type": event_type,
        "source": "/curl",
        "userid": user_id,
        "time": "2026-01-01T12:00:00Z",
        "datacontenttype": JSON,
        "data": data,
    }
    if subject is not None:
        document["subject"] = subject
    for name in drop:
        document.pop(name, None)
    return {"Content-Type": content_type}, json.dumps(document).encode()


def post(client: Any, request: tuple[dict[str, str], bytes]) -> TestResponse:
    headers, body = request
    return client.post("/", headers=headers, data=body)


def reply_of(response: TestResponse) -> CloudEvent:
    """The binary-mode reply event of a 200 answer."""
    assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
    assert response.headers["Content-Type"].startswith(JSON)
    return from_http(dict(response.headers), response.get_data())


def stream_events(client: redis.Redis, prefix: str, stream: str) -> list[tuple[str, CloudEvent]]:
    """(entry id, event) of every entry of a prefixed stream, oldest first."""
    return [(entry_id, from_stream_fields(fields)) for entry_id, fields in client.xrange(prefixed(stream, prefix))]


def prefix_entry_count(client: redis.Redis, prefix: str) -> int:
    """How many entries all streams under `prefix` hold (to prove nothing was published)."""
    total = 0
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        if client.type(key) == "stream":
            total += client.xlen(key)
    return total


class Channel:
    """A pub/sub subscription that is live before the test publishes anything."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.pubsub = client.pubsub()
        self.pubsub.subscribe(name)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.5)
            if message and message["type"] == "subscribe":
                return
        raise AssertionError(f"no subscribe confirmation for {name}")

    def messages(self, quiet_s: float = 0.1) -> list[dict[str, Any]]:
        """Every JSON message received until the channel stays quiet for `quiet_s`."""
        out: list[dict[str, Any]] = []
        while (message := self.pubsub.get_message(timeout=quiet_s)) is not None:
            if message["type"] == "message":
                out.append(json.loads(message["data"]))
        return out

    def close(self) -> None:
        self.pubsub.close()


# --------------------------------------------------------------------------- the invalid-event table


@dataclass(frozen=True)
class Valid:
    """A valid event for one function: type, data, and a required data field to drop."""

    event_type: str
    data: dict[str, Any]
    user_id: str
    subject: str | None
    required: str


@dataclass(frozen=True)
class Invalid:
    name: str
    build: Callable[[Valid], tuple[dict[str, str], bytes]]
    status: int
    field: Callable[[Valid], str]
    says: Callable[[Valid], tuple[str, ...]] = field(default=lambda v: ())
    code: str | None = None


def _without(headers_body: tuple[dict[str, str], bytes], name: str) -> tuple[dict[str, str], bytes]:
    headers, body = headers_body
    return {k: v for k, v in headers.items() if k != name}, body


def _binary(v: Valid, **kw: Any) -> tuple[dict[str, str], bytes]:
    return binary_request(v.event_type, kw.pop("data", v.data), user_id=v.user_id, subject=v.subject, **kw)


UNKNOWN_TYPE = "dev.proteus.nothing.requested"

INVALID_CASES: tuple[Invalid, ...] = (
    Invalid(
        "binary without ce-id",
        lambda v: _without(_binary(v), "ce-id"),
        400,
        lambda v: "id",
        lambda v: ("ce-id",),
        "invalid_event",
    ),
    Invalid(
        "structured without id",
        lambda v: structured_request(v.event_type, v.data, user_id=v.user_id, subject=v.subject, drop=("id",)),
        400,
        lambda v: "id",
        lambda v: ("id",),
        "invalid_event",
    ),
    Invalid(
        "unknown type",
        lambda v: binary_request(UNKNOWN_TYPE, v.data, user_id=v.user_id, subject=v.subject),
        400,
        lambda v: "type",
        lambda v: (UNKNOWN_TYPE,),
        "unknown_event_type",
    ),
    Invalid(
        "data breaks the schema (required field missing)",
        lambda v: _binary(v, data={k: x for k, x in v.data.items() if k != v.required}),
        400,
        lambda v: f"data.{v.required}",
        lambda v: (v.required, "is required"),
        "invalid_event_data",
    ),
    Invalid(
        "data breaks the schema (unknown field)",
        lambda v: _binary(v, data={**v.data, "colour": "red"}),
        400,
        lambda v: "data.colour",
        lambda v: ("colour", "not an allowed field"),
        "invalid_event_data",
    ),
    Invalid(
        "structured data breaks the schema",
        lambda v: structured_request(
            v.event_type, {k: x for k, x in v.data.items() if k != v.required}, user_id=v.user_id, subject=v.subject
        ),
        400,
        lambda v: f"data.{v.required}",
        lambda v: (v.required,),
        "invalid_event_data",
    ),
    Invalid(
        "data is not JSON",
        lambda v: _binary(v, data=b'{"user_id": '),
        400,
        lambda v: "data",
        lambda v: ("not valid JSON",),
        "invalid_event",
    ),
    Invalid(
        "structured body is not JSON",
        lambda v: ({"Content-Type": STRUCTURED}, b"{specversion: 1.0"),
        400,
        lambda v: "body",
        lambda v: ("not valid JSON",),
        "invalid_event",
    ),
    Invalid(
        "binary with text/plain",
        lambda v: _binary(v, content_type="text/plain"),
        415,
        lambda v: "content-type",
        lambda v: ("text/plain",),
        "unsupported_media_type",
    ),
    Invalid(
        "no ce-* headers and text/plain",
        lambda v: ({"Content-Type": "text/plain"}, json.dumps(v.data).encode()),
        415,
        lambda v: "content-type",
        lambda v: ("text/plain", STRUCTURED),
        "unsupported_media_type",
    ),
)


def check_invalid(client: Any, case: Invalid, valid: Valid, redis_client: redis.Redis, prefix: str) -> None:
    """Post the broken event: the status, a JSON body naming the field, and nothing published."""
    before = prefix_entry_count(redis_client, prefix)
    response = post(client, case.build(valid))
    assert response.status_code == case.status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["field"] == case.field(valid), body
    assert body["message"] == body["error"] and body["message"]
    for fragment in case.says(valid):
        assert fragment in body["message"], (fragment, body["message"])
    if case.code is not None:
        assert body["code"] == case.code, body
    assert prefix_entry_count(redis_client, prefix) == before, "an invalid event published something"


def check_valid_pair(
    client: Any,
    first: Valid,
    second: Valid,
    *,
    reply_type: str | None,
) -> tuple[TestResponse, TestResponse]:
    """`first` in binary mode and `second` in structured mode, both accepted the same way.

    reply_type None means 202 with no body; otherwise 200 with a binary reply of that type.
    """
    responses = (
        post(client, binary_request(first.event_type, first.data, user_id=first.user_id, subject=first.subject)),
        post(
            client, structured_request(second.event_type, second.data, user_id=second.user_id, subject=second.subject)
        ),
    )
    for response in responses:
        if reply_type is None:
            assert response.status_code == 202, response.get_data(as_text=True)
            assert response.get_data() == b""
        else:
            reply = reply_of(response)
            assert response.headers["ce-type"] == reply_type == reply.get_type()
            assert response.headers["ce-specversion"] == "1.0" and response.headers["ce-id"]
    return responses
