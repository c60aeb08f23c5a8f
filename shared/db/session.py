"""Engines and sessions for SQLite (development) and PostgreSQL (production).

SQLite gets WAL, foreign keys, a busy timeout and real transactions (SQLAlchemy emits the
BEGIN, so SAVEPOINT and transactional DDL work); PostgreSQL gets psycopg 3, and a pooled
connection that sat idle is pinged before use (`ping_when_idle`).

SQLite transactions begin DEFERRED, so readers never wait. One that reads and then
writes can fail at once with "database is locked" if another writer committed in
between (the busy timeout cannot help), so writers call `begin_write(session)` first
(or use `session_scope(factory, write=True)`): on SQLite that is BEGIN IMMEDIATE.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, CursorResult, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from shared.config import ConfigError
from shared.errors import DependencyUnavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 5
_SQLITE_BEGIN = "proteus_sqlite_begin"  # connection execution option read by the BEGIN hook
PING_AFTER_IDLE_S = 1.0  # a pooled connection idle this long is pinged before use
_IDLE_SINCE = "proteus_idle_since"


def normalize_url(url: str | URL) -> URL:
    """`postgres://` and `postgresql://` become psycopg 3; anything else is kept."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    for scheme in ("postgres://", "postgresql://"):
        if text.startswith(scheme):
            text = "postgresql+psycopg://" + text[len(scheme) :]
    try:
        return make_url(text)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}", field="DATABASE_URL") from None


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for `url`, set up for its dialect (extra kwargs go to create_engine)."""
    parsed = normalize_url(url)
    ping_after_idle_s = kwargs.pop("ping_after_idle_s", PING_AFTER_IDLE_S)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
    engine = sa.create_engine(parsed, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        ping_when_idle(engine, ping_after_idle_s)
    return engine


def ping_when_idle(engine: Engine, after_s: float) -> None:
    """Pessimistic disconnect handling at a round trip per idle spell, not per checkout.

    SQLAlchemy's pool_pre_ping pings every connection it hands out: a round trip on every
    request. A busy pool hands the same connections out again within milliseconds, so a
    connection is pinged only when it sat in the pool `after_s` or longer (a database that
    restarted meanwhile is found then); a dead one is replaced before anyone uses it.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < after_s:
            return  # just connected, or back from work moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"pooled connection is dead: {exc}") from exc


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if in_memory:
        kwargs.pop("pool_size", None)  # one shared connection: no pool to size
        kwargs.pop("max_overflow", None)
        kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not sqlite3, emits BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine`; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def begin_write(session: Session) -> None:
    """Declare that this session's transaction will write (call before its first query).

    On SQLite its BEGIN becomes BEGIN IMMEDIATE: writers queue up at the start instead of
    failing after a read. A no-op on other databases or once the transaction has a
    connection (it can no longer be changed then).
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    transaction = session.get_transaction()
    if transaction is not None and transaction._connections:  # already begun
        return
    session.connection(execution_options={_SQLITE_BEGIN: "IMMEDIATE"})


def rows_changed(session: Session, statement: sa.Update | sa.Delete) -> int:
    """Run an UPDATE or DELETE; how many rows it changed. (An ORM session types every result
    as `Result`; a DML statement's is a `CursorResult`, which has the row count.)"""
    return cast("CursorResult[Any]", session.execute(statement)).rowcount


@contextmanager
def session_scope(factory: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error, always close.

    `write=True` calls `begin_write` first. A database that cannot be reached (or stays
    locked past the busy timeout) becomes DependencyUnavailable.
    """
    session = factory()
    try:
        if write:
            begin_write(session)
        yield session
        session.commit()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        _rollback_quietly(session)
        raise DependencyUnavailable(f"database unavailable: {exc.orig or exc}") from exc
    except BaseException:
        _rollback_quietly(session)
        raise
    finally:
        session.close()


def _rollback_quietly(session: Session) -> None:
    """Roll back without hiding the original error behind a failed rollback."""
    try:
        session.rollback()
    except sa.exc.SQLAlchemyError:
        pass


def ping(engine: Engine) -> None:
    """Return if the database answers `SELECT 1`; DependencyUnavailable otherwise."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise DependencyUnavailable(f"database {where} is unavailable: {getattr(exc, 'orig', None) or exc}") from exc
