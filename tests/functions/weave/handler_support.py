"""What the weave handler tests share: a job with its uploads and the weave request for it,
sending it, the results it produced, and cancelling jobs while a batch renders."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from shared import event_types as t
from shared import jobs
from shared.uploads import result_key
from tests.functions.cloudevents_support import Valid, binary_request, post, stream_events, structured_request
from tests.functions.conftest import add_tryon, add_user, image_bytes, new_id

RESULTS = "proteus:results"
STEPS = 3


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


def send(client, job: Job1, mode: str = "binary"):
    build = binary_request if mode == "binary" else structured_request
    return post(client, build(t.WEAVE_REQUESTED, job.data, user_id=job.user_id, subject=job.job_id))


def results_for(redis_client: redis.Redis, prefix: str, job_id: str) -> list:
    return [e for _, e in stream_events(redis_client, prefix, RESULTS) if e.get_subject() == job_id]


def weave_event(job: Job1):
    from shared.events import make_event

    return make_event(t.WEAVE_REQUESTED, job.data, source="/tests")


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
