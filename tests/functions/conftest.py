"""Shared pieces of the function handler tests (tests/functions/<name>/test_handler.py).

Each function's Flask app is driven through its test client with CloudEvents built as
curl sends them (raw `ce-*` headers, or a structured JSON document), and the effects are
read back from the database, the storage and the Redis streams under a private prefix.

Module-scoped fixtures (`module_prefix`, `module_settings`) let a test module build its
app once; they mirror the root `settings` / `redis_prefix` fixtures. Plain helpers (apps,
images, rows) are imported by the test modules: `from tests.functions.conftest import ...`;
CloudEvents requests and the invalid-event table are in tests/functions/cloudevents_support.py.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings
from shared.db.migrate import upgrade
from shared.db.models import Job, TryOn, User
from shared.db.session import make_engine, make_session_factory, session_scope
from shared.runtime import FUNCTION_EXTENSION
from shared.storage import storage_from_settings
from shared.storage.base import Storage
from tests.conftest import private_redis_prefix, settings_in

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
