"""GET /user/export and DELETE /user on SQLite and PostgreSQL, local storage and S3 (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from gateway.account_data import read_archive
from shared.config import Settings
from shared.db.models import GarmentAsset, Job, OutboxMessage, TryOn, User
from shared.routing import NOTIFICATION_STREAM, prefixed
from tests.conftest import storage_overrides
from tests.gateway.helpers import (
    PNG,
    Person,
    build_app,
    close_app,
    make_settings,
    sessions_of,
    storage_of,
)


@pytest.fixture
def data_app(
    settings: Settings,
    database_url: str,
    storage_backend: str,
    redis_server_url: str,
    redis_prefix: str,
    request: pytest.FixtureRequest,
) -> Iterator[Flask]:
    app = build_app(
        make_settings(
            settings, database_url, redis_server_url, redis_prefix, **storage_overrides(storage_backend, request)
        )
    )
    yield app
    close_app(app)


def give_data(app: Flask, who: Person, redis_client: redis.Redis, stream: str) -> dict[str, Any]:
    """A try-on with its two uploads, a finished job with its result, a cut-out and a notification."""
    storage = storage_of(app)
    person, garment = f"uploads/{who.id}/1-me.png", f"uploads/{who.id}/2-shirt.png"
    for key in (person, garment):
        storage.put(key, PNG, "image/png")
    tryon = who.post("/vton", json={"user_snap": person, "uncleaned_outfit": garment}).get_json()
    job = who.post(
        "/jobs/weaver", json={"vton_id": tryon["id"], "user_snap_s3": person, "uncleaned_outfit_s3": garment}
    ).get_json()
    result, cutout = f"outputs/weaver/{who.id}/{job['job_id']}.png", f"outputs/tailor/{who.id}/{'c' * 64}-cutout.png"
    storage.put(result, PNG + b"result", "image/png")
    storage.put(cutout, PNG + b"cutout", "image/png")
    with sessions_of(app)() as session:
        session.add(GarmentAsset(user_id=who.id, content_hash="c" * 64, kind="cutout", key=cutout))
        session.get(Job, job["job_id"]).result_key = result
        session.get(TryOn, tryon["id"]).outfit_try_on = result
        session.add(OutboxMessage(job_id=job["job_id"], user_id=who.id, message="{}"))
        session.commit()
    message = {"job_id": job["job_id"], "status": "done", "user_id": who.id, "result_s3_key": result}
    redis_client.xadd(stream, {"user_id": who.id, "message": json.dumps(message)})
    return {"tryon": tryon["id"], "job": job["job_id"], "keys": {person, garment, result, cutout}}


@pytest.fixture
def two_people(data_app: Flask, redis_server_url: str) -> Iterator[tuple[Person, Person, dict, dict, redis.Redis, str]]:
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    stream = prefixed(NOTIFICATION_STREAM, data_app.config["PROTEUS_SETTINGS"].redis_key_prefix)
    alice, bob = Person(data_app, "alice"), Person(data_app, "bob")
    yield (
        alice,
        bob,
        give_data(data_app, alice, client, stream),
        give_data(data_app, bob, client, stream),
        client,
        stream,
    )
    client.close()


def test_export_holds_everything_of_the_user_and_nothing_else(data_app: Flask, two_people: Any) -> None:
    alice, bob, mine, _theirs, _redis, _stream = two_people
    response = alice.get("/user/export")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    files = read_archive(response.get_data())

    account = json.loads(files["account.json"])
    assert (
        account["email"] == alice.email
        and "password_hash" not in account
        and "password" not in files["account.json"].decode()
    )
    assert [t["id"] for t in json.loads(files["tryons.json"])] == [mine["tryon"]]
    jobs = json.loads(files["jobs.json"])
    assert [j["id"] for j in jobs] == [mine["job"]] and "params" in jobs[0]
    assert len(json.loads(files["garment_assets.json"])) == 1
    assert [n["job_id"] for n in json.loads(files["notifications.json"])] == [mine["job"]]
    objects = {name.removeprefix("objects/"): data for name, data in files.items() if name.startswith("objects/")}
    assert set(objects) == mine["keys"]
    assert all(data.startswith(PNG) for data in objects.values())
    assert not any(bob.id in name for name in files)
    assert b"README" not in b"".join(objects.values()) and "README.txt" in files


def test_delete_removes_every_row_object_and_notification(data_app: Flask, two_people: Any) -> None:
    alice, bob, mine, theirs, redis_client, stream = two_people
    storage = storage_of(data_app)
    assert alice.delete("/user").status_code == 204

    assert not any(storage.exists(key) for key in mine["keys"])
    assert all(storage.exists(key) for key in theirs["keys"])
    for prefix in (f"uploads/{alice.id}/", f"outputs/weaver/{alice.id}/", f"outputs/tailor/{alice.id}/"):
        assert storage.list(prefix) == []
    with sessions_of(data_app)() as session:
        assert session.get(User, alice.id) is None and session.get(TryOn, mine["tryon"]) is None
        assert session.get(Job, mine["job"]) is None
        assert session.query(GarmentAsset).filter_by(user_id=alice.id).count() == 0
        assert session.query(OutboxMessage).filter_by(user_id=alice.id).count() == 0
        assert session.query(OutboxMessage).filter_by(user_id=bob.id).count() == 1
        assert session.get(TryOn, theirs["tryon"]) is not None and session.get(Job, theirs["job"]) is not None
    owners = [fields["user_id"] for _id, fields in redis_client.xrange(stream)]
    assert owners == [bob.id]
    assert alice.get("/user").status_code == 401
    assert bob.get("/user/export").status_code == 200
