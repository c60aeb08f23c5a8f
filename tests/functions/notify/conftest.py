"""Fixtures of the notify tests: a notify app per test (SQLite and PostgreSQL) or per module,
and a subscription to its channel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shared.config import Settings
from tests.functions.cloudevents_support import Channel
from tests.functions.notify.support import Notify


@pytest.fixture
def notify(
    settings: Settings, database_url: str, redis_server_url: str, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[Notify]:
    """Notify on SQLite and on PostgreSQL (a fresh database each), with a private prefix."""
    n = Notify(
        settings.with_overrides(database_url=database_url, redis_url=redis_server_url, redis_key_prefix=redis_prefix),
        redis_client,
    )
    yield n
    n.close()


@pytest.fixture
def channel(notify: Notify, redis_client: redis.Redis) -> Iterator[Channel]:
    """Subscribed before the test posts anything."""
    c = Channel(redis_client, notify.channel_name)
    yield c
    c.close()


@pytest.fixture(scope="module")
def module_notify(module_settings: Settings, redis_server_url: str) -> Iterator[Notify]:
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    n = Notify(module_settings, client)
    yield n
    n.close()
    client.close()
