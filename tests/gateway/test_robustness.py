"""Issue 12's gateway defects, each pinned by a test that failed before its fix: SQLite
writers that queue instead of failing, 5xx answers that do not count against a rate limit,
Retry-After never 0, password hashing off the request thread at one cost for real and
dummy hashes (upgraded from the original's cost 10), SameSite=None cookies that are Secure,
GET /vton without paging answering every try-on, and replay after lost history."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bcrypt
import pytest
from flask import Flask

from gateway import passwords
from shared.db.models import User
from shared.routing import NOTIFICATION_STREAM
from tests.gateway.helpers import (
    PASSWORD,
    LiveServer,
    Person,
    redis_of,
    sessions_of,
    settings_of,
)
from tests.gateway.ws_support import connect, publish_completion, receive_json, ws_token

# -- 5: SQLite "database is locked" -----------------------------------------------------------------


def test_concurrent_writers_on_sqlite_all_succeed(app: Flask) -> None:
    """Each POST reads (the token's user) then writes: DEFERRED transactions failed at once with
    "database is locked" when another writer committed in between; now they queue."""
    people = [Person(app) for _ in range(6)]
    tryons = {p.id: p.create_tryon() for p in people}

    def create(person: Person) -> list[int]:
        client = app.test_client()
        tryon = tryons[person.id]
        body = {"user_snap": tryon["user_snap"], "uncleaned_outfit": tryon["uncleaned_outfit"]}
        return [client.post("/vton", json=body, headers=person.headers).status_code for _ in range(12)]

    with ThreadPoolExecutor(len(people)) as pool:
        codes = [code for result in pool.map(create, people) for code in result]
    assert codes == [201] * len(codes), sorted(set(codes))


def test_a_5xx_does_not_count_against_the_rate_limit(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy.exc

    app = make_app(rate_limit="2 per minute")
    person = Person(app)  # signup 1 of 2 from this address
    client = app.test_client()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr("gateway.users._find_by_email", broken)
    for _ in range(3):
        assert (
            client.post(
                "/user/login", json={"email": person.email, "password": PASSWORD}, headers=person.headers
            ).status_code
            == 503
        )
    monkeypatch.undo()
    ok = client.post("/user/login", json={"email": person.email, "password": PASSWORD}, headers=person.headers)
    assert ok.status_code == 200  # the three 503s were not held against the caller


def test_retry_after_is_never_0(make_app: Any) -> None:
    """Flask-Limiter rounds down: in a window's last second it said "Retry-After: 0"."""
    app = make_app(rate_limit="1 per 1 second")
    client = app.test_client()
    seen = []
    started = time.monotonic()
    while time.monotonic() - started < 2.2:  # sample every part of two windows
        response = client.post("/user/login", json={"email": "a@example.com", "password": "x" * 8})
        if response.status_code == 429:
            seen.append(int(response.headers["Retry-After"]))
        time.sleep(0.02)
    assert seen and min(seen) >= 1


# -- 9: hashing off the request thread, one cost for every check -------------------------------------


def test_hashes_run_on_the_pool_not_the_request_thread(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        threads.append(threading.get_ident())
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    Person(app)  # signs up and logs in
    assert threads and threading.get_ident() not in threads


def test_an_unknown_email_is_checked_against_a_hash_of_the_current_cost(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(bcrypt_rounds=5)
    person = Person(app)
    with sessions_of(app)() as session:
        assert passwords.hash_cost(session.get(User, person.id).password_hash) == 5
    checked: list[bytes] = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, hashed: checked.append(hashed) or real(pw, hashed))
    response = app.test_client().post("/user/login", json={"email": "nobody@example.com", "password": PASSWORD})
    assert response.status_code == 401
    assert [passwords.hash_cost(h.decode()) for h in checked] == [5]  # not a cheaper dummy


def test_a_lower_cost_hash_logs_in_and_is_upgraded(make_app: Any) -> None:
    app = make_app(bcrypt_rounds=6)
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode()
    with sessions_of(app)() as session:
        session.add(User(id="legacy-cost", user_name="old", email="cost@example.com", password_hash=legacy))
        session.commit()
    client = app.test_client()
    assert client.post("/user/login", json={"email": "cost@example.com", "password": PASSWORD}).status_code == 200
    with sessions_of(app)() as session:
        upgraded = session.get(User, "legacy-cost").password_hash
    assert passwords.hash_cost(upgraded) == 6 and bcrypt.checkpw(PASSWORD.encode(), upgraded.encode())
    assert client.post("/user/login", json={"email": "cost@example.com", "password": PASSWORD}).status_code == 200
    assert client.post("/user/login", json={"email": "cost@example.com", "password": "wrong one"}).status_code == 401


def test_a_higher_cost_hash_is_left_alone(make_app: Any) -> None:
    app = make_app(bcrypt_rounds=4)
    strong = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()
    with sessions_of(app)() as session:
        session.add(User(id="strong", user_name="s", email="strong@example.com", password_hash=strong))
        session.commit()
    assert (
        app.test_client().post("/user/login", json={"email": "strong@example.com", "password": PASSWORD}).status_code
        == 200
    )
    with sessions_of(app)() as session:
        assert session.get(User, "strong").password_hash == strong


def test_under_gevent_a_hash_does_not_block_other_greenlets(tmp_path: Any) -> None:
    """The pool is native threads: a greenlet keeps running while another waits for a cost-12 hash."""
    import subprocess
    import sys

    script = tmp_path / "gevent_hash.py"
    script.write_text(
        "from gevent import monkey; monkey.patch_all()\n"
        "import gevent\n"
        "from gateway.passwords import PasswordHasher\n"
        "hasher = PasswordHasher(12, threads=1)\n"
        "ticks = []\n"
        "def tick():\n"
        "    while True:\n"
        "        ticks.append(1); gevent.sleep(0.005)\n"
        "ticker = gevent.spawn(tick); gevent.sleep(0)\n"
        "before = len(ticks); hasher.hash('a password'); during = len(ticks) - before\n"
        "ticker.kill(); hasher.close()\n"
        "print(during)\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 0  # blocked in the loop's thread, it would be 0


# -- 10: cookies, GET /vton ---------------------------------------------------------------------------


def test_samesite_none_cookies_are_always_secure(make_app: Any) -> None:
    app = make_app(frontend_origins=("http://localhost:3000",))  # the original frontend, plain HTTP
    client = app.test_client()
    client.post("/user/signup", json={"user_name": "h", "email": "h@example.com", "password": PASSWORD})
    login = client.post("/user/login", json={"email": "h@example.com", "password": PASSWORD})
    assert "SameSite=None" in login.headers["Set-Cookie"] and "Secure" in login.headers["Set-Cookie"]
    logout = client.post("/user/logout")
    assert "SameSite=None" in logout.headers["Set-Cookie"] and "Secure" in logout.headers["Set-Cookie"]


def test_get_vton_without_paging_answers_every_tryon(person: Person) -> None:
    made = [person.create_tryon() for _ in range(53)]
    everything = person.get("/vton").get_json()
    assert len(everything) == 53 and {t["id"] for t in everything} == {t["id"] for t in made}
    assert len(person.get("/vton?limit=5").get_json()) == 5
    assert len(person.get(f"/vton?before={everything[2]['id']}").get_json()) == 50


# -- 8: replay after lost history ---------------------------------------------------------------------


def test_replay_after_lost_history_says_truncated(app: Flask, live_server: LiveServer, person: Person) -> None:
    tab = connect(live_server, ws_token(person))
    last = publish_completion(app, person.id, "job-1", None, None)
    assert receive_json(tab)["event_id"] == last["event_id"]
    tab.close()
    redis_of(app).delete(settings_of(app).redis_key_prefix + NOTIFICATION_STREAM)  # Redis lost its data
    again = connect(live_server, ws_token(person), query=f"last_event_id={last['event_id']}", expect_ready=False)
    ready = receive_json(again)
    assert ready["event"] == "ready" and ready["replayed"] == 0 and ready["truncated"] is True
    again.close()


def test_replay_with_history_intact_is_not_truncated(app: Flask, live_server: LiveServer, person: Person) -> None:
    tab = connect(live_server, ws_token(person))
    first = publish_completion(app, person.id, "job-1", None, None)
    receive_json(tab)
    tab.close()
    second = publish_completion(app, person.id, "job-2", None, None)
    again = connect(live_server, ws_token(person), query=f"last_event_id={first['event_id']}", expect_ready=False)
    assert receive_json(again) == second
    ready = receive_json(again)
    assert ready["event"] == "ready" and ready["replayed"] == 1 and ready["truncated"] is False
    again.close()


def test_hashing_threads_run_below_the_event_loops_priority() -> None:
    """When logins outnumber the cores, they wait among themselves, not in front of pushes."""
    import os

    hasher = passwords.PasswordHasher(4, threads=1)
    try:
        seen = hasher._run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert seen >= passwords.HASH_NICENESS
    finally:
        hasher.close()
