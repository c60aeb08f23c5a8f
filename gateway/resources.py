"""The gateway's connections, opened lazily once per process and shared by its requests.

`init_app` puts one `Resources` in `app.extensions["proteus"]`; views reach it through
`current()`, `settings()`, `db()` (a session on `g`, closed when the request ends),
`redis()`, `storage()` and `hasher()`. Nothing connects before the first request that needs
it, so a gunicorn worker opens its own connections after the fork (and after gevent's patching).

A request that may write (POST, PUT, PATCH, DELETE) gets a session whose transaction takes
the database's write lock up front (`begin_write`: BEGIN IMMEDIATE on SQLite), so two
writers queue on the busy timeout instead of one failing with "database is locked" when it
upgrades a read. Views that do slow work (password hashing, a call to another service,
fetching an image) before they write, or that write nothing, are marked `@write_lock_later`
and call `begin_write` themselves right before they write. Under gevent this matters twice:
SQLite's busy wait does not yield, so a request that held the lock while it waited on the
network would stall every other writer of its worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app, g, request

from shared.config import Settings

if TYPE_CHECKING:
    import redis as redis_lib
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker

    from gateway.passwords import PasswordHasher
    from shared.storage.base import Storage

EXTENSION = "proteus"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LATER = "_proteus_write_lock_later"
F = TypeVar("F", bound=Callable[..., Any])


def write_lock_later(view: F) -> F:
    """Mark a view that takes the write lock itself (after its slow part), or writes nothing."""
    setattr(view, _LATER, True)
    return view


class Resources:
    """Engine, session factory, Redis client and storage for one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._read_engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._redis: redis_lib.Redis | None = None
        self._storage: Storage | None = None
        self._hasher: PasswordHasher | None = None
        self.hub: Any = None  # gateway.ws.Hub, made by the first WebSocket

    @property
    def engine(self) -> Engine:
        self._open_db()
        assert self._engine is not None
        return self._engine

    @property
    def read_engine(self) -> Engine:
        """The engine for reads that need no transaction: on PostgreSQL in autocommit (no BEGIN
        and no ROLLBACK round trip around them; same pool); elsewhere the engine itself."""
        engine = self.engine
        if self._read_engine is None:
            autocommit = engine.dialect.name == "postgresql"
            self._read_engine = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
        return self._read_engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        self._open_db()
        assert self._sessions is not None
        return self._sessions

    def _open_db(self) -> None:
        if self._sessions is None:
            from shared.db.session import make_engine, make_session_factory

            with self._lock:
                if self._sessions is None:
                    size = self.settings.db_pool_size  # >= requests at once: no waiting behind newer ones
                    self._engine = make_engine(self.settings.database_url, pool_size=size, max_overflow=size)
                    self._sessions = make_session_factory(self._engine)

    @property
    def redis(self) -> redis_lib.Redis:
        if self._redis is None:
            from shared.redis_client import redis_from_settings

            with self._lock:
                if self._redis is None:
                    self._redis = redis_from_settings(self.settings)
        return self._redis

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            from shared.storage import storage_from_settings

            with self._lock:
                if self._storage is None:
                    self._storage = storage_from_settings(self.settings)
        return self._storage

    @property
    def hasher(self) -> PasswordHasher:
        if self._hasher is None:
            from gateway.passwords import PasswordHasher

            with self._lock:
                if self._hasher is None:
                    self._hasher = PasswordHasher(self.settings.bcrypt_rounds)
        return self._hasher

    def close(self) -> None:
        """Stop the WebSocket hub and close every connection (tests, shutdown)."""
        if self._hasher is not None:
            self._hasher.close()
            self._hasher = None
        if self.hub is not None:
            self.hub.stop()
            self.hub = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION] = Resources(settings)
    app.teardown_appcontext(_close_session)


def current() -> Resources:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def resources_of(app: Flask) -> Resources:
    return app.extensions[EXTENSION]  # type: ignore[no-any-return]


def storage_of(app: Flask) -> Storage:
    return resources_of(app).storage


def settings() -> Settings:
    return current_app.config["PROTEUS_SETTINGS"]  # type: ignore[no-any-return]


def db() -> Session:
    """This request's database session (opened on first use, closed at teardown).

    For a request that may write, its transaction holds the write lock from the start.
    """
    if "db" not in g:
        session = current().sessions()
        if request.method in WRITE_METHODS and not _locks_later():
            from shared.db.session import begin_write

            begin_write(session)
        g.db = session
    return g.db  # type: ignore[no-any-return]


def _locks_later() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, _LATER, False))


def begin_write(session: Session) -> None:
    """Take the write lock for `session`'s next transaction (ends a read-only one first)."""
    from shared.db.session import begin_write as begin

    if session.get_transaction() is not None and not (session.new or session.dirty or session.deleted):
        session.commit()
    begin(session)


def hasher() -> PasswordHasher:
    return current().hasher


def redis() -> redis_lib.Redis:
    return current().redis


def storage() -> Storage:
    return current().storage


def read_connection() -> Connection:
    """This request's connection for reads outside a transaction (a hot read-only view:
    the caller's token version, the history), opened on first use and closed at teardown.
    On PostgreSQL it is autocommit (`Resources.read_engine`); on SQLite (no network to
    save) the request session's connection."""
    if "read_connection" not in g:
        resources = current()
        owned = resources.read_engine is not resources.engine
        g.read_connection = resources.read_engine.connect() if owned else db().connection()
        g.read_connection_owned = owned
    return g.read_connection  # type: ignore[no-any-return]


def _close_session(_exc: BaseException | None) -> None:
    connection = g.pop("read_connection", None)
    if connection is not None and g.pop("read_connection_owned", False):
        connection.close()
    session = g.pop("db", None)
    if session is not None:
        session.close()
