"""The gateway under gunicorn's gevent worker (gateway/gunicorn.conf.py) on PostgreSQL and
Redis: monkey-patching leaves SQLAlchemy/psycopg and redis-py working, concurrently; and on
SQLite, where a request that waits on another service must not hold the write lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from shared.config import Settings
from shared.db.migrate import upgrade
from shared.devstack import free_port
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM
from tests.gateway.helpers import PNG, UploadSigningServer, WSClient
from tests.openapi_check import unwatch, watch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gunicorn_gateway(tmp_path: Path, postgres_url: str, redis_server_url: str, redis_prefix: str) -> Iterator[str]:
    yield from _serve(tmp_path, postgres_url, redis_server_url, redis_prefix)


@pytest.fixture
def sqlite_gunicorn_gateway(tmp_path: Path, redis_server_url: str, redis_prefix: str) -> Iterator[str]:
    yield from _serve(tmp_path, f"sqlite:///{tmp_path / 'proteus.db'}", redis_server_url, redis_prefix)


def _serve(tmp_path: Path, database_url: str, redis_server_url: str, redis_prefix: str) -> Iterator[str]:
    upgrade(database_url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_"))}
    env.update(
        PROTEUS_ENV="test",
        PROTEUS_DATA_DIR=str(tmp_path),
        DATABASE_URL=database_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=redis_prefix,
        JWT_SECRET="gunicorn-test-" + "z" * 40,
        PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        RATE_LIMIT="1000 per minute",
        LOG_LEVEL="WARNING",
    )
    signer = UploadSigningServer(Settings.from_env(env))  # the stage the gateway calls for uploads
    env["UPLOAD_SIGNING_URL"] = signer.url
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gateway/gunicorn.conf.py"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    watch(base)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.1)
        yield base
    finally:
        unwatch(base)
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
        signer.stop()


def test_gevent_worker_on_postgres(gunicorn_gateway: str, redis_server_url: str, redis_prefix: str) -> None:
    import redis

    base = gunicorn_gateway
    assert (
        requests.post(
            f"{base}/user/signup", json={"user_name": "g", "email": "g@example.com", "password": "password-1"}
        ).status_code
        == 201
    )
    login = requests.post(f"{base}/user/login", json={"email": "g@example.com", "password": "password-1"})
    token = login.json()["token"]
    user_id = login.json()["user"]["id"]
    auth = {"Authorization": f"Bearer {token}"}

    # Many requests at once: SQLAlchemy's pool and psycopg under gevent.
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda _: requests.get(f"{base}/user", headers=auth, timeout=10).status_code, range(64)))
    assert codes == [200] * 64

    signed = requests.post(
        f"{base}/images/presignedUploadUrl", json={"fileName": "a.png", "fileType": "image/png"}, headers=auth
    ).json()
    assert requests.put(signed["url"], data=PNG, headers=signed["headers"], timeout=10).status_code == 200
    vton = requests.post(
        f"{base}/vton", json={"user_snap": signed["key"], "uncleaned_outfit": signed["key"]}, headers=auth
    ).json()
    job = requests.post(
        f"{base}/jobs/weaver",
        json={"vton_id": vton["id"], "user_snap_s3": signed["key"], "uncleaned_outfit_s3": signed["key"]},
        headers=auth,
    )
    assert job.status_code == 202

    ws_token = requests.get(f"{base}/user/ws-token", headers=auth).json()["token"]
    tabs = [WSClient.connect(f"ws://127.0.0.1:{base.rsplit(':', 1)[1]}/ws?token={ws_token}") for _ in range(2)]
    try:
        for tab in tabs:
            assert json.loads(tab.receive(timeout=5))["event"] == "ready"
        client = redis.Redis.from_url(redis_server_url, decode_responses=True)
        message = {
            "job_id": job.json()["job_id"],
            "job_type": "try_on",
            "status": "done",
            "user_id": user_id,
            "vton_id": vton["id"],
            "result_s3_key": None,
            "error": None,
            "finished_at": "2026-01-01T00:00:00Z",
        }
        entry = client.xadd(redis_prefix + NOTIFICATION_STREAM, {"user_id": user_id, "message": json.dumps(message)})
        client.publish(redis_prefix + NOTIFICATION_CHANNEL, json.dumps({**message, "event_id": entry}))
        for tab in tabs:
            assert json.loads(tab.receive(timeout=5)) == {**message, "event_id": entry}
        # While sockets are open, HTTP requests are still served (sockets do not hold workers).
        assert requests.get(f"{base}/vton", headers=auth, timeout=5).json()[0]["status"] == "queued"
        health = requests.get(f"{base}/health", timeout=5).json()
        assert health["websockets"] == 2 and health["checks"]["database"] == "ok"
        client.close()
    finally:
        for tab in tabs:
            tab.close()


def test_uploads_signed_at_once_on_sqlite(sqlite_gunicorn_gateway: str) -> None:
    """Several presigned uploads at once (the page asks for two together): each waits on the
    upload-signing stage, and none may hold SQLite's write lock meanwhile (a busy wait under
    gevent stalls the worker until the busy timeout)."""
    base = sqlite_gunicorn_gateway
    body = {"user_name": "s", "email": "s@example.com", "password": "password-1"}
    assert requests.post(f"{base}/user/signup", json=body, timeout=10).status_code == 201
    token = requests.post(f"{base}/user/login", json=body, timeout=10).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}

    def sign(i: int) -> int:
        answer = requests.post(
            f"{base}/images/presignedUploadUrl",
            json={"fileName": f"{i}.png", "fileType": "image/png"},
            headers=auth,
            timeout=5,
        )
        return answer.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(sign, range(8))) == [200] * 8
