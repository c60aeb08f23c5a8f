"""shared.runtime (the CloudEvents Flask app) and shared.gunicorn_base."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import request

from shared import event_types as t
from shared.config import ConfigError, Settings
from shared.errors import DependencyUnavailable, NotFound
from shared.events import REDIS_STREAM_SOURCE_TYPE, CloudEvent, event_data, make_event, to_stream_fields
from shared.gunicorn_base import gunicorn_config, worker_exit
from shared.runtime import close_function_app, create_function_app

JOB = "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01"
USER = "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60"
VTON = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
PROGRESS = {"job_id": JOB, "user_id": USER, "vton_id": VTON, "step": 3, "steps": 50}
BODY = json.dumps(PROGRESS).encode()


class Toy:
    """A function whose behaviour each test sets: reply, raise, readiness."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.action: Callable[[CloudEvent], CloudEvent | None] = lambda event: None
        self.state: dict[str, Any] = {"ready": True, "model": "smoke"}
        self.closed = 0

    def handle(self, event: CloudEvent) -> CloudEvent | None:
        self.events.append(event)
        return self.action(event)

    def readiness(self) -> dict[str, Any]:
        if isinstance(self.state, Exception):
            raise self.state
        return self.state

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def toy() -> Toy:
    return Toy()


@pytest.fixture
def client(toy: Toy, settings: Settings):
    return create_function_app(toy, settings).test_client()


def curl_headers(**overrides: str | None) -> dict[str, str]:
    """What `curl -H ... -d @body` sends for a binary-mode event."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "a1b2c3",
        "ce-source": "/curl",
        "ce-type": t.WEAVE_PROGRESS,
        "ce-subject": JOB,
        "ce-userid": USER,
        "ce-time": "2026-01-01T12:00:00Z",
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


def test_binary_event_is_handled_and_none_is_202(client, toy: Toy) -> None:
    response = client.post("/", headers=curl_headers(), data=BODY)
    assert response.status_code == 202 and response.data == b""
    (event,) = toy.events
    assert event.get_id() == "a1b2c3" and event.get_source() == "/curl" and event_data(event) == PROGRESS
    assert event.get_time().isoformat() == "2026-01-01T12:00:00+00:00"


def _without_content_length(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A test-client request whose body comes chunked, as a stream of unknown length."""
    return {
        "headers": {**headers, "Transfer-Encoding": "chunked"},
        "input_stream": io.BytesIO(body),
        "environ_overrides": {"wsgi.input_terminated": True},
    }


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        (curl_headers(), BODY, 202),
        (curl_headers(**{"ce-id": None}), BODY, 400),
        (curl_headers(**{"Content-Type": "text/plain"}), BODY, 415),
    ],
)
def test_an_event_of_unknown_length_gets_the_same_answer(
    client, toy: Toy, headers: dict[str, str], body: bytes, status: int
) -> None:
    """The event shortcut takes bodies with a Content-Length; a chunked one goes through Flask's
    route, which answers the same."""
    known = client.post("/", headers=headers, data=body)
    unknown = client.post("/", **_without_content_length(headers, body))
    assert known.status_code == unknown.status_code == status
    assert known.get_json(silent=True) == unknown.get_json(silent=True)
    assert len(toy.events) == (2 if status == 202 else 0)


def test_events_skip_flask_and_everything_else_does_not(toy: Toy, settings: Settings) -> None:
    app = create_function_app(toy, settings)
    seen: list[str] = []
    app.before_request(lambda: seen.append(request.path))
    client = app.test_client()
    assert client.post("/", headers=curl_headers(), data=BODY).status_code == 202
    assert seen == []  # the shortcut answered it
    assert client.post("/", **_without_content_length(curl_headers(), BODY)).status_code == 202
    assert client.get("/healthz").status_code == 200
    assert seen == ["/", "/healthz"]


def test_structured_event_is_handled(client, toy: Toy) -> None:
    body = {
        "specversion": "1.0",
        "id": "s-1",
        "source": "/curl",
        "type": t.WEAVE_PROGRESS,
        "subject": JOB,
        "userid": USER,
        "datacontenttype": "application/json",
        "data": PROGRESS,
    }
    response = client.post(
        "/", headers={"Content-Type": "application/cloudevents+json; charset=utf-8"}, data=json.dumps(body)
    )
    assert response.status_code == 202
    assert toy.events[0].get_id() == "s-1" and event_data(toy.events[0]) == PROGRESS


def test_reply_event_comes_back_in_binary_mode(client, toy: Toy) -> None:
    completed = {
        "job_id": JOB,
        "user_id": USER,
        "vton_id": VTON,
        "result_key": f"outputs/weaver/{USER}/{JOB}.png",
        "seed": 42,
        "model": "smoke",
        "metadata": {"steps": 50},
    }
    toy.action = lambda event: make_event(t.WEAVE_COMPLETED, completed, source="/proteus/weave", id="reply-1")
    response = client.post("/", headers=curl_headers(), data=BODY)
    assert response.status_code == 200
    assert response.headers["ce-type"] == t.WEAVE_COMPLETED and response.headers["ce-id"] == "reply-1"
    assert response.headers["ce-userid"] == USER and response.headers["ce-subject"] == JOB
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == completed


def assert_error(response, status: int, code: str, field: str | None) -> dict:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert {"error", "message", "code", "field"} <= set(body)
    assert body["code"] == code and body["field"] == field
    return body


def test_missing_ce_id_is_400_naming_it(client, toy: Toy) -> None:
    body = assert_error(
        client.post("/", headers=curl_headers(**{"ce-id": None}), data=BODY), 400, "invalid_event", "id"
    )
    assert "ce-id" in body["message"]
    assert toy.events == []


def test_unknown_type_is_400(client, toy: Toy) -> None:
    response = client.post("/", headers=curl_headers(**{"ce-type": "dev.proteus.weave.exploded"}), data=BODY)
    body = assert_error(response, 400, "unknown_event_type", "type")
    assert "dev.proteus.weave.exploded" in body["message"]


def test_data_breaking_the_schema_is_400_naming_the_field_and_value(client, toy: Toy) -> None:
    data = json.dumps(dict(PROGRESS, steps=0)).encode()
    body = assert_error(client.post("/", headers=curl_headers(), data=data), 400, "invalid_event_data", "data.steps")
    assert body["details"]["errors"] == [
        {"field": "data.steps", "message": "0 is less than the minimum of 1", "value": 0}
    ]
    assert toy.events == []


def test_non_json_data_is_400(client) -> None:
    body = assert_error(client.post("/", headers=curl_headers(), data=b"step=3"), 400, "invalid_event", "data")
    assert "not valid JSON" in body["message"]


@pytest.mark.parametrize(
    "headers",
    [
        curl_headers(**{"Content-Type": "text/plain"}),
        curl_headers(**{"Content-Type": "application/x-www-form-urlencoded"}),  # curl -d without -H
        {"Content-Type": "application/json"},  # plain JSON, no ce- headers
    ],
)
def test_wrong_content_type_is_415(client, headers: dict) -> None:
    body = assert_error(client.post("/", headers=headers, data=BODY), 415, "unsupported_media_type", "content-type")
    assert "application/json" in body["message"]


def test_knative_redis_stream_source_wrapper_reaches_the_function(client, toy: Toy) -> None:
    inner = make_event(t.WEAVE_PROGRESS, PROGRESS, source="/proteus/weave")
    fields = to_stream_fields(inner)
    headers = curl_headers(
        **{
            "ce-type": REDIS_STREAM_SOURCE_TYPE,
            "ce-id": "1767225600000-0",
            "ce-source": "redis:6379/proteus:results",
            "ce-subject": None,
            "ce-userid": None,
        }
    )
    response = client.post("/", headers=headers, data=json.dumps(["event", fields["event"], "type", fields["type"]]))
    assert response.status_code == 202
    assert toy.events[0].get_id() == inner.get_id() and event_data(toy.events[0]) == PROGRESS


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound("no try-on 42", field="vton_id"), 404, "not_found"),
        (DependencyUnavailable("storage is down"), 503, "dependency_unavailable"),
        (redis.ConnectionError("Connection refused"), 503, "dependency_unavailable"),
    ],
)
def test_errors_map_to_their_status(client, toy: Toy, error: Exception, status: int, code: str) -> None:
    def fail(event: CloudEvent) -> None:
        raise error

    toy.action = fail
    assert_error(client.post("/", headers=curl_headers(), data=BODY), status, code, getattr(error, "field", None))


def test_database_and_storage_outages_are_503(client, toy: Toy) -> None:
    import botocore.exceptions
    import sqlalchemy.exc

    for error in (
        sqlalchemy.exc.OperationalError("select 1", {}, Exception("connection refused")),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3"),
    ):
        toy.action = lambda event, error=error: (_ for _ in ()).throw(error)
        assert_error(client.post("/", headers=curl_headers(), data=BODY), 503, "dependency_unavailable", None)


def test_a_bug_is_500_with_a_generic_body_and_a_logged_traceback(client, toy: Toy, caplog) -> None:
    def fail(event: CloudEvent) -> None:
        raise RuntimeError("secret internals")

    toy.action = fail
    with caplog.at_level(logging.ERROR, logger="proteus.runtime"):
        body = assert_error(client.post("/", headers=curl_headers(), data=BODY), 500, "internal_error", None)
    assert "secret" not in json.dumps(body)
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


def test_an_invalid_reply_is_a_500(client, toy: Toy) -> None:
    toy.action = lambda event: make_event(t.WEAVE_COMPLETED, {"job_id": JOB}, source="/x", user_id=USER)
    assert_error(client.post("/", headers=curl_headers(), data=BODY), 500, "internal_error", None)


def test_one_json_log_line_per_request(client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="proteus.runtime"):
        client.post("/", headers=curl_headers(), data=BODY)
        client.post("/", headers=curl_headers(**{"ce-type": "dev.nope"}), data=BODY)
    lines = [r.fields for r in caplog.records if hasattr(r, "fields")]
    assert [(x["type"], x["event_id"], x["status"], x["outcome"]) for x in lines] == [
        (t.WEAVE_PROGRESS, "a1b2c3", 202, "ok"),
        ("dev.nope", "a1b2c3", 400, "rejected"),
    ]
    assert all(isinstance(x["ms"], float) and "job_id" in x and "trace_id" in x for x in lines)
    assert not any("data" in x for x in lines)  # ids and outcome only, never the event's data


def test_metrics_count_events_by_type_and_outcome(client) -> None:
    from prometheus_client import REGISTRY

    def handled(event_type: str, outcome: str) -> float:
        labels = {"function": "Toy", "type": event_type, "outcome": outcome}
        return REGISTRY.get_sample_value("proteus_events_handled_total", labels) or 0.0

    before = (handled(t.WEAVE_PROGRESS, "ok"), handled("invalid", "rejected"))
    client.post("/", headers=curl_headers(), data=BODY)
    client.post("/", headers=curl_headers(**{"ce-type": "dev.nope-unbounded-value"}), data=BODY)
    assert (handled(t.WEAVE_PROGRESS, "ok"), handled("invalid", "rejected")) == (before[0] + 1, before[1] + 1)
    page = client.get("/metrics")
    assert page.status_code == 200 and page.mimetype == "text/plain"
    text = page.get_data(as_text=True)
    assert "proteus_event_handle_duration_seconds_bucket" in text and "dev.nope-unbounded-value" not in text


def test_json_formatter_writes_one_object_per_line() -> None:
    from shared.runtime import JsonFormatter

    record = logging.LogRecord("proteus.runtime", logging.INFO, __file__, 1, "event handled", None, None)
    record.fields = {"type": t.WEAVE_PROGRESS, "status": 202}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "event handled" and line["type"] == t.WEAVE_PROGRESS and line["status"] == 202


def test_healthz_and_readyz(client, toy: Toy) -> None:
    toy.state = {"ready": True, "model": "smoke", "warning": "CPU only"}
    assert client.get("/healthz").get_json() == {"alive": True, "ready": True, "model": "smoke", "warning": "CPU only"}
    assert client.get("/readyz").status_code == 200
    toy.state = {"ready": False, "model": "loading"}
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["ready"] is False
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json() == {"ready": False, "model": "loading"}
    toy.state = RuntimeError("probe exploded")
    assert client.get("/readyz").status_code == 503


def test_ready_bool_and_no_probe_at_all(settings: Settings) -> None:
    class Short:
        def handle(self, event: CloudEvent) -> None:
            return None

        def ready(self) -> bool:
            return False

    class Bare:
        def handle(self, event: CloudEvent) -> None:
            return None

    assert create_function_app(Short(), settings).test_client().get("/readyz").status_code == 503
    assert create_function_app(Bare(), settings).test_client().get("/readyz").get_json() == {"ready": True}
    with pytest.raises(TypeError, match="handle"):
        create_function_app(object(), settings)  # type: ignore[arg-type]


def test_other_http_errors_are_json(client) -> None:
    assert_error(client.get("/"), 405, "method_not_allowed", None)
    assert_error(client.get("/nope"), 404, "not_found", None)
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    assert_error(client.post("/", headers=curl_headers(), data=big), 413, "request_entity_too_large", None)


def test_close_runs_once(toy: Toy, settings: Settings) -> None:
    app = create_function_app(toy, settings)
    close_function_app(app)
    close_function_app(app)
    assert toy.closed == 1


def test_gunicorn_config_defaults_and_port() -> None:
    weave = gunicorn_config("weave", environ={})
    assert weave["bind"] == ["0.0.0.0:8103"] and weave["timeout"] == 600 and weave["workers"] == 1
    assert weave["wsgi_app"] == "functions.weave.main:create_app()" and weave["threads"] >= 2
    assert weave["worker_class"] == "gthread"
    notify = gunicorn_config("notify", environ={"PORT": "9000", "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "1"})
    assert notify["bind"] == ["0.0.0.0:9000"] and notify["workers"] == 3 and notify["worker_class"] == "sync"
    assert notify["timeout"] < 600
    with pytest.raises(ConfigError) as caught:
        gunicorn_config("notify", environ={"PORT": "http"})
    assert caught.value.field == "PORT"
    with pytest.raises(KeyError):
        gunicorn_config("gateway", environ={})


def test_gunicorn_worker_exit_closes_the_function(toy: Toy, settings: Settings) -> None:
    class Worker:
        wsgi = create_function_app(toy, settings)

    worker_exit(None, Worker())
    assert toy.closed == 1
