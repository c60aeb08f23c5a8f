"""The reconciler (python -m shared.reconcile): a job with no progress past its deadline is
sent again once from its row, then failed with its notification; pending notifications
are published. On SQLite and on PostgreSQL, with a real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared import event_types as t
from shared.config import Settings
from shared.db.migrate import upgrade
from shared.db.models import Job, OutboxMessage, TryOn, utcnow
from shared.db.session import session_scope
from shared.events import event_data, from_stream_fields
from shared.notifications import add_to_outbox, completion_message
from shared.reconcile import Reconciler
from shared.routing import NOTIFICATION_STREAM, prefixed, route_for
from tests.functions.conftest import add_tryon, add_user, get_row, new_id, sessions_for

PARAMS: dict[str, Any] = {
    "person_key": "uploads/u/p.jpg",
    "garment_key": "uploads/u/g.jpg",
    "category": "upper",
    "steps": 2,
}


@pytest.fixture
def world(
    settings: Settings, database_url: str, redis_server_url: str, redis_prefix: str
) -> Iterator[tuple[Reconciler, sessionmaker[Session], redis.Redis, str]]:
    upgrade(database_url)
    sessions = sessions_for(database_url)
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    settings = settings.with_overrides(
        database_url=database_url,
        redis_url=redis_server_url,
        redis_key_prefix=redis_prefix,
        job_queued_deadline_s=60,
        job_running_deadline_s=120,
    )
    yield Reconciler(sessions, client, settings), sessions, client, redis_prefix
    client.close()
    sessions.kw["bind"].dispose()


def make_job(
    sessions: sessionmaker[Session], *, status: str = "queued", idle_s: float = 0, job_type: str = "try_on"
) -> tuple[str, str, str]:
    user_id = add_user(sessions)
    params = PARAMS if job_type == "try_on" else {"garment_key": "uploads/u/g.jpg", "category": "auto"}
    vton_id, job_id = add_tryon(sessions, user_id, job_id=new_id(), job_type=job_type, params=params)
    assert job_id is not None
    with session_scope(sessions, write=True) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=status))
    age(sessions, job_id, idle_s)
    return user_id, vton_id, job_id


def age(sessions: sessionmaker[Session], job_id: str, idle_s: float) -> None:
    with session_scope(sessions, write=True) as session:
        session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow() - timedelta(seconds=idle_s)))


def requests_on(client: redis.Redis, prefix: str, event_type: str) -> list[dict[str, Any]]:
    stream = prefixed(route_for(event_type).stream, prefix)
    return [event_data(from_stream_fields(fields)) for _, fields in client.xrange(stream)]


def test_a_stalled_job_is_sent_again_once_then_failed_and_told(world, caplog: pytest.LogCaptureFixture) -> None:
    reconciler, sessions, client, prefix = world
    user_id, vton_id, job_id = make_job(sessions, status="running", idle_s=600)
    _, _, fresh = make_job(sessions, status="running", idle_s=10)  # within its deadline

    caplog.set_level("INFO", logger="proteus.reconcile")
    report = reconciler.run_once()
    assert report.reemitted == [job_id] and report.failed == []
    assert requests_on(client, prefix, t.TRYON_REQUESTED) == [
        {"job_id": job_id, "user_id": user_id, "vton_id": vton_id, **PARAMS}
    ]
    job = get_row(sessions, Job, job_id)
    assert job.status == "queued" and job.reemitted_at is not None, "enqueue sends a queued job on again"
    assert get_row(sessions, Job, fresh).status == "running"
    assert f"job {job_id} of user {user_id}: no progress for 600 s while running; sent its request" in caplog.text

    assert reconciler.run_once().reemitted == [], "its deadline starts again"
    age(sessions, job_id, 100)
    assert reconciler.run_once().as_dict() == {"reemitted": 0, "failed": 1, "notifications": 0}
    job, tryon = get_row(sessions, Job, job_id), get_row(sessions, TryOn, vton_id)
    assert job.status == "failed" and "No progress for 100 s while queued" in job.error
    assert tryon.status == "failed" and tryon.error == job.error
    ((_, fields),) = client.xrange(prefixed(NOTIFICATION_STREAM, prefix))
    message = json.loads(fields["message"])
    assert (message["job_id"], message["status"], message["error"]) == (job_id, "failed", job.error)
    assert f"job {job_id} of user {user_id} failed" in caplog.text
    age(sessions, job_id, 10_000)
    assert reconciler.run_once().as_dict() == {"reemitted": 0, "failed": 0, "notifications": 0}
    assert len(requests_on(client, prefix, t.TRYON_REQUESTED)) == 1


def test_a_stalled_tailor_job_gets_its_tailor_request(world) -> None:
    reconciler, sessions, client, prefix = world
    user_id, vton_id, job_id = make_job(sessions, status="queued", idle_s=61, job_type="tailor")
    assert reconciler.run_once().reemitted == [job_id]
    assert requests_on(client, prefix, t.TAILOR_REQUESTED) == [
        {"job_id": job_id, "user_id": user_id, "vton_id": vton_id, "garment_key": "uploads/u/g.jpg", "category": "auto"}
    ]


def test_a_finished_job_is_left_alone(world) -> None:
    reconciler, sessions, client, prefix = world
    for status in ("succeeded", "failed"):
        make_job(sessions, status=status, idle_s=10_000)
    assert reconciler.run_once().as_dict() == {"reemitted": 0, "failed": 0, "notifications": 0}
    assert requests_on(client, prefix, t.TRYON_REQUESTED) == []


def test_a_notification_a_crash_left_pending_is_published(world) -> None:
    reconciler, sessions, client, prefix = world
    user_id, vton_id, job_id = make_job(sessions, status="succeeded")
    with session_scope(sessions, write=True) as session:
        row = add_to_outbox(
            session,
            completion_message(
                job_id=job_id,
                job_type="try_on",
                status="done",
                user_id=user_id,
                vton_id=vton_id,
                result_key="k",
                error=None,
            ),
        )
        outbox_id = row.id
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id)
            .values(created_at=utcnow() - timedelta(seconds=60))
        )
    assert reconciler.run_once().notifications == 1
    ((entry_id, _),) = client.xrange(prefixed(NOTIFICATION_STREAM, prefix))
    assert get_row(sessions, OutboxMessage, outbox_id).stream_id == entry_id
    assert reconciler.run_once().notifications == 0
