"""What the WebSocket tests share: connecting, tokens, publishing completions as notify does, reading frames."""

from __future__ import annotations

import json
import time
from typing import Any

import simple_websocket
from flask import Flask

from shared import jobs
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM
from tests.gateway.helpers import (
    LiveServer,
    Person,
    WSClient,
    redis_of,
    sessions_of,
    settings_of,
)


def connect(
    server: LiveServer,
    token: str | None = None,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    expect_ready: bool = True,
) -> WSClient:
    params = []
    if token:
        params.append(f"token={token}")
    if query:
        params.append(query)
    url = server.ws_url + ("?" + "&".join(params) if params else "")
    ws = WSClient.connect(url, headers=headers or {})
    if expect_ready:
        ready = json.loads(ws.receive(timeout=5))
        assert ready["event"] == "ready", ready
    return ws


def ws_token(person: Person) -> str:
    return str(person.get("/user/ws-token").get_json()["token"])


def notify_completion(app: Flask, person: Person, *, status: str = "done", job_type: str = "try_on") -> dict[str, Any]:
    """What notify does for a finished job: update the rows, XADD to the replay stream, PUBLISH."""
    tryon = person.create_tryon()
    job_id = person.start_weave(tryon).get_json()["job_id"]
    result = f"outputs/weaver/{person.id}/{job_id}.png"
    with sessions_of(app)() as session:
        if status == "done":
            jobs.complete_job(session, job_id, result_key=result)
        else:
            jobs.fail_job(session, job_id, error="boom")
        session.commit()
    return publish_completion(
        app, person.id, job_id, tryon["id"], result if status == "done" else None, status, job_type
    )


def publish_completion(
    app: Flask,
    user_id: str,
    job_id: str,
    vton_id: str | None,
    result: str | None,
    status: str = "done",
    job_type: str = "try_on",
) -> dict[str, Any]:
    prefix = settings_of(app).redis_key_prefix
    redis = redis_of(app)
    message: dict[str, Any] = {
        "job_id": job_id,
        "job_type": job_type,
        "status": status,
        "user_id": user_id,
        "vton_id": vton_id,
        "result_s3_key": result,
        "error": None if status == "done" else "boom",
        "finished_at": "2026-01-01T00:00:00Z",
    }
    entry_id = redis.xadd(
        prefix + NOTIFICATION_STREAM,
        {"user_id": user_id, "message": json.dumps(message)},
        maxlen=10_000,
        approximate=True,
    )
    message["event_id"] = entry_id
    redis.publish(prefix + NOTIFICATION_CHANNEL, json.dumps(message))
    return message


def receive_json(ws: simple_websocket.Client, timeout: float = 5) -> dict[str, Any]:
    data = ws.receive(timeout=timeout)
    assert data is not None, "no message arrived"
    return dict(json.loads(data))


def assert_silent(*sockets: simple_websocket.Client, wait: float = 0.3) -> None:
    time.sleep(wait)
    for ws in sockets:
        assert ws.receive(timeout=0) is None


def close_code(ws: simple_websocket.Client, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws.receive(timeout=0.2)
        except simple_websocket.ConnectionClosed:
            return int(ws.close_reason)
    raise AssertionError("the socket was not closed")
