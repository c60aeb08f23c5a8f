"""gateway/ws_handshake.py: handshakes served in front of Flask keep what Flask's hooks did
(the request counter, the JSON error shape), and whatever is not a handshake still reaches Flask."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time
from pathlib import Path

import pytest
from flask import Flask

from gateway import resources
from tests.gateway.helpers import LiveServer, Person, settings_of
from tests.gateway.ws_support import close_code, connect, ws_token


def _handshakes_counted(app: Flask, status: str) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    pattern = rf'proteus_http_requests_total\{{method="GET",route="/ws",status="{status}"\}} ([0-9.e+]+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def _http_answer(port: int, token: str, query: str = "") -> tuple[str, bytes]:
    """A handshake on a raw socket; the status line and body of the HTTP answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            (
                f"GET /ws?token={token}{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode().splitlines()[0], body


def test_handshakes_are_counted_as_101(app: Flask, live_server: LiveServer, person: Person) -> None:
    before = _handshakes_counted(app, "101")
    connect(live_server, ws_token(person)).close()
    assert close_code(connect(live_server, "garbage", expect_ready=False)) == 4401
    assert _handshakes_counted(app, "101") == before + 2


def test_what_is_not_a_handshake_reaches_flask_and_answers_400(app: Flask) -> None:
    client = app.test_client()
    for headers in ({}, {"Upgrade": "websocket", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "a2V5"}):
        response = client.get("/ws", headers=headers)
        assert response.status_code == 400
        assert "Sec-WebSocket-Key" in response.get_json()["message"]


def test_a_lost_database_answers_503_in_the_gateways_error_shape(
    app: Flask, live_server: LiveServer, person: Person
) -> None:
    token = ws_token(person)
    Path(settings_of(app).database_url.removeprefix("sqlite:///")).unlink()  # an empty database takes its place
    resources.resources_of(app).engine.dispose()
    before = _handshakes_counted(app, "503")
    status, body = _http_answer(live_server.port, token)
    assert status.startswith("HTTP/1.1 503"), status
    error = json.loads(body)
    assert error["code"] == "dependency_unavailable" and "database" in error["message"], error
    assert _handshakes_counted(app, "503") == before + 1


def test_behind_a_proxy_the_forwarded_host_is_the_origin_a_cookie_may_come_from(
    live_server: LiveServer, person: Person
) -> None:
    """ProxyFix runs before the handshake: the Origin is checked against X-Forwarded-Host."""
    cookie = {"Cookie": f"token={person.token}", "X-Forwarded-Host": "tryon.example", "X-Forwarded-Proto": "https"}
    connect(live_server, headers={**cookie, "Origin": "https://tryon.example"}).close()
    foreign = connect(live_server, headers={**cookie, "Origin": "http://127.0.0.1"}, expect_ready=False)
    assert close_code(foreign) == 4403


def test_a_replay_that_fails_answers_503_and_leaves_no_socket_behind(
    app: Flask, live_server: LiveServer, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    from gateway.ws import Hub

    connect(live_server, ws_token(person)).close()  # the hub is up and subscribed
    hub = resources.resources_of(app).hub
    deadline = time.monotonic() + 5
    while hub.socket_count() and time.monotonic() < deadline:  # the loop drops the closed one
        time.sleep(0.02)

    def lost(*_args: object) -> None:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(Hub, "replay", lost)
    status, body = _http_answer(live_server.port, ws_token(person), query="&last_event_id=1-0")
    assert status.startswith("HTTP/1.1 503"), status
    assert json.loads(body)["code"] == "dependency_unavailable"
    assert hub.socket_count() == 0
