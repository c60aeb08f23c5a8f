"""shared/db/hot_reads.py: the same rows as SQLAlchemy's execute, and the same errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from shared.db.hot_reads import fetch_all
from shared.db.migrate import upgrade
from shared.db.models import Job, TryOn, User
from shared.db.session import make_engine, session_scope

STATEMENT = (
    select(TryOn.id, TryOn.status, TryOn.created_at, TryOn.result_expired_at, Job.params.label("run_params"))
    .outerjoin(Job, Job.vton_id == TryOn.id)
    .where(TryOn.user_id == bindparam("user_id"), TryOn.status != "gone")
    .order_by(TryOn.created_at.desc())
)


def _seed(sessions: sessionmaker[Session]) -> str:
    user_id = str(uuid.uuid4())
    started = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=UTC)
    with session_scope(sessions) as session:
        session.add(User(id=user_id, user_name=f"u{user_id[:8]}", email=f"{user_id}@t.test", password_hash="x"))
        session.flush()
        for i in range(3):
            tryon = TryOn(
                user_id=user_id, user_snap="p", uncleaned_outfit="g", created_at=started + timedelta(seconds=i)
            )
            session.add(tryon)
            session.flush()
            if i != 1:
                session.add(Job(vton_id=tryon.id, user_id=user_id, job_type="try_on", params={"seed": i, "a": [1]}))
    return user_id


def test_the_same_rows_as_execute(engine: Engine, sessions: sessionmaker[Session]) -> None:
    user_id = _seed(sessions)
    with engine.connect() as connection:
        expected = connection.execute(STATEMENT, {"user_id": user_id}).all()
        for _ in range(2):  # compiled once, run again
            rows = fetch_all(connection, STATEMENT, {"user_id": user_id})
            assert [tuple(row._fields) for row in rows][:1] == [tuple(expected[0]._fields)]
            assert [row.id for row in rows] == [row.id for row in expected]
            assert [row.run_params for row in rows] == [{"seed": 2, "a": [1]}, None, {"seed": 0, "a": [1]}]
            assert [row.created_at.astimezone(UTC) for row in rows] == [row.created_at for row in expected]
            assert all(row.result_expired_at is None for row in rows)
        assert fetch_all(connection, STATEMENT, {"user_id": "nobody"}) == []


def test_a_lost_server_is_sqlalchemys_operational_error_and_the_connection_is_replaced(postgres_url: str) -> None:
    """As under execute: a 503-mapped OperationalError, and the pool gets a fresh connection."""
    upgrade(postgres_url)
    pooled = make_engine(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_s=3600)
    engine = make_engine(postgres_url)
    try:
        with pooled.connect() as connection:
            dead = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with engine.connect() as admin:
                admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
            with pytest.raises(sa.exc.OperationalError) as raised:
                fetch_all(connection, STATEMENT, {"user_id": "anyone"})
            assert raised.value.connection_invalidated
        with pooled.connect() as connection:  # no error: a fresh connection took its place
            assert fetch_all(connection, STATEMENT, {"user_id": "anyone"}) == []
            assert connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != dead
    finally:
        pooled.dispose()
        engine.dispose()


VERSION_STATEMENT = select(User.id, User.token_version).where(User.id == bindparam("id"))


def test_a_statement_that_needs_no_conversion_runs_on_the_driver_on_both_databases(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """Integers and text come back from either driver as execute returns them, without a
    transaction begun around the read."""
    user_id = _seed(sessions)
    with engine.connect() as connection:
        expected = connection.execute(VERSION_STATEMENT, {"id": user_id}).all()
        connection.rollback()
        rows = fetch_all(connection, VERSION_STATEMENT, {"id": user_id})
        assert rows == [tuple(expected[0])]
        assert (rows[0].id, rows[0].token_version) == (user_id, 0)
        assert not connection.in_transaction()
        assert fetch_all(connection, VERSION_STATEMENT, {"id": "nobody"}) == []


def test_a_driver_error_is_sqlalchemys_on_both_databases(engine: Engine) -> None:
    missing = sa.table("no_such_table", sa.column("n", sa.Integer)).select().where(sa.column("n") == bindparam("n"))
    with engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as raised:
        fetch_all(connection, missing, {"n": 1})
    assert "no_such_table" in str(raised.value)
