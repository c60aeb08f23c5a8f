"""weave through its CloudEvents app, with the smoke model: weave.requested in, a result
PNG in storage and progress then weave.completed (or weave.failed) on the results stream.

A finished job is left alone on redelivery; a result already written is announced again
without rendering; an unreadable input becomes weave.failed with a readable reason.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
import redis
from flask import Flask
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from functions.weave.handler import MODELS_KEY
from functions.weave.status import SMOKE_WARNING
from shared import event_types as t
from shared import jobs
from shared.db.models import Job, TryOn
from shared.db.session import session_scope
from shared.events import event_data
from tests.functions.cloudevents_support import (
    INVALID_CASES,
    Invalid,
    check_invalid,
    check_valid_pair,
    prefix_entry_count,
    reply_of,
)
from tests.functions.conftest import get_row
from tests.functions.weave.handler_support import STEPS, Job1, results_for, send

pytestmark = pytest.mark.redis


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


def test_pipeline_seconds_counts_the_input_checks_and_decoding(
    client, job: Job1, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's time in a result is its whole call: the images' checks and decoding (done
    before the batch forms, so one bad request never fails the others) and the batch itself."""
    from functions.weave.pipeline import CatVTONPipeline

    checks = CatVTONPipeline.check_inputs

    def slow_decoding(self: CatVTONPipeline, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request.person, bytes):  # the first check decodes; the pipeline's own check has images
            time.sleep(0.25)
        return checks(self, request, *args, **kwargs)

    monkeypatch.setattr(CatVTONPipeline, "check_inputs", slow_decoding)
    metadata = event_data(reply_of(send(client, job)))["metadata"]
    assert metadata["pipeline_seconds"] >= metadata["seconds"] + 0.25, metadata
