"""shared/db/hot_writes.py: the same rows stored and given back as SQLAlchemy's execute, in the
caller's transaction, and the same errors (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared import job_statements as statements
from shared.db import hot_writes
from shared.db.models import Job, OutboxMessage, TryOn, User
from shared.db.session import session_scope

FINISHED = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=UTC)
NOW = datetime(2026, 12, 3, 9, 31, 0, 654321, tzinfo=UTC)


def _jobs(sessions: sessionmaker[Session], count: int) -> list[str]:
    user_id = str(uuid.uuid4())
    with session_scope(sessions) as session:
        session.add(User(id=user_id, user_name=f"u{user_id[:8]}", email=f"{user_id}@t.test", password_hash="x"))
        session.flush()
        tryon = TryOn(user_id=user_id, user_snap="p", uncleaned_outfit="g")
        session.add(tryon)
        session.flush()
        made = [Job(vton_id=tryon.id, user_id=user_id, params={"seed": 3, "a": [1]}) for _ in range(count)]
        session.add_all(made)
    return [job.id for job in made]


def _complete(job_id: str) -> dict[str, object]:
    return {
        "job_id": job_id,
        "now": NOW,
        "new_result_key": "results/r.png",
        "new_result_keys": ["results/r.png", "results/r-1.png"],
        "new_seed": 7,
        "new_model": "smoke",
        "new_finished_at": FINISHED,
    }


def _stored(engine: Engine, job_id: str) -> sa.Row[tuple[object, ...]]:
    with engine.connect() as connection:
        return connection.execute(select(*Job.__table__.c).where(Job.id == job_id)).one()


def test_a_transition_stores_and_returns_what_execute_does(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """Times in UTC, JSON as JSON, the RETURNING row in Python values with the columns' names."""
    hot, reference = _jobs(sessions, 2)
    with engine.begin() as connection:
        expected = connection.execute(statements.complete(), _complete(reference)).one()
        for _ in range(2):  # compiled once, run again (the second run changes nothing: the job is finished)
            written = hot_writes.execute(connection, statements.complete(), _complete(hot))
        assert written.rows == [] and written.rowcount == 0
    with engine.begin() as connection:
        hot_writes.execute(connection, update(Job).where(Job.id == hot).values(status="running"), {})
        row = hot_writes.execute(connection, statements.complete(), _complete(hot)).one_or_none()
    assert row is not None and row._fields == tuple(expected._fields)
    assert (row.status, row.result_keys, row.seed, row.params) == (
        "succeeded",
        ["results/r.png", "results/r-1.png"],
        7,
        {"seed": 3, "a": [1]},
    )
    assert (row.finished_at, row.updated_at) == (FINISHED, NOW)
    stored, reference_row = _stored(engine, hot), _stored(engine, reference)
    assert row.created_at.tzinfo is not None and row.created_at == stored.created_at
    for column in (
        "status",
        "result_key",
        "result_keys",
        "seed",
        "model",
        "finished_at",
        "updated_at",
        "step",
        "steps",
    ):
        assert getattr(stored, column) == getattr(reference_row, column), column


def test_it_runs_in_the_callers_transaction(engine: Engine, sessions: sessionmaker[Session]) -> None:
    (job_id,) = _jobs(sessions, 1)
    with engine.connect() as connection:
        assert (
            hot_writes.execute(connection, statements.mark_running()[0], {"job_id": job_id, "now": NOW}).rowcount == 1
        )
        assert connection.in_transaction()
        connection.rollback()
    assert _stored(engine, job_id).status == "queued"
    with session_scope(sessions, write=True) as session:  # in a session's transaction, committed with it
        hot_writes.execute(session.connection(), statements.mark_running()[0], {"job_id": job_id, "now": NOW})
    assert (_stored(engine, job_id).status, _stored(engine, job_id).attempts) == ("running", 1)


def test_a_statement_with_a_python_side_default_runs_through_sqlalchemy(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """`updated_at`'s onupdate is computed as execute computes it (hot statements bind it)."""
    (job_id,) = _jobs(sessions, 1)
    before = _stored(engine, job_id).updated_at
    statement = update(Job).where(Job.id == bindparam("job_id"), Job.status.in_(("queued",))).values(status="running")
    with engine.begin() as connection:
        written = hot_writes.execute(connection, statement, {"job_id": job_id})
    assert written.rowcount == 1 and written.rows == []
    stored = _stored(engine, job_id)
    assert stored.status == "running" and stored.updated_at > before


def test_a_driver_error_is_sqlalchemys(engine: Engine, sessions: sessionmaker[Session]) -> None:
    (job_id,) = _jobs(sessions, 1)
    row = {"id": str(uuid.uuid4()), "job_id": job_id, "user_id": "u", "message": "{}", "created_at": NOW}
    statement = insert(OutboxMessage).values(
        id=bindparam("id"),
        job_id=bindparam("job_id"),
        user_id=bindparam("user_id"),
        message=bindparam("message"),
        created_at=bindparam("created_at", type_=OutboxMessage.__table__.c.created_at.type),
    )
    with engine.begin() as connection:
        assert hot_writes.execute(connection, statement, row).rowcount == 1
    with engine.begin() as connection, pytest.raises(sa.exc.IntegrityError) as raised:
        hot_writes.execute(connection, statement, row)
    assert "notification_outbox" in str(raised.value) or "UNIQUE" in str(raised.value).upper()
