"""Shared pieces of the function handler tests (tests/functions/<name>/test_handler.py).

Each function's Flask app is driven through its test client with CloudEvents built as
curl sends them (raw `ce-*` headers, or a structured JSON document), and the effects are
read back from the database, the storage and the Redis streams under a private prefix.

Module-scoped fixtures (`module_prefix`, `module_settings`) let a test module build its
app once; they mirror the root `settings` / `redis_prefix` fixtures. Plain helpers are
imported by the test modules: `from tests.functions.conftest import ...`.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from shared.config import Settings
from shared.db.migrate import upgrade
from shared.db.models import Job, TryOn, User
from shared.db.session import make_engine, make_session_factory, session_scope
from shared.events import CloudEvent, from_http, from_stream_fields
from shared.routing import prefixed
from shared.runtime import FUNCTION_EXTENSION
from shared.storage import storage_from_settings
from shared.storage.base import Storage
from tests.conftest import private_redis_prefix, settings_in

JSON = "application/json"
STRUCTURED = "application/cloudevents+json"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def module_prefix(redis_server_url: str) -> Iterator[str]:
    """A Redis key prefix private to one test module; its keys are deleted afterwards."""
    yield from private_redis_prefix(redis_server_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """The test client of the module's function app."""
    return app.test_client()


@pytest.fixture(scope="module")
def sessions(module_settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Database sessions on the module's database."""
    factory = sessions_for(module_settings.database_url)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture(scope="module")
def storage(module_settings: Settings) -> Storage:
    """The module's object storage."""
    return storage_from_settings(module_settings)


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory, redis_server_url: str, module_prefix: str) -> Settings:
    """The root `settings` fixture for a whole module (SQLite, migrated), on the real Redis."""
    data_dir = tmp_path_factory.mktemp("fn-var")
    settings = settings_in(
        data_dir, redis_url=redis_server_url, redis_key_prefix=module_prefix, progress_interval_s=0.0
    )
    upgrade(settings.database_url)
    return settings


@pytest.fixture(scope="session")
def function_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for the weave and tailor smoke models (both live in `<dir>/smoke`)."""
    return tmp_path_factory.mktemp("function-models")


@pytest.fixture(scope="session")
def weave_smoke_models(function_models_dir: Path) -> Path:
    from functions.weave.smoke import write_smoke_model

    write_smoke_model(function_models_dir / "smoke")
    return function_models_dir


@pytest.fixture(scope="session")
def tailor_smoke_models(function_models_dir: Path) -> Path:
    from functions.tailor.smoke import write_smoke_model

    write_smoke_model(function_models_dir / "smoke")
    return function_models_dir


@pytest.fixture(scope="session")
def redis_client(redis_server_url: str) -> Iterator[redis.Redis]:
    """A text-mode client on the shared server (tests only touch their own prefix)."""
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    yield client
    client.close()


# --------------------------------------------------------------------------- apps


def function_of(app: Flask) -> Any:
    """The function object an app wraps."""
    return app.extensions[FUNCTION_EXTENSION]


def sessions_for(url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(url))


def dispose_function(app: Flask) -> None:
    """Release the database engine and Redis pool a function app holds."""
    function = function_of(app)
    sessions = getattr(function, "sessions", None)
    if sessions is not None:
        sessions.kw["bind"].dispose()
    client = getattr(function, "redis", None)
    if client is not None:
        client.close()


# --------------------------------------------------------------------------- images and rows


def image_bytes(color: tuple[int, int, int], size: tuple[int, int] = (96, 128), fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def new_id() -> str:
    return str(uuid.uuid4())


def add_user(sessions: sessionmaker[Session], user_id: str | None = None) -> str:
    user_id = user_id or new_id()
    with session_scope(sessions, write=True) as session:
        session.add(User(id=user_id, user_name="ada", email=f"{user_id}@example.com", password_hash="x"))
    return user_id


def add_tryon(
    sessions: sessionmaker[Session],
    user_id: str,
    *,
    person_key: str = "p",
    garment_key: str = "g",
    job_id: str | None = None,
    job_type: str = "try_on",
    params: dict[str, Any] | None = None,
) -> tuple[str, str | None]:
    """A queued try-on of `user_id` (and a queued job for it when `job_id` is given)."""
    vton_id = new_id()
    with session_scope(sessions, write=True) as session:
        session.add(TryOn(id=vton_id, user_id=user_id, user_snap=person_key, uncleaned_outfit=garment_key))
        session.flush()
        if job_id is not None:
            session.add(Job(id=job_id, user_id=user_id, vton_id=vton_id, job_type=job_type, params=params or {}))
    return vton_id, job_id


def get_row(sessions: sessionmaker[Session], model: type, row_id: str) -> Any:
    with sessions() as session:
        row = session.get(model, row_id)
        if row is not None:
            session.expunge(row)
        return row


# --------------------------------------------------------------------------- CloudEvents as curl sends them


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
