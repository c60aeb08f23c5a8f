"""The public API through the gateway: API keys, /v1/run, status, cancel, rate limits, webhook
settings (what /v1/run refuses: test_v1_input_checks.py).

The whole path to a finished prediction (real processes, the fashn SDK, webhooks) is in
tests/test_public_api.py; here the gateway's own answers, against real Redis and the
database (SQLite, and PostgreSQL for the main flow)."""

from __future__ import annotations

import base64
import hashlib

from flask import Flask

from shared.db.models import ApiKey, Job
from tests.gateway.helpers import (
    Person,
    close_app,
    sessions_of,
    settings_of,
    storage_of,
    stream_entries,
)
from tests.gateway.v1_support import Integrator, png

# -- keys ---------------------------------------------------------------------------------


def test_a_key_is_shown_once_stored_hashed_and_listed_by_prefix(app: Flask, person: Person, shop: Integrator) -> None:
    assert shop.key.startswith("pt_") and len(shop.key) > 40
    assert shop.created["prefix"] == shop.key[:12] and shop.created["rate_limit"] == "60 per minute"
    with sessions_of(app)() as session:
        row = session.get(ApiKey, shop.created["id"])
        assert row.key_hash == hashlib.sha256(shop.key.encode()).hexdigest()
        assert shop.key not in {row.name, row.prefix, row.key_hash}
    listed = person.get("/api-keys").get_json()["keys"]
    assert [k["prefix"] for k in listed] == [shop.created["prefix"]]
    assert "key" not in listed[0] and listed[0]["last_used_at"] is None
    assert shop.status("0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01").status_code == 404
    assert person.get("/api-keys").get_json()["keys"][0]["last_used_at"] is not None


def test_a_key_opens_v1_only_and_a_session_does_not_open_v1(person: Person, shop: Integrator) -> None:
    for path in ("/user", "/api-keys", "/webhook-settings"):
        response = shop.client.get(path, headers=shop.headers)
        assert response.status_code == 401, path
    response = person.post("/v1/run", json={"model_name": "tryon-v1.6", "inputs": shop.images()})
    assert response.status_code == 401
    assert response.get_json()["error"] == "UnauthorizedAccess"
    missing = shop.client.get("/v1/webhooks/deliveries")
    assert missing.status_code == 401 and missing.get_json()["field"] == "Authorization"
    unknown_key = "pt_" + "x" * 40
    for path in ("/v1/run", "/v1/status/abc", "/v1/cancel/abc"):
        method = shop.client.get if "status" in path else shop.client.post
        unknown = method(path, headers={"Authorization": f"Bearer {unknown_key}"})
        assert unknown.status_code == 401 and unknown.get_json()["field"] == "Authorization", path
        assert unknown_key[:12] in unknown.get_json()["message"] and "unknown" in unknown.get_json()["message"]


def test_revoking_holds_at_once_on_every_replica(app: Flask, person: Person, shop: Integrator) -> None:
    from gateway.app import create_app

    replica_app = create_app(settings_of(app))  # a second gateway process on the same database
    replica = replica_app.test_client()
    assert replica.get("/v1/webhooks/deliveries", headers=shop.headers).status_code == 200
    assert person.delete(f"/api-keys/{shop.created['id']}").status_code == 204
    for client in (shop.client, replica):
        response = client.get("/v1/webhooks/deliveries", headers=shop.headers)
        assert response.status_code == 401 and response.get_json()["field"] == "Authorization"
        assert shop.key[:12] in response.get_json()["message"] and "revoked" in response.get_json()["message"]
    assert person.get("/api-keys").get_json()["keys"][0]["revoked_at"] is not None
    close_app(replica_app)


def test_nobody_else_revokes_or_sees_my_keys(person: Person, other: Person, shop: Integrator) -> None:
    assert other.delete(f"/api-keys/{shop.created['id']}").status_code == 404
    assert other.get("/api-keys").get_json()["keys"] == []


def test_each_key_has_its_rate_limit_with_standard_headers(person: Person) -> None:
    slow = Integrator(person, rate_limit="2 per minute")
    answers = [slow.client.get("/v1/webhooks/deliveries", headers=slow.headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["RateLimit-Policy"] == '"key";q=2;w=60'
    assert answers[0].headers["RateLimit"].startswith('"key";r=1;t=')
    limited = answers[2]
    assert limited.get_json()["error"] == "RateLimitExceeded" and "2 per minute" in limited.get_json()["message"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    fresh = Integrator(person)  # another key: its own counter
    assert fresh.client.get("/v1/webhooks/deliveries", headers=fresh.headers).status_code == 200
    bad = person.post("/api-keys", json={"rate_limit": "lots"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "rate_limit"


# -- run, status, cancel --------------------------------------------------------------------


def test_run_queues_a_try_on_and_status_follows_it(db_app: Flask) -> None:
    shop = Integrator(Person(db_app))
    response = shop.client.post(  # webhook_url in the query, as FASHN's SDK sends it
        "/v1/run?webhook_url=https://shop.example.com/hook",
        headers=shop.headers,
        json={
            "model_name": "tryon-v1.6",
            "inputs": {
                **shop.images(),
                "category": "tops",
                "mode": "performance",
                "num_samples": 3,
                "seed": 7,
                "output_format": "webp",
            },
        },
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["error"] is None
    ((_, event),) = stream_entries(db_app, "proteus:tryon")
    data = event["data"]
    assert data["job_id"] == body["id"] and data["category"] == "upper" and data["steps"] == 20
    assert data["num_samples"] == 3 and data["seed"] == 7 and data["output_format"] == "webp"
    assert data["variant"] == "maskfree" and data["model"] == "catvton-maskfree"  # the default model
    for field in ("person_key", "garment_key"):  # the data: URLs were stored as the caller's uploads
        assert data[field].startswith(f"uploads/{shop.person.id}/")
        assert storage_of(db_app).get(data[field])[:8] == b"\x89PNG\r\n\x1a\n"
    with sessions_of(db_app)() as session:
        assert session.get(Job, body["id"]).params["api"]["webhook_url"] == "https://shop.example.com/hook"
    status = shop.status(body["id"]).get_json()
    assert status == {
        "id": body["id"],
        "status": "in_queue",
        "output": None,
        "error": None,
        "model_name": "tryon-v1.6",
        "created_at": status["created_at"],
        "seeds": None,
    }


def test_a_completed_run_lists_every_sample(app: Flask, shop: Integrator) -> None:
    prediction = shop.run({"num_samples": 2, "return_base64": True}).get_json()["id"]
    storage = storage_of(app)
    keys = [f"outputs/weaver/{shop.person.id}/{prediction}.png", f"outputs/weaver/{shop.person.id}/{prediction}-1.png"]
    for key in keys:
        storage.put(key, png(), "image/png")
    from shared import jobs

    with sessions_of(app)() as session:
        assert jobs.complete_job(session, prediction, result_key=keys[0], result_keys=keys, seed=11)
        session.commit()
    status = shop.status(prediction).get_json()
    assert status["status"] == "completed" and status["seeds"] == [11, 12]
    assert [base64.b64decode(o.split(",", 1)[1]) for o in status["output"]] == [png(), png()]
    assert all(o.startswith("data:image/png;base64,") for o in status["output"])


def test_base64_results_are_gone_after_their_time_to_live(app: Flask, shop: Integrator) -> None:
    """The retention sweep finds a real /v1 run's return_base64 flag; a run with links stays."""
    from datetime import UTC, datetime, timedelta

    from shared import jobs
    from shared.lifecycle.retention import RetentionPolicy, RetentionSweep

    inline = shop.run({"num_samples": 2, "return_base64": True}).get_json()["id"]
    linked = shop.run().get_json()["id"]
    storage = storage_of(app)
    keys = {
        p: [f"outputs/weaver/{shop.person.id}/{p}.png", f"outputs/weaver/{shop.person.id}/{p}-1.png"]
        for p in (inline, linked)
    }
    with sessions_of(app)() as session:
        for prediction, stored in keys.items():
            for key in stored:
                storage.put(key, png(), "image/png")
            assert jobs.complete_job(session, prediction, result_key=stored[0], result_keys=stored, seed=11)
        session.commit()
    assert len(shop.status(inline).get_json()["output"]) == 2  # delivered while it lives

    settings = settings_of(app)
    later = datetime.now(UTC) + timedelta(seconds=settings.base64_result_ttl_s + 1)
    sweep = RetentionSweep(sessions_of(app), storage, RetentionPolicy.from_settings(settings), clock=lambda: later)
    report = sweep.run_base64()

    assert (report.base64_results, report.objects_deleted) == (1, 2)
    assert not any(storage.exists(key) for key in keys[inline])
    assert all(storage.exists(key) for key in keys[linked])
    status = shop.status(inline).get_json()
    assert status["status"] == "completed" and status["output"] == []
    assert len(shop.status(linked).get_json()["output"]) == 2


def test_cancel_stops_a_queued_run_at_once(app: Flask, shop: Integrator, other: Person) -> None:
    prediction = shop.run().get_json()["id"]
    intruder = Integrator(other)
    assert intruder.cancel(prediction).status_code == 404
    assert intruder.status(prediction).status_code == 404
    response = shop.cancel(prediction)
    assert response.status_code == 200 and response.get_json() == {"id": prediction, "status": "canceled"}
    assert shop.status(prediction).get_json()["status"] == "canceled"
    assert [e["type"] for _, e in stream_entries(app, "proteus:results")] == ["dev.proteus.job.canceled"]
    prefix = settings_of(app).redis_key_prefix
    from tests.gateway.helpers import redis_of

    assert redis_of(app).exists(f"{prefix}proteus:canceled:{prediction}")
    again = shop.cancel(prediction)
    assert again.status_code == 409 and "already canceled" in again.get_json()["message"]


def test_an_idempotency_key_answers_the_same_prediction(app: Flask, shop: Integrator) -> None:
    first = shop.client.post(
        "/v1/run",
        json={"model_name": "catvton-mask", "inputs": shop.images()},
        headers={**shop.headers, "Idempotency-Key": "order-1"},
    )
    second = shop.client.post(
        "/v1/run",
        json={"model_name": "catvton-mask", "inputs": shop.images()},
        headers={**shop.headers, "Idempotency-Key": "order-1"},
    )
    assert first.get_json()["id"] == second.get_json()["id"]
    assert len(stream_entries(app, "proteus:tryon")) == 1
    with sessions_of(app)() as session:
        assert session.get(Job, first.get_json()["id"]).params["variant"] == "mask"


def test_model_names_fashn_aliases_and_proteus_names(app: Flask, shop: Integrator) -> None:
    shop.run({"segmentation_free": False})  # a FASHN name: the default CatVTON, masked variant
    shop.client.post(
        "/v1/run",
        headers=shop.headers,
        json={
            "model_name": "fashn-vton-1.5",
            "inputs": {**shop.images(), "garment_photo_type": "flat-lay", "mode": "quality"},
        },
    )
    (_, masked), (_, fashn) = stream_entries(app, "proteus:tryon")
    assert masked["data"]["model"] == "catvton-mask" and masked["data"]["variant"] == "mask"
    assert fashn["data"]["model"] == "fashn-vton-1.5" and fashn["data"]["garment_photo_type"] == "flat-lay"
    assert fashn["data"]["segmentation_free"] is True and fashn["data"]["steps"] == 30


# -- webhook settings -------------------------------------------------------------------------


def test_the_webhook_secret_rotates_and_the_default_url_is_kept(person: Person) -> None:
    first = person.get("/webhook-settings").get_json()
    assert first["secret"].startswith("whsec_") and first["webhook_url"] is None
    assert person.get("/webhook-settings").get_json()["secret"] == first["secret"]
    rotated = person.post("/webhook-settings/rotate-secret").get_json()["secret"]
    assert rotated != first["secret"]
    updated = person.put("/webhook-settings", json={"webhook_url": "https://shop.example.com/hooks"}).get_json()
    assert updated == {"webhook_url": "https://shop.example.com/hooks", "secret": rotated}
    bad = person.put("/webhook-settings", json={"webhook_url": "javascript:alert(1)"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "webhook_url"
