"""What the stateful functions share: their dependencies, readiness, and publishing events.

enqueue, weave, tailor and notify each talk to the database, Redis and object storage.
`Dependencies` builds those once per process from the settings; `Stage` is the base
class that holds them, reports readiness by pinging them, and publishes follow-up events
on the stream the routing table names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import redis
from cloudevents.core.base import BaseCloudEvent
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings
from shared.db.session import make_engine, make_session_factory, ping
from shared.events import CloudEvent, make_event
from shared.redis_client import redis_from_settings
from shared.storage import storage_from_settings
from shared.storage.base import Storage
from shared.streams.publish import publish


@dataclass(frozen=True)
class Dependencies:
    """The database sessions, object storage and Redis client of one process."""

    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    redis: redis.Redis

    @property
    def engine(self) -> Engine:
        """The engine the sessions are bound to (for reads that need no session)."""
        return cast(Engine, self.sessions.kw["bind"])

    @classmethod
    def from_settings(cls, settings: Settings) -> Dependencies:
        return cls(
            settings,
            make_session_factory(make_engine(settings.database_url)),
            storage_from_settings(settings),
            redis_from_settings(settings),
        )


class Stage:
    """Base of a stateful function: `handle(event)` is the subclass's; the plumbing is here."""

    source: ClassVar[str] = "/proteus/functions"
    uses_storage: ClassVar[bool] = True

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.sessions = deps.sessions
        self.storage = deps.storage
        self.redis = deps.redis

    def check_dependencies(self) -> None:
        """Ping the database, Redis and (where used) storage; DependencyUnavailable if one is down."""
        with self.sessions() as session:
            ping(session.get_bind())  # type: ignore[arg-type]
        self.redis.ping()
        if self.uses_storage:
            self.storage.ping()

    def readiness(self) -> dict[str, Any]:
        self.check_dependencies()
        return {"ready": True}

    def event(self, event_type: str, body: dict[str, Any]) -> BaseCloudEvent:
        """An event from this stage about `body`'s job and user."""
        return make_event(event_type, body, source=self.source, subject=body.get("job_id"), user_id=body["user_id"])

    def publish(self, event_type: str, body: dict[str, Any]) -> BaseCloudEvent:
        """Build the event and add it to the stream its type is routed to; returns it."""
        event = self.event(event_type, body)
        publish(self.redis, cast(CloudEvent, event), prefix=self.settings.redis_key_prefix)
        return event
