"""The whole pipeline as real processes: runner -> enqueue -> weave (smoke) -> notify.

A try-on request published on its stream must end as a result object in storage, a
`succeeded` job, a `done` try-on and exactly one completion on the notification channel,
on SQLite and on PostgreSQL; and a weave server killed mid-job must not change that.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import pytest
import redis
from PIL import Image

from shared import event_types as t
from shared.config import Settings
from shared.db.models import Job, TryOn, User
from shared.db.session import make_engine, make_session_factory, session_scope
from shared.events import from_stream_fields, make_event
from shared.routing import NOTIFICATION_CHANNEL, prefixed
from shared.storage import storage_from_settings
from shared.streams.publish import publish
from tests.conftest import stack_environ, start_stack

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (96, 128)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def seed_tryon(settings: Settings) -> tuple[str, str, dict[str, str]]:
    """A user, their two uploaded photos and a try-on row; returns (user_id, vton_id, keys)."""
    storage = storage_from_settings(settings)
    user_id, vton_id = str(uuid.uuid4()), str(uuid.uuid4())
    keys = {"person_key": f"uploads/{user_id}/person.jpg", "garment_key": f"uploads/{user_id}/garment.jpg"}
    storage.put(keys["person_key"], jpeg((200, 150, 120)), "image/jpeg")
    storage.put(keys["garment_key"], jpeg((20, 40, 200)), "image/jpeg")
    sessions = make_session_factory(make_engine(settings.database_url))
    with session_scope(sessions) as session:
        session.add(User(id=user_id, user_name="ada", email=f"{user_id}@example.com", password_hash="x"))
        session.flush()
        session.add(
            TryOn(
                id=vton_id,
                user_id=user_id,
                user_snap=keys["person_key"],
                uncleaned_outfit=keys["garment_key"],
                status="queued",
            )
        )
    return user_id, vton_id, keys


def request_tryon(settings: Settings, user_id: str, vton_id: str, keys: dict[str, str], **params: object) -> str:
    job_id = str(uuid.uuid4())
    event = make_event(
        t.TRYON_REQUESTED,
        {"job_id": job_id, "user_id": user_id, "vton_id": vton_id, "category": "upper", **keys} | params,
        source="/tests",
        subject=job_id,
        user_id=user_id,
    )
    publish(redis.Redis.from_url(settings.redis_url or ""), event, prefix=settings.redis_key_prefix)
    return job_id


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def job_row(settings: Settings, job_id: str) -> dict[str, object] | None:
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            return None
        tryon = session.get(TryOn, job.vton_id)
        return {
            "status": job.status,
            "result_key": job.result_key,
            "tryon_status": tryon.status if tryon else None,
            "outfit_try_on": tryon.outfit_try_on if tryon else None,
            "error": job.error,
        }


def completions(pubsub: redis.client.PubSub, seconds: float) -> list[dict[str, object]]:
    """Completion messages received on the channel within `seconds` (progress ignored)."""
    found: list[dict[str, object]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            body = json.loads(message["data"])
            if "job_type" in body:
                found.append(body)
    return found


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    smoke_models_dir: Path,
    redis_server_url: str,
):
    """The whole system on SQLite, then on PostgreSQL (one stack per database, shared by the tests)."""
    folder = tmp_path_factory.mktemp(f"system-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite:///{folder / 'proteus.db'}"
    else:
        database_url = request.getfixturevalue("postgres_module_url")
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    env = stack_environ(
        folder / "var", smoke_models_dir, DATABASE_URL=database_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=prefix
    )
    running = start_stack(env, folder / "logs")
    try:
        yield running
    finally:
        running.stop()
        client = redis.Redis.from_url(redis_server_url)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)


def test_tryon_flows_through_weave_to_notify(stack, redis_server_url: str) -> None:
    settings = stack.settings
    user_id, vton_id, keys = seed_tryon(settings)
    pubsub = redis.Redis.from_url(redis_server_url).pubsub()
    pubsub.subscribe(prefixed(NOTIFICATION_CHANNEL, settings.redis_key_prefix))

    job_id = request_tryon(settings, user_id, vton_id, keys, steps=4, seed=7)
    row = wait_for(lambda: (r := job_row(settings, job_id)) and r["status"] in ("succeeded", "failed") and r)
    assert row["status"] == "succeeded", (row, stack.log_tail("weave"))
    assert row["tryon_status"] == "done"
    assert row["result_key"] == row["outfit_try_on"] == f"outputs/weaver/{user_id}/{job_id}.png"
    result = Image.open(io.BytesIO(storage_from_settings(settings).get(row["result_key"])))
    assert result.size == (768, 1024)

    messages = completions(pubsub, 2.0)
    assert [(m["job_id"], m["job_type"], m["status"]) for m in messages] == [(job_id, "try_on", "done")]
    assert messages[0]["result_s3_key"] == row["result_key"]
    assert messages[0]["user_id"] == user_id and messages[0]["vton_id"] == vton_id


def test_object_of_another_user_fails_the_job_with_a_reason(stack) -> None:
    settings = stack.settings
    user_id, vton_id, keys = seed_tryon(settings)
    stranger_key = {"person_key": f"uploads/{uuid.uuid4()}/person.jpg", "garment_key": keys["garment_key"]}
    job_id = request_tryon(settings, user_id, vton_id, stranger_key)
    row = wait_for(lambda: (r := job_row(settings, job_id)) and r["status"] in ("succeeded", "failed") and r)
    assert row["status"] == "failed"
    assert "person_key" in row["error"] and "does not exist" in row["error"]
    assert row["tryon_status"] == "failed"


def test_weave_killed_mid_job_is_redelivered_and_completes_once(stack, redis_server_url: str) -> None:
    settings = stack.settings
    user_id, vton_id, keys = seed_tryon(settings)
    pubsub = redis.Redis.from_url(redis_server_url).pubsub()
    pubsub.subscribe(prefixed(NOTIFICATION_CHANNEL, settings.redis_key_prefix))

    # Enough steps that the smoke model is still running when the server dies.
    job_id = request_tryon(settings, user_id, vton_id, keys, steps=150, seed=3)
    wait_for(lambda: (r := job_row(settings, job_id)) and r["status"] == "running", timeout=30, interval=0.05)
    stack.kill("weave")  # the master and its worker, as when a pod dies
    assert job_row(settings, job_id)["status"] == "running"
    stack.restart("weave")

    row = wait_for(
        lambda: (r := job_row(settings, job_id)) and r["status"] in ("succeeded", "failed") and r, timeout=90
    )
    assert row["status"] == "succeeded", (row, stack.log_tail("weave"), stack.log_tail("runner"))
    storage = storage_from_settings(settings)
    assert storage.list(f"outputs/weaver/{user_id}/") == [f"outputs/weaver/{user_id}/{job_id}.png"]
    done = [m for m in completions(pubsub, 3.0) if m["status"] == "done"]
    assert [m["job_id"] for m in done] == [job_id]


def test_auto_category_goes_through_tailor_then_weave(stack) -> None:
    """category "auto": enqueue -> tailor (cut-out + category) -> weave -> notify, by itself.

    With the smoke SegFormer (fixed random weights) this plain blue garment photo parses as
    a lower-body garment (tests/functions/tailor/test_handler.py pins that).
    """
    settings = stack.settings
    user_id, vton_id, keys = seed_tryon(settings)
    job_id = request_tryon(settings, user_id, vton_id, keys, steps=2, seed=5, category="auto")
    row = wait_for(lambda: (r := job_row(settings, job_id)) and r["status"] in ("succeeded", "failed") and r)
    assert row["status"] == "succeeded", (row, stack.log_tail("tailor"))
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        tryon = session.get(TryOn, vton_id)
        assert tryon.category == "lower"
        assert tryon.cleaned_outfit and tryon.cleaned_outfit.startswith(f"outputs/tailor/{user_id}/")
        job = session.get(Job, job_id)
    storage = storage_from_settings(settings)
    assert storage.exists(tryon.cleaned_outfit) and storage.exists(job.result_key)


def completed_metadata(settings: Settings, jobs: list[str]) -> dict[str, dict[str, object]]:
    """The weave.completed metadata of each job, from the results stream."""
    client = redis.Redis.from_url(settings.redis_url or "", decode_responses=True)
    found = {}
    for _, fields in client.xrange(prefixed("proteus:results", settings.redis_key_prefix)):
        event = from_stream_fields(fields)
        if event.get_type() == t.WEAVE_COMPLETED and event.get_data()["job_id"] in jobs:
            found[event.get_data()["job_id"]] = event.get_data()["metadata"]
    return found


def finish_all(stack, jobs: list[str]) -> list[dict[str, object]]:
    settings = stack.settings

    def finished() -> list[dict[str, object]] | None:
        rows = [job_row(settings, job) for job in jobs]
        return rows if all(r and r["status"] in ("succeeded", "failed") for r in rows) else None

    try:
        return wait_for(finished, timeout=120)
    except AssertionError:
        raise AssertionError(
            f"{[job_row(settings, j) for j in jobs]}\n{stack.log_tail('weave')}\n{stack.log_tail('runner')}"
        ) from None


def test_a_burst_of_eight_is_rendered_in_at_most_two_unet_batches(stack) -> None:
    """Eight try-ons sent together: the first goes alone at once (nothing else is waiting
    yet), and the runner sends the ones that queued meanwhile as ONE batch request."""
    settings = stack.settings
    seeded = [seed_tryon(settings) for _ in range(8)]
    jobs = [request_tryon(settings, user, vton, keys, seed=n) for n, (user, vton, keys) in enumerate(seeded)]
    rows = finish_all(stack, jobs)
    assert [r["status"] for r in rows] == ["succeeded"] * 8, (rows, stack.log_tail("weave"))
    sizes = {job: meta["batch_size"] for job, meta in completed_metadata(settings, jobs).items()}
    assert set(sizes) == set(jobs)
    batches = sum(1 / size for size in sizes.values())  # each batch of n contributes n x 1/n
    assert round(batches, 6) <= 2, sizes


def test_a_lone_try_on_is_rendered_alone(stack) -> None:
    """Nothing else waiting: the runner sends it at once, as a batch of one (no gathering wait)."""
    settings = stack.settings
    user, vton, keys = seed_tryon(settings)
    (job,) = jobs = [request_tryon(settings, user, vton, keys, steps=2, seed=3)]
    (row,) = finish_all(stack, jobs)
    assert row["status"] == "succeeded", (row, stack.log_tail("weave"))
    assert completed_metadata(settings, jobs)[job]["batch_size"] == 1


def test_try_ons_requested_together_are_rendered_in_batches(stack) -> None:
    """The runner sends the weave jobs waiting in the stream, up to weave's max_batch, as one
    batched request, and weave renders them as one batched call; every job still ends on
    its own."""
    settings = stack.settings
    seeded = [seed_tryon(settings) for _ in range(4)]
    jobs = [request_tryon(settings, user, vton, keys, seed=n) for n, (user, vton, keys) in enumerate(seeded)]

    def finished() -> list[dict[str, object]] | None:
        rows = [job_row(settings, job) for job in jobs]
        return rows if all(r and r["status"] in ("succeeded", "failed") for r in rows) else None

    try:
        rows = wait_for(finished)
    except AssertionError:
        raise AssertionError(
            f"{[job_row(settings, j) for j in jobs]}\n{stack.log_tail('weave')}\n{stack.log_tail('runner')}"
        ) from None
    assert [r["status"] for r in rows] == ["succeeded"] * 4, (rows, stack.log_tail("weave"))
    client = redis.Redis.from_url(settings.redis_url or "", decode_responses=True)
    batch_sizes = {}
    for _, fields in client.xrange(prefixed("proteus:results", settings.redis_key_prefix)):
        event = from_stream_fields(fields)
        if event.get_type() == t.WEAVE_COMPLETED and event.get_data()["job_id"] in jobs:
            batch_sizes[event.get_data()["job_id"]] = event.get_data()["metadata"]["batch_size"]
    assert set(batch_sizes) == set(jobs)
    assert max(batch_sizes.values()) >= 2, batch_sizes  # at least two shared a UNet call


def test_fashn_tryon_through_the_original_api_shows_model_and_seed_in_the_history(stack) -> None:
    """A person signs up, uploads two photos, asks for fashn-vton-1.5 through POST /jobs/weaver
    (garment type auto: tailor decides it), and the history lists the result with its model and seed."""
    import requests

    base = stack.gateway_url
    http = requests.Session()
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    assert (
        http.post(
            f"{base}/user/signup", json={"user_name": "Ada", "email": email, "password": "correct horse"}, timeout=10
        ).status_code
        == 201
    )
    token = http.post(f"{base}/user/login", json={"email": email, "password": "correct horse"}, timeout=10).json()[
        "token"
    ]
    http.headers["Authorization"] = f"Bearer {token}"

    def upload(name: str, data: bytes) -> str:
        signed = http.post(
            f"{base}/images/presignedUploadUrl", json={"fileName": name, "fileType": "image/jpeg"}, timeout=10
        ).json()
        assert requests.put(signed["url"], data=data, headers=signed["headers"], timeout=10).status_code == 200
        return str(signed["key"])

    person, garment = upload("me.jpg", jpeg((200, 150, 120))), upload("shirt.jpg", jpeg((20, 40, 200)))
    tryon = http.post(f"{base}/vton", json={"user_snap": person, "uncleaned_outfit": garment}, timeout=10).json()
    started = http.post(
        f"{base}/jobs/weaver",
        json={
            "vton_id": tryon["id"],
            "user_snap_s3": person,
            "uncleaned_outfit_s3": garment,
            "category": "upper",
            "model": "fashn-vton-1.5",
            "garment_photo_type": "auto",
            "steps": 3,
            "seed": 42,
        },
        timeout=10,
    )
    assert started.status_code == 202, started.text

    def finished() -> dict | None:
        rows = http.get(f"{base}/vton", timeout=10).json()
        row = next(r for r in rows if r["id"] == tryon["id"])
        return row if row["status"] in ("done", "failed") else None

    row = wait_for(finished, timeout=120)
    assert row["status"] == "done", (row, stack.log_tail("weave"))
    assert row["model"] == "fashn-vton-1.5" and row["seed"] == 42
    job = http.get(f"{base}/jobs/{started.json()['job_id']}", timeout=10).json()
    assert job["model"] == "fashn-vton-1.5" and job["seed"] == 42 and job["result_key"] == row["outfit_try_on"]
    result = Image.open(io.BytesIO(storage_from_settings(stack.settings).get(row["outfit_try_on"])))
    assert result.mode == "RGB" and result.width <= 32
    health = requests.get(f"{base}/health", timeout=10).json()
    names = [m["name"] for m in health["models"]["weave"]["models"]]
    assert "fashn-vton-1.5" in names and "catvton-maskfree" in names
