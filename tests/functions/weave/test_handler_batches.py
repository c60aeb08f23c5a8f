"""weave through its CloudEvents app with batches: one pipeline call for several requests
(equal to single runs), answers per event, a bad request failing alone; the speed switches
from the environment."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import redis
from flask import Flask
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from functions.weave.loading import model_config
from shared import event_types as t
from shared.config import Settings
from tests.functions.conftest import function_of
from tests.functions.weave.handler_support import Job1, results_for, weave_event

pytestmark = pytest.mark.redis


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
