"""Job and try-on transitions: idempotent, monotonic, finished means finished."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.serializers import job_to_dict, tryon_to_dict
from shared import jobs
from shared.db.migrate import upgrade
from shared.db.models import Job, TryOn, User
from shared.db.session import make_engine, make_session_factory, session_scope
from shared.errors import BadRequest, Conflict

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def tryon(sessions: sessionmaker[Session]) -> TryOn:
    with session_scope(sessions) as session:
        user = User(user_name="ada", email="ada@example.com", password_hash="x")
        session.add(user)
        session.flush()
        made = TryOn(user_id=user.id, user_snap="uploads/u/p.jpg", uncleaned_outfit="uploads/u/g.jpg")
        session.add(made)
    return made


def new_job(sessions: sessionmaker[Session], tryon: TryOn, job_type: str = "try_on", **kwargs: object) -> str:
    with session_scope(sessions) as session:
        job, created = jobs.get_or_create_job(
            session, user_id=tryon.user_id, vton_id=tryon.id, job_type=job_type, params={"steps": 4}, **kwargs
        )
        return job.id


def call(sessions: sessionmaker[Session], function, *args, **kwargs):
    with session_scope(sessions) as session:
        return function(session, *args, **kwargs)


def state(sessions: sessionmaker[Session], job_id: str) -> tuple[dict, dict]:
    with sessions() as session:
        job = session.get(Job, job_id)
        return job_to_dict(job), tryon_to_dict(session.get(TryOn, job.vton_id))


def count_jobs(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_same_key_or_id_gives_the_same_job(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    first = new_job(sessions, tryon, idempotency_key="req-1")
    assert new_job(sessions, tryon, idempotency_key="req-1") == first
    assert new_job(sessions, tryon, idempotency_key="req-1", job_id="another-id") == first
    assert new_job(sessions, tryon, job_id=first) == first
    given = new_job(sessions, tryon, job_id="job-from-the-event")
    assert given == "job-from-the-event" and new_job(sessions, tryon, job_id=given) == given
    assert new_job(sessions, tryon) != new_job(sessions, tryon)  # no key: a new job each time
    assert count_jobs(sessions) == 4
    with session_scope(sessions) as session:
        job, created = jobs.get_or_create_job(
            session, user_id=tryon.user_id, vton_id=tryon.id, job_type="try_on", params={}, idempotency_key="req-2"
        )
        again, created_again = jobs.get_or_create_job(
            session, user_id=tryon.user_id, vton_id=tryon.id, job_type="try_on", params={}, idempotency_key="req-2"
        )
        assert (created, created_again, again is job) == (True, False, True)


def test_keys_and_ids_are_per_user(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    with session_scope(sessions) as session:
        bob = User(user_name="bob", email="bob@example.com", password_hash="x")
        session.add(bob)
        session.flush()
        bobs = TryOn(user_id=bob.id, user_snap="a", uncleaned_outfit="b")
        session.add(bobs)
    mine = new_job(sessions, tryon, idempotency_key="same")
    assert new_job(sessions, bobs, idempotency_key="same") != mine
    with pytest.raises(Conflict):
        new_job(sessions, bobs, job_id=mine)
    with pytest.raises(BadRequest):
        new_job(sessions, tryon, job_type="dance")


def test_a_job_runs_progresses_and_completes_once(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    job_id = new_job(sessions, tryon)
    job, view = state(sessions, job_id)
    assert (job["status"], view["status"], view["progress"]) == ("queued", "queued", None)

    assert call(sessions, jobs.mark_running, job_id) is True
    assert call(sessions, jobs.mark_running, job_id) is True  # redelivered: worked on again
    with sessions() as session:
        assert session.get(Job, job_id).attempts == 2
    assert state(sessions, job_id)[1]["status"] == "processing"

    assert call(sessions, jobs.record_progress, job_id, 2, 4) is True
    assert call(sessions, jobs.record_progress, job_id, 1, 4) is False  # late and behind: ignored
    assert call(sessions, jobs.record_progress, job_id, 2, 4) is False  # a duplicate
    job, view = state(sessions, job_id)
    assert (job["step"], job["steps"]) == (2, 4)
    assert (view["progress"], view["progress_step"], view["progress_steps"]) == (0.5, 2, 4)

    done = call(sessions, jobs.complete_job, job_id, result_key="outputs/weaver/u/j.png", seed=7, model="smoke")
    assert done is not None  # the changed row, as the UPDATE left it
    assert (done.id, done.status, done.result_key, done.seed, done.model) == (
        job_id,
        "succeeded",
        "outputs/weaver/u/j.png",
        7,
        "smoke",
    )
    assert call(sessions, jobs.complete_job, job_id, result_key="outputs/weaver/u/other.png") is None
    assert not call(sessions, jobs.fail_job, job_id, error="late failure")
    assert not call(sessions, jobs.record_progress, job_id, 3, 4)
    assert not call(sessions, jobs.mark_running, job_id)
    job, view = state(sessions, job_id)
    assert (job["status"], job["result_key"], job["seed"], job["model"]) == (
        "succeeded",
        "outputs/weaver/u/j.png",
        7,
        "smoke",
    )
    assert (job["step"], job["steps"], job["error"]) == (4, 4, None)
    assert job["finished_at"] and ISO_Z.match(job["finished_at"])
    assert (view["status"], view["outfit_try_on"], view["progress"], view["error"]) == (
        "done",
        "outputs/weaver/u/j.png",
        1.0,
        None,
    )


def updated(sessions: sessionmaker[Session], job_id: str) -> tuple[object, object]:
    with sessions() as session:
        job = session.get(Job, job_id)
        return job.updated_at, session.get(TryOn, job.vton_id).updated_at


def test_a_failed_job_stays_failed(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    job_id = new_job(sessions, tryon)
    before = updated(sessions, job_id)
    assert call(sessions, jobs.fail_job, job_id, error="person_key does not exist")
    after = updated(sessions, job_id)
    assert after[0] > before[0] and after[1] > before[1]  # updated_at follows guarded UPDATEs
    assert not call(sessions, jobs.fail_job, job_id, error="second")
    assert not call(sessions, jobs.complete_job, job_id, result_key="outputs/weaver/u/j.png")
    job, view = state(sessions, job_id)
    assert (job["status"], job["error"], job["result_key"]) == ("failed", "person_key does not exist", None)
    assert (view["status"], view["error"], view["outfit_try_on"]) == ("failed", "person_key does not exist", None)


def test_completion_without_progress_and_tailor_results(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    tailor_id = new_job(sessions, tryon, job_type="tailor")
    assert call(sessions, jobs.complete_job, tailor_id, result_key="outputs/tailor/u/h-cutout.png")
    job, view = state(sessions, tailor_id)
    assert (job["step"], job["steps"]) == (1, 1)
    assert (view["cleaned_outfit"], view["outfit_try_on"], view["status"], view["progress"]) == (
        "outputs/tailor/u/h-cutout.png",
        None,
        "done",
        1.0,
    )
    # Another job of a done try-on failing late does not undo it.
    other = new_job(sessions, tryon)
    assert call(sessions, jobs.fail_job, other, error="late")
    assert state(sessions, other)[1]["status"] == "done"


def test_tailor_assets_and_bad_input(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    assert call(sessions, jobs.record_tailor_assets, tryon.id, cutout_key="c.png", mask_key=None, category="upper")
    assert not call(sessions, jobs.record_tailor_assets, "no-such-tryon", cutout_key="c.png")
    job_id = new_job(sessions, tryon)
    _job, view = state(sessions, job_id)
    assert (view["cleaned_outfit"], view["person_mask"], view["category"]) == ("c.png", None, "upper")
    for step, steps in ((5, 4), (-1, 4), (0, 0), (True, 4)):
        with pytest.raises(BadRequest):
            call(sessions, jobs.record_progress, job_id, step, steps)
    with pytest.raises(BadRequest):
        call(sessions, jobs.complete_job, job_id, result_key="")
    assert not call(sessions, jobs.mark_running, "no-such-job")
    assert not call(sessions, jobs.complete_job, "no-such-job", result_key="k")


def test_serialisers(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    job_id = new_job(sessions, tryon, idempotency_key="k")
    job, view = state(sessions, job_id)
    assert list(job) == [
        "id",
        "jobId",
        "job_id",
        "vton_id",
        "job_type",
        "status",
        "step",
        "steps",
        "error",
        "result_key",
        "result_keys",
        "seed",
        "model",
        "createdAt",
        "updatedAt",
        "finished_at",
    ]
    assert job["id"] == job["jobId"] == job["job_id"] == job_id and job["finished_at"] is None
    assert list(view) == [
        "id",
        "user_id",
        "user_snap",
        "uncleaned_outfit",
        "cleaned_outfit",
        "outfit_try_on",
        "person_mask",
        "category",
        "category_requested",
        "status",
        "error",
        "progress",
        "progress_step",
        "progress_steps",
        "result_expired_at",
        "inputs_expired_at",
        "model",
        "seed",
        "result_keys",
        "createdAt",
        "updatedAt",
    ]
    for stamp in (job["createdAt"], job["updatedAt"], view["createdAt"], view["updatedAt"]):
        assert ISO_Z.match(stamp), stamp


def test_concurrent_get_or_create_with_one_key_makes_one_job(
    sessions: sessionmaker[Session], tryon: TryOn, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """Six threads ask for the same key at once: one job, created once, no errors.

    On PostgreSQL every thread is held after its first look (finding nothing) until all
    have looked, so all of them INSERT and the unique constraint decides. SQLite writers
    queue at BEGIN IMMEDIATE instead, so there the threads simply race.
    """
    threads = 6
    if database_url.startswith("postgresql"):
        barrier = threading.Barrier(threads)
        looked = threading.local()
        find = jobs._find_job

        def find_then_wait(*args, **kwargs):
            found = find(*args, **kwargs)
            if not getattr(looked, "once", False):
                looked.once = True
                assert found is None
                barrier.wait(timeout=10)
            return found

        monkeypatch.setattr(jobs, "_find_job", find_then_wait)
    start = threading.Barrier(threads)

    def racer(_: int) -> tuple[str, bool]:
        start.wait(timeout=10)
        with session_scope(sessions) as session:
            job, created = jobs.get_or_create_job(
                session,
                user_id=tryon.user_id,
                vton_id=tryon.id,
                job_type="try_on",
                params={},
                idempotency_key="double-click",
            )
            return job.id, created

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(racer, range(threads)))
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert count_jobs(sessions) == 1


def test_concurrent_completion_has_one_winner(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    job_id = new_job(sessions, tryon)
    start = threading.Barrier(6)

    def finish(i: int) -> Job | None:
        start.wait(timeout=10)
        if i % 2:
            return call(sessions, jobs.fail_job, job_id, error=f"failure {i}")
        return call(sessions, jobs.complete_job, job_id, result_key=f"outputs/weaver/u/{i}.png")

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(finish, range(6)))
    assert len([winner for winner in outcomes if winner is not None]) == 1
    job, view = state(sessions, job_id)
    assert {"succeeded": "done", "failed": "failed"}[job["status"]] == view["status"]


def test_job_status_reads_the_users_job(sessions: sessionmaker[Session], tryon: TryOn) -> None:
    """On a plain connection, outside a transaction (enqueue's read of the gateway's job)."""
    job_id = new_job(sessions, tryon)
    engine = sessions.kw["bind"]

    def status(job: str, user_id: str) -> str | None:
        with engine.connect() as connection:
            found = jobs.job_status(connection, job, user_id)
            assert not connection.in_transaction()
            return found

    assert status(job_id, tryon.user_id) == "queued"
    call(sessions, jobs.mark_running, job_id)
    assert status(job_id, tryon.user_id) == "running"
    assert status("no-such-job", tryon.user_id) is None
    with pytest.raises(Conflict, match=job_id):
        status(job_id, "someone-else")
