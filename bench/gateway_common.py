"""What bench/gateway_ws.py and bench/gateway_rest.py share: a gateway under gunicorn (the
production config, gateway/gunicorn.conf.py, one worker) on a throw-away database, users
written straight into it, figures (percentiles, spread) and the table."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench password 1"


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """--workers: the gateway's worker processes, by default its own choice (one per usable core)."""
    from shared.cpus import usable_cpus

    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cpus(),
        help="gunicorn worker processes (WEB_CONCURRENCY; default: the gateway's own, one per usable core)",
    )


def stop_process(process: subprocess.Popen[Any] | None, timeout_s: float = 20.0) -> None:
    """SIGTERM a started server, and SIGKILL it if it has not exited within `timeout_s`."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    """Median and range of several rounds."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {
        "median": round(statistics.median(clean), digits),
        "min": round(min(clean), digits),
        "max": round(max(clean), digits),
    }


def show(s: dict[str, float], unit: str = "") -> str:
    return f"{s['median']}{unit} ({s['min']}-{s['max']})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's worker processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{master}\n" in status:
                found.append(int(entry.name))
    return sorted(found)


def make_users(
    database_url: str, count: int, secret: str, *, rounds: int = 12, real_passwords: int = 1
) -> list[tuple[str, str, str]]:
    """`count` users straight into the database: (user id, email, ws token) each. The first
    `real_passwords` get a real bcrypt hash of PASSWORD at `rounds` (the others cannot log in)."""
    import bcrypt
    import jwt
    from sqlalchemy import insert

    from shared.db.migrate import upgrade
    from shared.db.models import User, utcnow
    from shared.db.session import make_engine

    upgrade(database_url)
    now = utcnow()
    real = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds)).decode()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "user_name": f"bench{i}",
            "email": f"bench{i}@example.com",
            "password_hash": real if i < real_passwords else "$2b$04$" + "x" * 53,
            "token_version": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    engine = make_engine(database_url)
    with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(insert(User), rows[start : start + 5000])
    engine.dispose()
    issued = int(time.time())
    return [
        (
            row["id"],
            row["email"],
            jwt.encode(
                {"sub": row["id"], "userId": row["id"], "ver": 0, "iat": issued, "exp": issued + 7200, "purpose": "ws"},
                secret,
                algorithm="HS256",
            ),
        )
        for row in rows
    ]


class Gateway:
    """gunicorn with gateway/gunicorn.conf.py on a private port, database and Redis prefix."""

    def __init__(
        self,
        *,
        database_url: str | None = None,
        redis_url: str,
        extra_env: dict[str, str] | None = None,
        gunicorn_args: list[str] | None = None,
    ) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="proteus-bench-gw-"))
        self.database_url = database_url or f"sqlite:///{self.work / 'bench.db'}"
        self.redis_url = redis_url
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}:"
        self.secret = "bench-secret-" + uuid.uuid4().hex * 2
        self.port = free_port()
        self.extra_env = extra_env or {}
        self.gunicorn_args = gunicorn_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.workers: list[int] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import requests

        env = dict(os.environ)
        env.update(
            PROTEUS_ENV="development",
            PROTEUS_DATA_DIR=str(self.work),
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            REDIS_KEY_PREFIX=self.prefix,
            JWT_SECRET=self.secret,
            PORT=str(self.port),
            WEB_CONCURRENCY="1",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            RATE_LIMIT="1000000 per minute",
        )
        env.update(self.extra_env)
        log = open(self.work / "gunicorn.log", "wb")  # closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gateway/gunicorn.conf.py", *self.gunicorn_args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start:\n" + self.log_tail())
            time.sleep(0.2)
        expected = int(env["WEB_CONCURRENCY"])
        while len(self.workers) < expected and time.monotonic() < deadline:
            self.workers = worker_pids(self.process.pid)
            time.sleep(0.05)
        assert len(self.workers) == expected, f"{len(self.workers)} gunicorn workers found, {expected} expected"

    def log_tail(self, size: int = 3000) -> str:
        return (self.work / "gunicorn.log").read_text(errors="replace")[-size:]

    def rss_mb(self) -> float:
        """The RSS of every worker, added up (the master holds no socket)."""
        assert self.workers, "the gateway is not started"
        return sum(rss_mb(pid) for pid in self.workers)

    def stop(self) -> None:
        import redis

        stop_process(self.process)
        client = redis.Redis.from_url(self.redis_url)
        for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
            client.delete(key)
        client.close()
        shutil.rmtree(self.work, ignore_errors=True)


def print_table(title: str, rows: list[tuple[str, Any]], result: dict[str, Any]) -> None:
    width = max(len(str(k)) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 40))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 40))
    print(json.dumps(result))
