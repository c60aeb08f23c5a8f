"""weave and cancellation between denoising steps: a canceled job leaves its batch at the
next step and is answered at once; a batch whose jobs are all canceled stops."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import redis
from flask import Flask
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from functions.weave.events import sample_keys as handler_sample_keys
from shared import event_types as t
from shared.events import event_data
from tests.functions.cloudevents_support import stream_events
from tests.functions.conftest import function_of
from tests.functions.weave.handler_support import RESULTS, STEPS, Job1, cancel_at_step, results_for, weave_event

pytestmark = pytest.mark.redis


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
