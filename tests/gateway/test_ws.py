"""WS /ws: pushes go to every socket of their user and no one else's; replay after a
reconnect; bad tokens close with 4401; heartbeats; one listener per process that resubscribes."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from typing import Any

import jwt
import pytest
import simple_websocket
from flask import Flask

from gateway.ws import Hub
from gateway.wsframes import detach
from gateway.wsloop import Connection, SocketLoop
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


# -- delivery --------------------------------------------------------------------------------------


def test_a_completion_reaches_both_tabs_of_its_user_and_nobody_else(app, live_server) -> None:
    alice, bob = Person(app, "alice"), Person(app, "bob")
    tab1 = connect(live_server, ws_token(alice))
    tab2 = connect(live_server, alice.token)  # a login token works too
    bob_tab = connect(live_server, ws_token(bob))
    try:
        sent = notify_completion(app, alice)
        for tab in (tab1, tab2):
            got = receive_json(tab)
            assert got == sent
            assert got["job_type"] == "try_on" and got["status"] == "done"
        assert_silent(bob_tab, tab1, tab2)

        sent_b = notify_completion(app, bob, status="failed")
        assert receive_json(bob_tab) == sent_b
        assert_silent(tab1, tab2)
    finally:
        for ws in (tab1, tab2, bob_tab):
            ws.close()


def test_progress_messages_are_forwarded_as_they_are(app, live_server, person) -> None:
    tab = connect(live_server, ws_token(person))
    try:
        progress = {"event": "progress", "job_id": "j1", "vton_id": "v1", "user_id": person.id, "step": 3, "steps": 50}
        text = json.dumps(progress, separators=(",", ":"))
        redis_of(app).publish(settings_of(app).redis_key_prefix + NOTIFICATION_CHANNEL, text)
        assert tab.receive(timeout=5) == text
    finally:
        tab.close()


def test_one_listener_serves_every_socket(app, live_server, person, other) -> None:
    sockets = [connect(live_server, ws_token(p)) for p in (person, person, other)]
    try:
        channel = settings_of(app).redis_key_prefix + NOTIFICATION_CHANNEL
        assert redis_of(app).pubsub_numsub(channel) == [(channel, 1)]
        assert app.extensions["proteus"].hub.socket_count() == 3
    finally:
        for ws in sockets:
            ws.close()


def test_a_closed_socket_is_dropped(app, live_server, person) -> None:
    ws = connect(live_server, ws_token(person))
    hub = app.extensions["proteus"].hub
    assert hub.socket_count() == 1
    ws.sock.shutdown(socket.SHUT_RDWR)  # vanish without a close frame
    ws.sock.close()
    deadline = time.monotonic() + 5
    while hub.socket_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.socket_count() == 0


# -- replay ------------------------------------------------------------------------------------------


def test_a_reconnect_with_the_last_event_id_replays_what_was_missed(app, live_server, person, other) -> None:
    tab = connect(live_server, ws_token(person))
    first = notify_completion(app, person)
    assert receive_json(tab) == first
    tab.close()

    missed = [notify_completion(app, person), notify_completion(app, person, status="failed")]
    notify_completion(app, other)  # someone else's: never replayed to this user

    again = connect(live_server, ws_token(person), query=f"last_event_id={first['event_id']}", expect_ready=False)
    try:
        assert [receive_json(again) for _ in missed] == missed
        ready = receive_json(again)
        assert ready == {"event": "ready", "user_id": person.id, "replayed": 2, "truncated": False}
        live = notify_completion(app, person)
        assert receive_json(again) == live
        assert_silent(again)
    finally:
        again.close()


def test_replay_is_bounded_by_the_replay_limit(make_app, person_factory=None) -> None:
    app = make_app(ws_replay_limit=2)
    server = LiveServer(app)
    try:
        someone = Person(app)
        before = publish_completion(app, someone.id, "job-0", None, None)
        newer = [
            publish_completion(app, someone.id, f"job-{i}", None, f"outputs/weaver/{someone.id}/job-{i}.png")
            for i in range(1, 4)
        ]
        ws = connect(server, ws_token(someone), query=f"last_event_id={before['event_id']}", expect_ready=False)
        try:
            assert [receive_json(ws) for _ in range(2)] == newer[1:]  # the two most recent, in order
            assert receive_json(ws) == {"event": "ready", "user_id": someone.id, "replayed": 2, "truncated": True}
        finally:
            ws.close()
    finally:
        server.stop()


def test_a_malformed_last_event_id_replays_nothing(app, live_server, person) -> None:
    publish_completion(app, person.id, "job-x", None, None)
    ws = connect(live_server, ws_token(person), query="last_event_id=yesterday", expect_ready=False)
    try:
        assert receive_json(ws)["event"] == "ready"
    finally:
        ws.close()


class LoopPair:
    """A SocketLoop serving one Connection whose other end (`client`) the test reads."""

    def __init__(self, *, max_pending: int = 1000) -> None:
        server, self.client = socket.socketpair()
        self.loop = SocketLoop(heartbeat_s=60, max_pending=max_pending)
        self.conn = Connection("u1", done=threading.Event())
        self.conn.sock = detach(server)
        server.close()
        self.loop.start()

    def texts(self, until_close: bool = False, timeout: float = 5) -> list[str]:
        """Text payloads (and 'close <code>') received until the socket is quiet or closed."""
        self.client.settimeout(0.5 if not until_close else timeout)
        data = b""
        while True:
            try:
                chunk = self.client.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        out = []
        while len(data) >= 2:
            opcode, size, at = data[0] & 0x0F, data[1] & 0x7F, 2
            if size == 126:
                size, at = int.from_bytes(data[2:4], "big"), 4
            elif size == 127:
                size, at = int.from_bytes(data[2:10], "big"), 10
            payload, data = data[at : at + size], data[at + size :]
            out.append(payload.decode() if opcode == 0x1 else f"close {int.from_bytes(payload[:2], 'big')}")
        return out

    def stop(self) -> None:
        self.loop.stop()
        self.client.close()


def test_live_messages_that_were_replayed_are_not_sent_twice() -> None:
    pair = LoopPair()
    try:
        pair.loop.push(pair.conn, "replayed", "5-0")  # arrives during the handshake
        pair.loop.push(pair.conn, "new", "6-0")
        pair.loop.attach(pair.conn, replayed=["5-0", "7-0"])
        pair.loop.push(pair.conn, "progress", None)
        pair.loop.push(pair.conn, "replayed too", "7-0")  # arrives after the handshake
        assert pair.texts() == ["new", "progress"]
    finally:
        pair.stop()


def test_a_socket_too_slow_to_read_is_closed() -> None:
    pair = LoopPair(max_pending=50)
    try:
        pair.loop.attach(pair.conn)
        big = "x" * 60_000
        for _ in range(400):  # far more than the socket buffers hold, nobody reading
            pair.loop.push(pair.conn, big, None)
        received = pair.texts(until_close=True)  # what was queued, then the close, then the end
        assert received[-1] == "close 1008" and len(received) < 400
        assert pair.conn.done is not None and pair.conn.done.wait(5)
    finally:
        pair.stop()


def test_the_listener_resubscribes_and_catches_up(app) -> None:
    settings = settings_of(app)
    redis = redis_of(app)
    hub = Hub(redis, prefix=settings.redis_key_prefix)
    hub.start()
    try:
        assert hub.wait_subscribed(5)
        pushed: list[tuple[str, str | None]] = []
        hub.loop.push = lambda conn, text, event_id: pushed.append((text, event_id))  # type: ignore[method-assign]
        hub.register(Connection("u1"))
        stream = settings.redis_key_prefix + NOTIFICATION_STREAM
        hub._subscribed.clear()
        hub._pubsub.connection.disconnect()  # the subscription breaks...
        message = {
            "job_id": "j",
            "job_type": "try_on",
            "status": "done",
            "user_id": "u1",
            "vton_id": None,
            "result_s3_key": None,
            "error": None,
            "finished_at": "2026-01-01T00:00:00Z",
        }
        entry = redis.xadd(stream, {"user_id": "u1", "message": json.dumps(message)})  # ...and misses a publish
        assert hub.wait_subscribed(10)
        assert [json.loads(text) for text, _ in pushed] == [{**message, "event_id": entry}]
        redis.publish(settings.redis_key_prefix + NOTIFICATION_CHANNEL, json.dumps({**message, "event_id": entry}))
        time.sleep(0.3)
        assert len(pushed) == 1  # the late live copy of a caught-up message is skipped
    finally:
        hub.stop()


# -- authentication -----------------------------------------------------------------------------------


def _expired(app: Flask, person: Person) -> str:
    now = int(time.time())
    claims = {"sub": person.id, "userId": person.id, "ver": 0, "iat": now - 100, "exp": now - 10, "purpose": "ws"}
    return jwt.encode(claims, settings_of(app).jwt_secret, algorithm="HS256")


def test_bad_tokens_close_with_4401(app, live_server, person) -> None:
    good = ws_token(person)
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for token in (
        None,
        "garbage",
        tampered,
        _expired(app, person),
        jwt.encode({"sub": person.id, "ver": 0, "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256"),
    ):
        ws = connect(live_server, token, expect_ready=False)
        assert close_code(ws) == 4401, token


def test_tokens_revoked_by_logout_close_with_4401(app, live_server, person) -> None:
    token = ws_token(person)
    login_token = person.token
    assert person.post("/user/logout").status_code == 200
    for revoked in (token, login_token):
        assert close_code(connect(live_server, revoked, expect_ready=False)) == 4401


def test_the_bearer_header_and_the_cookie_work(app, live_server, person) -> None:
    by_header = connect(live_server, headers={"Authorization": f"Bearer {person.token}"})
    by_cookie = connect(live_server, headers={"Cookie": f"token={person.token}"})
    same_origin = connect(
        live_server, headers={"Cookie": f"token={person.token}", "Origin": "http://127.0.0.1"}
    )  # the client's Host has no port
    try:
        sent = notify_completion(app, person)
        for ws in (by_header, by_cookie, same_origin):
            assert receive_json(ws) == sent
    finally:
        for ws in (by_header, by_cookie, same_origin):
            ws.close()


def test_a_cookie_from_a_foreign_origin_closes_with_4403(live_server, person) -> None:
    ws = connect(
        live_server, headers={"Cookie": f"token={person.token}", "Origin": "https://evil.example"}, expect_ready=False
    )
    assert close_code(ws) == 4403


# -- heartbeats -----------------------------------------------------------------------------------------


def _raw_handshake(port: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    response = b""
    while not response.endswith(b"\r\n\r\n"):  # byte by byte: the first frames may share its packet
        response += sock.recv(1)
    head = response.decode()
    assert head.startswith("HTTP/1.1 101"), head
    assert "permessage-deflate" not in head.lower()  # no per-socket zlib state
    sock.settimeout(5)
    return sock


def _frames(sock: socket.socket, until: float) -> list[int]:
    """Opcodes of the frames received before `until` (or the close)."""
    opcodes: list[int] = []
    buffer = b""
    while time.monotonic() < until:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            header = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            if length >= 126:
                if len(buffer) < header:
                    break
                length = int.from_bytes(buffer[2:header], "big")
            if len(buffer) < header + length:
                break
            opcodes.append(buffer[0] & 0x0F)
            buffer = buffer[header + length :]
            if opcodes[-1] == 0x8:  # the close: whatever follows is not a frame (werkzeug's dev
                return opcodes  # server writes an HTTP status line after a WebSocket ends)
    return opcodes


def test_the_server_pings_and_drops_a_client_that_never_answers(make_app) -> None:
    app = make_app(ws_heartbeat_s=0.3)
    server = LiveServer(app)
    try:
        someone = Person(app)
        sock = _raw_handshake(server.port, ws_token(someone))
        sock.settimeout(0.5)
        opcodes = _frames(sock, time.monotonic() + 4)
        assert opcodes[0] == 0x1  # the ready message
        assert 0x9 in opcodes  # a ping
        assert opcodes[-1] == 0x8  # then, no pong having come, the close
        hub = app.extensions["proteus"].hub
        deadline = time.monotonic() + 3
        while hub.socket_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.socket_count() == 0
        sock.close()
    finally:
        server.stop()


def test_a_client_that_answers_pings_stays(make_app) -> None:
    app = make_app(ws_heartbeat_s=0.2)
    server = LiveServer(app)
    try:
        someone = Person(app)
        ws = connect(server, ws_token(someone))  # simple-websocket answers pings itself
        time.sleep(1.0)
        sent = publish_completion(app, someone.id, "j", None, None)
        assert receive_json(ws) == sent
        ws.close()
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/ws?token=x"])
def test_the_ws_route_is_described_in_openapi(path) -> None:
    from gateway.openapi import document

    assert "/ws" in document()["paths"] and document()["x-websocket"]["closeCodes"]["4401"]
