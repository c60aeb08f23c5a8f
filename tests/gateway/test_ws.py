"""WS /ws: pushes go to every socket of their user and no one else's; replay after a
reconnect; bad tokens close with 4401; heartbeats; one listener per process that resubscribes."""

from __future__ import annotations

import json
import socket
import time

import jwt
import pytest
from flask import Flask

from gateway.ws import Hub
from gateway.wsloop import Connection
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM
from tests.gateway.helpers import (
    LiveServer,
    Person,
    redis_of,
    settings_of,
)
from tests.gateway.ws_support import (
    assert_silent,
    close_code,
    connect,
    notify_completion,
    publish_completion,
    receive_json,
    ws_token,
)

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


@pytest.mark.parametrize("path", ["/ws?token=x"])
def test_the_ws_route_is_described_in_openapi(path) -> None:
    from gateway.openapi import document

    assert "/ws" in document()["paths"] and document()["x-websocket"]["closeCodes"]["4401"]


def test_sockets_authenticate_and_receive_on_both_databases(db_app) -> None:
    """The handshake's token check reads outside a transaction (autocommit on PostgreSQL)."""
    server = LiveServer(db_app)
    person = Person(db_app, "dora")
    tab = connect(server, ws_token(person))
    try:
        sent = notify_completion(db_app, person)
        assert receive_json(tab) == sent
        login_token = person.token
        assert person.post("/user/logout").status_code == 200
        assert close_code(connect(server, login_token, expect_ready=False)) == 4401  # revoked: read fresh
    finally:
        tab.close()
        server.stop()
