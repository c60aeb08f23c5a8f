"""shared.events: building, validating and (de)serialising events."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from shared import event_types as t
from shared.errors import BadRequest, UnsupportedMediaType
from shared.events import (
    REDIS_STREAM_SOURCE_TYPE,
    CloudEvent,
    InvalidEvent,
    InvalidEventData,
    UnknownEventType,
    from_http,
    from_stream_fields,
    make_event,
    source_for,
    to_http_binary,
    to_http_structured,
    to_stream_fields,
    unwrap_redis_stream_source,
    validate_event,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "cloudevents-schemas"
JOB = "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01"
USER = "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60"
VTON = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
PROGRESS = {"job_id": JOB, "user_id": USER, "vton_id": VTON, "step": 3, "steps": 50}


def example(event_type: str) -> dict:
    return json.loads((SCHEMAS / f"{event_type}.json").read_text())["examples"][0]


def binary_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "evt-1",
        "ce-source": "/curl",
        "ce-type": t.WEAVE_PROGRESS,
        "ce-subject": JOB,
        "ce-userid": USER,
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


def test_make_event_sets_every_attribute() -> None:
    event = make_event(t.WEAVE_PROGRESS, PROGRESS, source=source_for("weave"))
    attrs = event.get_attributes()
    assert attrs["specversion"] == "1.0"
    assert attrs["datacontenttype"] == "application/json"
    assert attrs["source"] == "/proteus/weave"
    assert attrs["subject"] == JOB and attrs["userid"] == USER
    assert isinstance(attrs["time"], datetime) and attrs["time"].tzinfo is not None
    uuid.UUID(attrs["id"])
    assert event.get_data() == PROGRESS
    validate_event(event)


def test_make_event_explicit_values_win_and_data_is_copied() -> None:
    data = dict(PROGRESS)
    event = make_event(t.WEAVE_PROGRESS, data, source="/x", subject="other", user_id="u-1", id="fixed")
    data["step"] = 99
    assert (event.get_id(), event.get_subject(), event.get_extension("userid")) == ("fixed", "other", "u-1")
    assert event.get_data()["step"] == 3


def test_make_event_refuses_data_that_is_not_json() -> None:
    with pytest.raises(InvalidEvent, match="JSON-serialisable") as caught:
        make_event(t.WEAVE_PROGRESS, {"when": datetime.now()}, source="/x")
    assert caught.value.field == "data"
    with pytest.raises(InvalidEvent, match="JSON object"):
        make_event(t.WEAVE_PROGRESS, ["not", "an", "object"], source="/x")  # type: ignore[arg-type]


def test_validate_collects_every_problem_with_its_path_and_value() -> None:
    bad = dict(PROGRESS, step=-1, steps="fifty", extra=True)
    del bad["vton_id"]
    with pytest.raises(InvalidEventData) as caught:
        validate_event(make_event(t.WEAVE_PROGRESS, bad, source="/x"))
    errors = {e["field"]: e for e in caught.value.details["errors"]}
    assert set(errors) == {"data.vton_id", "data.step", "data.steps", "data.extra"}
    assert errors["data.step"]["value"] == -1 and errors["data.steps"]["value"] == "fifty"
    assert caught.value.status == 400 and caught.value.retryable is False
    assert "'fifty'" in caught.value.message and "data.vton_id: is required" in caught.value.message


def test_unknown_type_is_named() -> None:
    with pytest.raises(UnknownEventType, match="dev.proteus.nope") as caught:
        validate_event(make_event("dev.proteus.nope", PROGRESS, source="/x"))
    assert caught.value.field == "type" and caught.value.code == "unknown_event_type"


def test_userid_is_required_and_must_match_the_data() -> None:
    event = CloudEvent({"type": t.WEAVE_PROGRESS, "source": "/x", "datacontenttype": "application/json"}, PROGRESS)
    with pytest.raises(InvalidEvent) as caught:
        validate_event(event)
    assert caught.value.field == "userid"
    with pytest.raises(InvalidEvent, match="must equal data.user_id") as caught:
        validate_event(make_event(t.WEAVE_PROGRESS, PROGRESS, source="/x", user_id="someone-else"))
    assert caught.value.field == "userid"
    with pytest.raises(InvalidEvent, match="must equal data.job_id"):
        validate_event(make_event(t.WEAVE_PROGRESS, PROGRESS, source="/x", subject="another-job"))


def test_data_must_be_a_json_object_in_json() -> None:
    event = CloudEvent(
        {"type": t.WEAVE_PROGRESS, "source": "/x", "userid": USER, "datacontenttype": "text/plain"}, "hello"
    )
    with pytest.raises(InvalidEvent) as caught:
        validate_event(event)
    fields = [e["field"] for e in caught.value.details["errors"]]
    assert fields == ["datacontenttype", "data"]


def test_formats_are_checked() -> None:
    signed = example(t.UPLOAD_SIGNED)
    with pytest.raises(InvalidEvent) as caught:
        validate_event(make_event(t.UPLOAD_SIGNED, dict(signed, expires_at="tomorrow"), source="/x", user_id=USER))
    assert caught.value.field == "data.expires_at"
    with pytest.raises(InvalidEvent) as caught:
        validate_event(make_event(t.UPLOAD_SIGNED, dict(signed, url="not a url"), source="/x", user_id=USER))
    assert caught.value.field == "data.url"


def test_stream_fields_round_trip_as_str_and_bytes() -> None:
    event = make_event(t.WEAVE_PROGRESS, PROGRESS, source="/x")
    fields = to_stream_fields(event)
    assert set(fields) == {"event", "type"} and fields["type"] == t.WEAVE_PROGRESS
    assert json.loads(fields["event"])["data"] == PROGRESS
    for entry in (fields, {k.encode(): v.encode() for k, v in fields.items()}):
        back = from_stream_fields(entry)
        assert back.get_attributes() == event.get_attributes() and back.get_data() == PROGRESS


def test_stream_fields_without_event_are_malformed() -> None:
    with pytest.raises(InvalidEvent, match="no 'event' field"):
        from_stream_fields({"type": t.WEAVE_PROGRESS})
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        from_stream_fields({"event": "{nope"})


def test_http_binary_and_structured_round_trip() -> None:
    event = make_event(t.WEAVE_PROGRESS, PROGRESS, source="/x")
    headers, body = to_http_binary(event)
    assert headers["ce-type"] == t.WEAVE_PROGRESS and headers["content-type"] == "application/json"
    assert json.loads(body) == PROGRESS
    for encoded in ((headers, body), to_http_structured(event)):
        back = from_http(*encoded)
        assert back.get_attributes() == event.get_attributes() and back.get_data() == PROGRESS


def test_from_http_binary_as_curl_sends_it() -> None:
    event = from_http(
        binary_headers(**{"Content-Type": "application/json; charset=utf-8"}), json.dumps(PROGRESS).encode()
    )
    assert event.get_id() == "evt-1" and event.get_data() == PROGRESS
    validate_event(event)


def test_from_http_binary_without_content_type_is_json() -> None:
    event = from_http(binary_headers(**{"Content-Type": None}), json.dumps(PROGRESS).encode())
    assert event.get_datacontenttype() == "application/json" and event.get_data() == PROGRESS


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [
        (binary_headers(**{"ce-id": None}), json.dumps(PROGRESS).encode(), "id"),
        (binary_headers(**{"ce-source": None}), json.dumps(PROGRESS).encode(), "source"),
        (binary_headers(**{"ce-specversion": "0.3"}), json.dumps(PROGRESS).encode(), "specversion"),
        (binary_headers(**{"ce-time": "yesterday"}), json.dumps(PROGRESS).encode(), "time"),
        (binary_headers(), b"{not json", "data"),
        ({"Content-Type": "application/cloudevents+json"}, b"[1, 2]", "body"),
        ({"Content-Type": "application/cloudevents+json"}, b"{oops", "body"),
        ({"Content-Type": "application/cloudevents+json"}, json.dumps({"type": "x", "source": "/x"}).encode(), "id"),
        (
            {"Content-Type": "application/cloudevents+json"},
            json.dumps({"specversion": "1.0", "id": "1", "source": "/x", "type": "x", "data_base64": "abc"}).encode(),
            "body",
        ),
        (
            {"Content-Type": "application/cloudevents+json"},
            json.dumps({"specversion": "1.0", "id": "1", "source": "/x", "type": "x", "userId": "u"}).encode(),
            "userId",
        ),
    ],
)
def test_from_http_malformed_events_name_the_attribute(headers: dict, body: bytes, field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        from_http(headers, body)
    assert caught.value.field == field and caught.value.status == 400


@pytest.mark.parametrize(
    "headers",
    [
        binary_headers(**{"Content-Type": "text/plain"}),
        binary_headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
        {"Content-Type": "application/json"},
        {"Content-Type": "application/cloudevents-batch+json"},
        {},
    ],
)
def test_from_http_wrong_media_type_is_415(headers: dict) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        from_http(headers, json.dumps(PROGRESS).encode())
    assert caught.value.status == 415 and caught.value.field == "content-type"


def knative_request(data: object) -> tuple[dict[str, str], bytes]:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": REDIS_STREAM_SOURCE_TYPE,
        "ce-source": "redis.redis.svc.cluster.local:6379/proteus:results",
        "ce-id": "1767225600000-0",
        "content-type": "application/json",
    }
    return headers, json.dumps(data).encode()


def test_knative_redis_stream_source_event_is_unwrapped() -> None:
    inner = make_event(t.WEAVE_PROGRESS, PROGRESS, source="/proteus/weave")
    fields = to_stream_fields(inner)
    pairs = ["event", fields["event"], "type", fields["type"]]
    for data in (pairs, [base64.b64encode(p.encode()).decode() for p in pairs]):
        event = from_http(*knative_request(data))
        assert event.get_id() == inner.get_id() and event.get_type() == t.WEAVE_PROGRESS
        assert event.get_data() == PROGRESS


def test_knative_wrapper_without_our_event_is_a_bad_request() -> None:
    with pytest.raises(InvalidEvent, match="carries no 'event' field"):
        from_http(*knative_request(["fruit", "banana"]))
    wrapper = CloudEvent({"type": REDIS_STREAM_SOURCE_TYPE, "source": "/s"}, {"unexpected": 1})
    with pytest.raises(BadRequest):
        unwrap_redis_stream_source(wrapper)
