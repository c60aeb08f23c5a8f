"""Gateway fixtures: an app on a migrated database with a private Redis prefix (SQLite, or
SQLite and PostgreSQL for the main flows), clients that check every response against the
OpenAPI document, two signed-up people, one of them with an API key for /v1 (`shop`), and a
real server for WebSocket tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.config import Settings
from tests.gateway.helpers import LiveServer, Person, build_app, close_app, make_settings
from tests.gateway.v1_support import Integrator


@pytest.fixture
def gw_settings(settings: Settings, redis_server_url: str, redis_prefix: str) -> Settings:
    """Test settings on SQLite, the real Redis under a private prefix, a generous rate limit."""
    return make_settings(settings, settings.database_url, redis_server_url, redis_prefix)


@pytest.fixture
def app(gw_settings: Settings) -> Iterator[Flask]:
    app = build_app(gw_settings)
    yield app
    close_app(app)


@pytest.fixture
def db_app(settings: Settings, database_url: str, redis_server_url: str, redis_prefix: str) -> Iterator[Flask]:
    """The app once on SQLite and once on PostgreSQL (the main flows run on both)."""
    app = build_app(make_settings(settings, database_url, redis_server_url, redis_prefix))
    yield app
    close_app(app)


@pytest.fixture
def make_app(settings: Settings, redis_server_url: str, redis_prefix: str) -> Iterator[Callable[..., Flask]]:
    """Build apps with setting overrides (closed afterwards)."""
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        values = {"redis_url": redis_server_url, **overrides}
        redis_url = values.pop("redis_url")
        app = build_app(make_settings(settings, settings.database_url, redis_url, redis_prefix, **values))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def person(app: Flask) -> Person:
    return Person(app, "alice")


@pytest.fixture
def other(app: Flask) -> Person:
    return Person(app, "bob")


@pytest.fixture
def shop(person: Person) -> Integrator:
    """`person` with an API key, calling /v1 as a server would."""
    return Integrator(person)


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app)
    yield server
    server.stop()
