"""The models on a migrated SQLite and PostgreSQL database; engines and sessions."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import GarmentAsset, Job, TryOn, User
from shared.db.session import make_engine, normalize_url, ping, session_scope
from shared.errors import DependencyUnavailable


def add_user(session: Session, email: str = "ada@example.com") -> User:
    user = User(user_name="ada", email=email, password_hash="$2b$12$hash")
    session.add(user)
    session.flush()
    return user


def add_tryon(session: Session, user: User, **values: object) -> TryOn:
    tryon = TryOn(user_id=user.id, user_snap=f"uploads/{user.id}/p.jpg", uncleaned_outfit=f"uploads/{user.id}/g.jpg")
    for name, value in values.items():
        setattr(tryon, name, value)
    session.add(tryon)
    session.flush()
    return tryon


def test_defaults_and_aware_timestamps(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        user = add_user(session)
        tryon = add_tryon(session, user)
        job = Job(
            user_id=user.id, vton_id=tryon.id, params={"steps": 30, "name": "Ünïcode ✓", "nested": [1, {"a": None}]}
        )
        session.add(job)
        ids = user.id, tryon.id, job.id
    with sessions() as session:
        user, tryon, job = session.get(User, ids[0]), session.get(TryOn, ids[1]), session.get(Job, ids[2])
        assert len(user.id) == 36 and user.token_version == 0
        assert tryon.status == "queued" and tryon.progress_step is None
        assert (job.status, job.job_type, job.step, job.attempts) == ("queued", "try_on", 0, 0)
        assert job.params == {"steps": 30, "name": "Ünïcode ✓", "nested": [1, {"a": None}]}
        for stamp in (user.created_at, user.updated_at, tryon.created_at, job.created_at):
            assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
            assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)


def test_updated_at_moves_on_update_and_offsets_are_kept(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        user = add_user(session)
        user.created_at = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
        user_id = user.id
    with sessions() as session:
        before = session.get(User, user_id)
        assert before.created_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
        first = before.updated_at
    time.sleep(0.01)
    with session_scope(sessions) as session:
        session.get(User, user_id).token_version = 1
    with sessions() as session:
        assert session.get(User, user_id).updated_at > first


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"), session_scope(sessions) as session:
        add_user(session).created_at = datetime(2024, 1, 1)


def test_deleting_a_user_cascades_in_the_database(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        user, other = add_user(session), add_user(session, "bob@example.com")
        for owner in (user, other):
            tryon = add_tryon(session, owner)
            session.add(Job(user_id=owner.id, vton_id=tryon.id, params={}))
            session.add(GarmentAsset(user_id=owner.id, content_hash="h", kind="cutout", key="k"))
        user_id = user.id
    with session_scope(sessions) as session:
        session.execute(delete(User).where(User.id == user_id))  # plain SQL: the FKs do the work
    with sessions() as session:
        for model in (TryOn, Job, GarmentAsset):
            owners = session.scalars(select(model.user_id)).all()
            assert owners and user_id not in owners


def test_deleting_a_tryon_cascades_to_its_jobs(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        user = add_user(session)
        tryon = add_tryon(session, user)
        session.add(Job(user_id=user.id, vton_id=tryon.id, params={}))
        tryon_id = tryon.id
    with session_scope(sessions) as session:
        session.execute(delete(TryOn).where(TryOn.id == tryon_id))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


BAD_ROWS = {
    "duplicate email": lambda u, t: User(user_name="dup", email=u.email, password_hash="x"),
    "duplicate idempotency key": lambda u, t: Job(user_id=u.id, vton_id=t.id, params={}, idempotency_key="k1"),
    "duplicate asset": lambda u, t: GarmentAsset(
        user_id=u.id, content_hash="h", kind="mask", category="upper", key="k"
    ),
    "try-on status": lambda u, t: TryOn(user_id=u.id, user_snap="a", uncleaned_outfit="b", status="bogus"),
    "job status": lambda u, t: Job(user_id=u.id, vton_id=t.id, params={}, status="paused"),
    "job type": lambda u, t: Job(user_id=u.id, vton_id=t.id, params={}, job_type="dance"),
    "asset kind": lambda u, t: GarmentAsset(user_id=u.id, content_hash="h", kind="photo", key="k"),
    "unknown try-on": lambda u, t: Job(user_id=u.id, vton_id="no-such-tryon", params={}),
    "unknown user": lambda u, t: TryOn(user_id="no-such-user", user_snap="a", uncleaned_outfit="b"),
    "missing user_snap": lambda u, t: TryOn(user_id=u.id, user_snap=None, uncleaned_outfit="b"),
}


def test_constraints_refuse_bad_rows(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        user = add_user(session)
        tryon = add_tryon(session, user)
        session.add(Job(user_id=user.id, vton_id=tryon.id, params={}, idempotency_key="k1"))
        session.add(GarmentAsset(user_id=user.id, content_hash="h", kind="mask", category="upper", key="k"))
        session.flush()
        accepted = []
        for name, make in BAD_ROWS.items():
            try:
                with session.begin_nested():
                    session.add(make(user, tryon))
            except IntegrityError:
                continue
            accepted.append(name)
        assert accepted == []


def test_jobs_without_a_key_and_assets_per_category_coexist(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        user = add_user(session)
        tryon = add_tryon(session, user)
        session.add_all([Job(user_id=user.id, vton_id=tryon.id, params={}) for _ in range(2)])
        session.add_all(
            [
                GarmentAsset(user_id=user.id, content_hash="h", kind="cutout", key="c"),
                GarmentAsset(user_id=user.id, content_hash="h", kind="mask", category="upper", key="m1"),
                GarmentAsset(user_id=user.id, content_hash="h", kind="mask", category="lower", key="m2"),
            ]
        )
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 2
        assert session.scalar(select(func.count()).select_from(GarmentAsset)) == 3


def test_a_users_tryons_newest_first(sessions: sessionmaker[Session], engine: Engine) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    with session_scope(sessions) as session:
        user, other = add_user(session), add_user(session, "bob@example.com")
        for i in (2, 0, 1):
            add_tryon(session, user, created_at=base + timedelta(hours=i), category=f"c{i}")
        add_tryon(session, other, created_at=base + timedelta(hours=9))
        user_id = user.id
    with sessions() as session:
        rows = session.scalars(
            select(TryOn).where(TryOn.user_id == user_id).order_by(TryOn.created_at.desc(), TryOn.id.desc())
        ).all()
        assert [t.category for t in rows] == ["c2", "c1", "c0"]
    indexes = {tuple(ix["column_names"]) for ix in sa.inspect(engine).get_indexes("vtons")}
    assert ("user_id", "created_at") in indexes


def test_sqlite_engine_setup(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/deep/er/proteus.db")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    assert (tmp_path / "deep" / "er" / "proteus.db").exists()
    engine.dispose()


def test_sqlite_savepoints_roll_back_inside_the_transaction(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/sp.db")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with engine.connect() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        savepoint = connection.begin_nested()
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        savepoint.rollback()
        connection.rollback()  # the outer transaction takes the first row with it
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u:p@db:5432/proteus", "postgresql+psycopg"),
        ("postgresql://u:p@db/proteus", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/proteus", "postgresql+psycopg"),
        ("sqlite:///var/proteus.db", "sqlite"),
    ],
)
def test_urls_map_to_psycopg3(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


def test_postgres_engine_from_a_plain_url(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgres://")
    engine = make_engine(plain)
    assert engine.dialect.driver == "psycopg"
    ping(engine)
    engine.dispose()


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.parametrize("idle_s", [0.0, 0.3])
def test_a_pooled_connection_that_died_while_idle_is_replaced_unseen(postgres_url: str, idle_s: float) -> None:
    """The database dropped a pooled connection (a restart, an idle timeout): the next
    checkout after an idle spell pings it, finds it dead and connects again."""
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_s=idle_s)
    other = make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        dead = _backend_pid(engine)  # back in the pool now
        with other.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
            admin.commit()
        time.sleep(idle_s + 0.05)
        assert _backend_pid(engine) != dead  # no error: a fresh connection took its place
    finally:
        engine.dispose()
        other.dispose()


def test_a_connection_back_from_work_moments_ago_is_not_pinged(postgres_url: str) -> None:
    """No round trip per checkout under load: within the idle threshold the pool trusts it."""
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_s=60.0)
    pings: list[int] = []
    original = engine.dialect.do_ping
    engine.dialect.do_ping = lambda dbapi_connection: pings.append(1) or original(dbapi_connection)  # type: ignore[method-assign]
    try:
        for _ in range(5):
            _backend_pid(engine)
        assert pings == []
    finally:
        engine.dispose()


def test_ping_and_session_scope_on_an_unreachable_database() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = make_engine(f"postgresql://nobody:secret@127.0.0.1:{port}/none")
    with pytest.raises(DependencyUnavailable) as info:
        ping(engine)
    assert "secret" not in info.value.message
    from shared.db.session import make_session_factory

    with pytest.raises(DependencyUnavailable), session_scope(make_session_factory(engine)) as session:
        session.execute(sa.text("SELECT 1"))
    engine.dispose()


def test_session_scope_commits_or_rolls_back(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), session_scope(sessions) as session:
        add_user(session)
        raise RuntimeError("boom")
    with session_scope(sessions) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
        add_user(session)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
