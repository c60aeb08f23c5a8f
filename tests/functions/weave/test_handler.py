"""weave through its CloudEvents app, with the smoke model: weave.requested in, a result
PNG in storage and progress then weave.completed (or weave.failed) on the results stream.

A finished job is left alone on redelivery; a result already written is announced again
without rendering; an unreadable input becomes weave.failed with a readable reason.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from flask import Flask
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from functions.weave.events import sample_keys as handler_sample_keys
from functions.weave.handler import MODELS_KEY, model_config
from functions.weave.main import create_app
from functions.weave.status import SMOKE_WARNING
from shared import event_types as t
from shared import jobs
from shared.config import Settings
from shared.db.models import Job, TryOn
from shared.db.session import session_scope
from shared.events import event_data
from shared.uploads import result_key
from tests.functions.conftest import (
    INVALID_CASES,
    Invalid,
    Valid,
    add_tryon,
    add_user,
    binary_request,
    check_invalid,
    check_valid_pair,
    dispose_function,
    function_of,
    get_row,
    image_bytes,
    new_id,
    post,
    prefix_entry_count,
    reply_of,
    stream_events,
    structured_request,
)

pytestmark = pytest.mark.redis

RESULTS = "proteus:results"
STEPS = 3


@pytest.fixture(scope="module")
def app(module_settings: Settings, weave_smoke_models: Path) -> Iterator[Flask]:
    settings = module_settings.with_overrides(models_dir=str(weave_smoke_models), weave_device="cpu")
    app = create_app(settings)
    client = app.test_client()
    deadline = time.monotonic() + 120
    while (ready := client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, f"weave never became ready: {ready.get_json()}"
        assert "error" not in ready.get_json(), ready.get_json()
        time.sleep(0.05)
    yield app
    dispose_function(app)


class Job1:
    """A user, two uploaded photos, a try-on and its queued job; the weave request for it."""

    def __init__(self, sessions: sessionmaker[Session], storage: Any, *, person: bytes | None = None) -> None:
        self.sessions, self.storage = sessions, storage
        self.user_id = add_user(sessions)
        self.person_key = f"uploads/{self.user_id}/{new_id()}-person.jpg"
        self.garment_key = f"uploads/{self.user_id}/{new_id()}-shirt.jpg"
        storage.put(self.person_key, person if person is not None else image_bytes((200, 150, 120)), "image/jpeg")
        storage.put(self.garment_key, image_bytes((20, 40, 200)), "image/jpeg")
        self.job_id = new_id()
        self.vton_id, _ = add_tryon(
            sessions, self.user_id, person_key=self.person_key, garment_key=self.garment_key, job_id=self.job_id
        )
        self.data = {
            "job_id": self.job_id,
            "user_id": self.user_id,
            "vton_id": self.vton_id,
            "person_key": self.person_key,
            "garment_key": self.garment_key,
            "category": "upper",
            "steps": STEPS,
            "guidance": 2.5,
            "seed": 7,
            "variant": "maskfree",
            "height": 1024,
            "width": 768,
            "repaint": False,
        }

    @property
    def result_key(self) -> str:
        return result_key(self.user_id, self.job_id)

    def valid(self) -> Valid:
        return Valid(t.WEAVE_REQUESTED, self.data, self.user_id, self.job_id, "steps")


@pytest.fixture
def job(sessions: sessionmaker[Session], storage: Any) -> Job1:
    return Job1(sessions, storage)


def send(client, job: Job1, mode: str = "binary"):
    build = binary_request if mode == "binary" else structured_request
    return post(client, build(t.WEAVE_REQUESTED, job.data, user_id=job.user_id, subject=job.job_id))


def results_for(redis_client: redis.Redis, prefix: str, job_id: str) -> list:
    return [e for _, e in stream_events(redis_client, prefix, RESULTS) if e.get_subject() == job_id]


# --------------------------------------------------------------------------- readiness and the contract


def test_readyz_names_the_smoke_model_and_warns(
    app: Flask, client, redis_client: redis.Redis, module_prefix: str
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    state = response.get_json()
    assert state["ready"] is True and state["model"] == "smoke" and state["smoke"] is True
    assert state["warning"] == SMOKE_WARNING and "SMOKE" in state["warning"]
    assert state["variants"] == ["mask", "maskfree"] and state["device"] == "cpu"
    assert state["speed"] == {
        "compile": False,
        "cuda_graphs": False,
        "channels_last": False,
        "sdpa_backend": "auto",
        "vae_slicing": True,
    }
    # The smoke model's speed says nothing about a real model's: it is not measured and
    # batches up to WEAVE_MAX_BATCH.
    assert state["max_batch"] == app.config["PROTEUS_SETTINGS"].weave_max_batch
    assert state["batch_images_per_s"] is None
    assert client.get("/healthz").get_json()["warning"] == SMOKE_WARNING
    published = redis_client.hget(module_prefix + MODELS_KEY, "weave")
    assert published is not None and '"model": "smoke"' in published


def test_binary_and_structured_events_are_answered_with_weave_completed(
    client, sessions: sessionmaker[Session], storage: Any
) -> None:
    first, second = Job1(sessions, storage), Job1(sessions, storage)
    check_valid_pair(client, first.valid(), second.valid(), reply_type=t.WEAVE_COMPLETED)
    for job in (first, second):
        assert storage.exists(job.result_key)


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.name)
def test_invalid_event_is_refused(
    client, job: Job1, case: Invalid, redis_client: redis.Redis, module_prefix: str
) -> None:
    check_invalid(client, case, job.valid(), redis_client, module_prefix)
    assert get_row(job.sessions, Job, job.job_id).status == "queued"
    assert not job.storage.exists(job.result_key)


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_request_renders_the_result_and_reports_progress_then_completion(
    client, job: Job1, redis_client: redis.Redis, module_prefix: str, mode: str
) -> None:
    reply = reply_of(send(client, job, mode))
    assert reply.get_type() == t.WEAVE_COMPLETED
    assert reply.get_subject() == job.job_id and reply.get_extension("userid") == job.user_id

    png = job.storage.get(job.result_key)
    assert job.result_key == f"outputs/weaver/{job.user_id}/{job.job_id}.png"
    assert job.storage.head(job.result_key).content_type == "image/png"
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (768, 1024)

    events = results_for(redis_client, module_prefix, job.job_id)
    types = [e.get_type() for e in events]
    assert types[-1] == t.WEAVE_COMPLETED and types.count(t.WEAVE_COMPLETED) == 1
    progress = [event_data(e) for e in events[:-1]]
    assert progress and all(e.get_type() == t.WEAVE_PROGRESS for e in events[:-1]), types
    steps = [(p["step"], p["steps"]) for p in progress]
    assert steps == sorted(set(steps)) and steps[0] == (1, STEPS), steps  # the first step is always reported
    assert all(step < STEPS for step, _ in steps), "the last step is the completion, not a progress event"
    assert all(p["vton_id"] == job.vton_id and p["user_id"] == job.user_id for p in progress)

    completed = event_data(events[-1])
    assert completed == event_data(reply)
    assert (
        completed["result_key"] == job.result_key
        and completed["seed"] == 7
        and completed["model"] == "catvton-maskfree"
    )
    assert completed["metadata"]["smoke"] is True
    assert completed["metadata"]["steps"] == STEPS and completed["metadata"]["model"] == "catvton-maskfree"
    assert completed["vton_id"] == job.vton_id

    row = get_row(job.sessions, Job, job.job_id)
    assert (row.status, row.attempts) == ("running", 1), "weave marks the job running; notify finishes it"
    assert get_row(job.sessions, TryOn, job.vton_id).status == "processing"


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_finished_job_is_left_alone(
    client, job: Job1, redis_client: redis.Redis, module_prefix: str, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    assert send(client, job).status_code == 200
    png = job.storage.get(job.result_key)
    with session_scope(job.sessions, write=True) as session:  # what notify does on the result
        if outcome == "succeeded":
            assert jobs.complete_job(session, job.job_id, result_key=job.result_key, seed=7, model="smoke")
        else:
            assert jobs.fail_job(session, job.job_id, error="given up")
    before = prefix_entry_count(redis_client, module_prefix)
    calls: list[int] = []
    monkeypatch.setattr("functions.weave.handler.run_models", lambda *a, **k: calls.append(1) or [])

    again = send(client, job, "structured")
    assert again.status_code == 202 and again.get_data() == b""
    assert calls == [] and prefix_entry_count(redis_client, module_prefix) == before
    assert job.storage.get(job.result_key) == png
    row = get_row(job.sessions, Job, job.job_id)
    assert (row.status, row.attempts) == (outcome, 1)


def test_redelivery_after_the_result_was_written_announces_it_without_rendering(
    client, job: Job1, redis_client: redis.Redis, module_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert send(client, job).status_code == 200  # the job stays running until notify sees it
    png = job.storage.get(job.result_key)
    calls: list[int] = []
    monkeypatch.setattr("functions.weave.handler.run_models", lambda *a, **k: calls.append(1) or [])

    reply = reply_of(send(client, job))
    assert reply.get_type() == t.WEAVE_COMPLETED and calls == []
    data = event_data(reply)
    assert data["result_key"] == job.result_key and data["metadata"] == {"recovered": True}
    assert data["seed"] == 7 and data["model"] == "smoke"
    assert job.storage.get(job.result_key) == png
    assert [e.get_type() for e in results_for(redis_client, module_prefix, job.job_id)][-1] == t.WEAVE_COMPLETED
    assert get_row(job.sessions, Job, job.job_id).attempts == 2


@pytest.mark.parametrize("person", [b"this is not an image at all", b""], ids=["garbage", "empty"])
def test_unreadable_image_is_weave_failed_not_a_500(
    client,
    sessions: sessionmaker[Session],
    storage: Any,
    redis_client: redis.Redis,
    module_prefix: str,
    person: bytes,
) -> None:
    job = Job1(sessions, storage, person=person)
    response = send(client, job)
    assert response.status_code == 200, response.get_data(as_text=True)
    reply = reply_of(response)
    assert reply.get_type() == t.WEAVE_FAILED
    failed = event_data(reply)
    assert failed["code"] == "invalid_image" and failed["retryable"] is False
    assert failed["error"].startswith("person"), failed["error"]
    assert "not a readable image" in failed["error"] or "empty" in failed["error"]
    assert "Traceback" not in failed["error"]
    events = results_for(redis_client, module_prefix, job.job_id)
    assert [e.get_type() for e in events] == [t.WEAVE_FAILED] and event_data(events[0]) == failed
    assert not storage.exists(job.result_key)


def test_result_flagged_by_the_safety_checker_fails_the_job_and_is_not_stored(
    client, job: Job1, storage: Any, redis_client: redis.Redis, module_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions.weave.handler as handler

    real = handler.run_models

    def flagging(*args: Any, **kwargs: Any) -> list:
        results = real(*args, **kwargs)
        for result in results:
            result.nsfw = True
        return results

    monkeypatch.setattr(handler, "run_models", flagging)
    reply = reply_of(send(client, job))
    failed = event_data(reply)
    assert reply.get_type() == t.WEAVE_FAILED and failed["code"] == "flagged_by_safety_checker"
    assert "safety checker flagged" in failed["error"] and failed["retryable"] is False
    assert not storage.exists(job.result_key)


def weave_event(job: Job1):
    from shared.events import make_event

    return make_event(t.WEAVE_REQUESTED, job.data, source="/tests")


def test_a_batch_renders_in_one_pipeline_call_and_equals_single_runs(
    app: Flask,
    sessions: sessionmaker[Session],
    storage: Any,
    redis_client: redis.Redis,
    module_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import functions.weave.handler as handler

    calls: list[int] = []
    real = handler.run_models

    def counting(pipelines, requests, callback=None):
        calls.append(len(requests))
        return real(pipelines, requests, callback=callback)

    monkeypatch.setattr(handler, "run_models", counting)
    alone, first, second = Job1(sessions, storage), Job1(sessions, storage), Job1(sessions, storage)
    function = function_of(app)
    assert function.handle(weave_event(alone)).get_type() == t.WEAVE_COMPLETED
    assert function.handle_batch([weave_event(first), weave_event(second)]) == [None, None]
    assert calls == [1, 2]  # the two went through one batched call

    def pixels(job: Job1) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(storage.get(job.result_key))), dtype=np.int16)

    # Same inputs and seed: the batched results equal the one rendered alone.
    assert np.abs(pixels(first) - pixels(alone)).max() <= 2
    assert np.abs(pixels(second) - pixels(alone)).max() <= 2
    for job in (first, second):
        events = results_for(redis_client, module_prefix, job.job_id)
        assert [e.get_type() for e in events].count(t.WEAVE_COMPLETED) == 1


def test_a_batch_request_renders_in_one_call_and_answers_per_event(
    app: Flask,
    sessions: sessionmaker[Session],
    storage: Any,
    redis_client: redis.Redis,
    module_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner sends what is waiting as ONE application/cloudevents-batch+json request:
    the good requests share one pipeline call, and the reply says per event what happened."""
    import functions.weave.handler as handler
    from shared.events import make_event, read_batch_reply, to_http_batch

    calls: list[int] = []
    real = handler.run_models

    def counting(pipelines, requests, callback=None):
        calls.append(len(requests))
        return real(pipelines, requests, callback=callback)

    monkeypatch.setattr(handler, "run_models", counting)
    good = [Job1(sessions, storage) for _ in range(3)]
    unreadable = Job1(sessions, storage, person=b"not an image")
    invalid = Job1(sessions, storage)
    events = [weave_event(job) for job in (*good, unreadable)]
    events.append(make_event(t.WEAVE_REQUESTED, {**invalid.data, "steps": 0}, source="/tests"))
    headers, body = to_http_batch(events)
    response = app.test_client().post("/", headers=headers, data=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    outcomes = read_batch_reply(response.get_data(), len(events))
    assert [o.id for o in outcomes] == [e.get_id() for e in events]
    assert [o.status for o in outcomes] == [200, 200, 200, 200, 400]  # the unreadable photo fails its job
    assert outcomes[-1].code == "invalid_event_data" and "steps" in (outcomes[-1].message or "")
    assert calls == [3]  # one pipeline call for the three good ones
    for job in good:
        assert storage.exists(job.result_key)
        events_of_job = results_for(redis_client, module_prefix, job.job_id)
        assert [e.get_type() for e in events_of_job].count(t.WEAVE_COMPLETED) == 1
    assert [e.get_type() for e in results_for(redis_client, module_prefix, unreadable.job_id)] == [t.WEAVE_FAILED]
    assert results_for(redis_client, module_prefix, invalid.job_id) == []


def test_a_bad_request_in_a_batch_fails_alone(
    app: Flask,
    sessions: sessionmaker[Session],
    storage: Any,
    redis_client: redis.Redis,
    module_prefix: str,
) -> None:
    good, bad = Job1(sessions, storage), Job1(sessions, storage, person=b"not an image")
    assert function_of(app).handle_batch([weave_event(bad), weave_event(good)]) == [None, None]
    assert [e.get_type() for e in results_for(redis_client, module_prefix, bad.job_id)] == [t.WEAVE_FAILED]
    assert storage.exists(good.result_key) and not storage.exists(bad.result_key)


def test_model_config_carries_the_speed_switches_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PROTEUS_ENV": "test",
            "JWT_SECRET": "s" * 48,
            "WEAVE_COMPILE": "true",
            "WEAVE_CUDA_GRAPHS": "true",
            "WEAVE_CHANNELS_LAST": "true",
            "WEAVE_SDPA_BACKEND": "flash",
            "WEAVE_MAX_BATCH": "2",
        }
    )
    options = model_config(settings).options
    assert (options.compile, options.cuda_graphs, options.channels_last) == (True, True, True)
    assert (options.sdpa_backend, options.max_batch_size) == ("flash", 2)


# --------------------------------------------------------------------------- cancellation between steps


def cancel_at_step(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis, prefix: str, step: int, *canceled: Job1
) -> list[int]:
    """POST /v1/cancel's flag for these jobs, set while the batch runs (after `step`); the
    steps the call went through."""
    import functions.weave.handler as handler

    seen: list[int] = []
    real = handler.run_models

    def canceling(pipelines, requests, callback=None):
        def on_step(k: int, n: int) -> Any:
            seen.append(k)
            if k == step:
                for job in canceled:
                    redis_client.set(f"{prefix}{jobs.CANCEL_FLAG}{job.job_id}", "1", ex=60)
            return callback(k, n)

        return real(pipelines, requests, callback=on_step)

    monkeypatch.setattr(handler, "run_models", canceling)
    return seen


def test_a_job_canceled_in_a_batch_leaves_it_at_the_next_step_and_is_answered_at_once(
    app: Flask,
    sessions: sessionmaker[Session],
    storage: Any,
    redis_client: redis.Redis,
    module_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alone, first, canceled, last = (Job1(sessions, storage) for _ in range(4))
    canceled.data["num_samples"] = 2  # two rows of the batch
    function = function_of(app)
    assert function.handle(weave_event(alone)).get_type() == t.WEAVE_COMPLETED
    seen = cancel_at_step(monkeypatch, redis_client, module_prefix, 1, canceled)
    assert function.handle_batch([weave_event(first), weave_event(canceled), weave_event(last)]) == [None] * 3
    assert seen == list(range(1, STEPS + 1))  # the others went on to the end
    (reply,) = results_for(redis_client, module_prefix, canceled.job_id)  # no progress after the cancel
    assert reply.get_type() == t.WEAVE_FAILED and event_data(reply)["code"] == "canceled"
    assert not any(storage.exists(key) for key in handler_sample_keys(canceled.data))
    order = [(e.get_subject(), e.get_type()) for _, e in stream_events(redis_client, module_prefix, RESULTS)]
    # Answered at once: before the batch's completions, not when it ends.
    assert order.index((canceled.job_id, t.WEAVE_FAILED)) < order.index((first.job_id, t.WEAVE_COMPLETED))

    def pixels(job: Job1) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(storage.get(job.result_key))), dtype=np.int16)

    for job in (first, last):
        events = results_for(redis_client, module_prefix, job.job_id)
        (done,) = [e for e in events if e.get_type() == t.WEAVE_COMPLETED]
        assert event_data(done)["metadata"]["batch_size"] == 2  # its two rows left the batch (4 -> 2)
        assert np.abs(pixels(job) - pixels(alone)).max() <= 2  # the others' images are unchanged


def test_a_batch_whose_jobs_are_all_canceled_stops_at_the_next_step(
    app: Flask,
    sessions: sessionmaker[Session],
    storage: Any,
    redis_client: redis.Redis,
    module_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = Job1(sessions, storage), Job1(sessions, storage)
    seen = cancel_at_step(monkeypatch, redis_client, module_prefix, 1, first, second)
    assert function_of(app).handle_batch([weave_event(first), weave_event(second)]) == [None, None]
    assert seen == [1]
    for job in (first, second):
        (reply,) = results_for(redis_client, module_prefix, job.job_id)
        assert reply.get_type() == t.WEAVE_FAILED and event_data(reply)["code"] == "canceled"
        assert not storage.exists(job.result_key)
