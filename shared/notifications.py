"""Completion notifications through an outbox: written with the state change, published once.

Whoever finishes a job (notify, the reconciler) adds the completion message to the
`notification_outbox` table in the SAME transaction as the job's new state, so a job
never ends without its notification on record. After the commit, `flush` publishes what
is pending: the message goes to the replay stream and the pub/sub channel in one Lua
script keyed by the outbox row's id, so two processes (or a retry after a crash between
publishing and marking the row) publish it exactly once. Whoever comes next publishes
what a crash left behind: the retried event's notify call, notify's next event, the
reconciler.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from typing import Any, cast

import redis
from redis.commands.core import Script
from sqlalchemy import Insert, Table, Update, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db import hot_writes
from shared.db.models import OutboxMessage, new_id, utcnow
from shared.db.session import session_scope
from shared.routing import (
    NOTIFICATION_CHANNEL,
    NOTIFICATION_STREAM,
    NOTIFICATION_STREAM_MAXLEN,
    prefixed,
)

log = logging.getLogger(__name__)

# How long the "published" mark of an outbox row is kept in Redis (longer than any retry).
PUBLISHED_MARK_TTL_S = 7 * 24 * 3600
FLUSH_BATCH = 50

# KEYS: stream, channel, mark. ARGV: user_id, message JSON (an object), maxlen, mark TTL.
# The mark holds the stream id once published; a second call returns it and sends nothing.
_PUBLISH_ONCE = """
local done = redis.call('GET', KEYS[3])
if done then return {done, 0} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'user_id', ARGV[1], 'message', ARGV[2])
redis.call('SET', KEYS[3], id, 'EX', ARGV[4])
local body = ARGV[2]
local sep = ','
if string.match(body, '^%s*{%s*}%s*$') then sep = '' end
redis.call('PUBLISH', KEYS[2], string.sub(body, 1, -2) .. sep .. '"event_id":"' .. id .. '"}')
return {id, 1}
"""


@dataclass(frozen=True)
class Notifier:
    """Where completions go: the replay stream and the channel under one key prefix."""

    redis: redis.Redis
    prefix: str = ""

    @property
    def stream(self) -> str:
        return prefixed(NOTIFICATION_STREAM, self.prefix)

    @property
    def channel(self) -> str:
        return prefixed(NOTIFICATION_CHANNEL, self.prefix)

    @cached_property
    def _publish_script(self) -> Script:
        """The publishing script, run by its SHA (EVALSHA; loaded again if the server lost it)."""
        return self.redis.register_script(_PUBLISH_ONCE)

    def publish_once(self, outbox_id: str, user_id: str, message: str) -> tuple[str, bool]:
        """Publish one outbox message unless it already was: (stream id, published now)."""
        mark = prefixed(f"proteus:outbox:{outbox_id}", self.prefix)
        entry_id, fresh = self._publish_script(
            keys=[self.stream, self.channel, mark],
            args=[user_id, message, NOTIFICATION_STREAM_MAXLEN, PUBLISHED_MARK_TTL_S],
        )
        entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return entry, bool(fresh)


def completion_message(
    *,
    job_id: str,
    job_type: str,
    status: str,
    user_id: str,
    vton_id: str | None,
    result_key: str | None,
    error: str | None,
    result_keys: list[str] | None = None,
) -> dict[str, Any]:
    """A completion in the original frontend's shape (the replay stream's entry id is added as
    `event_id` when it is published), plus `result_keys`: every sample (result_s3_key is the first)."""
    return {
        "job_id": job_id,
        "job_type": job_type,
        "status": status,
        "user_id": user_id,
        "vton_id": vton_id,
        "result_s3_key": result_key,
        "result_keys": result_keys or ([result_key] if result_key else []),
        "error": error,
        "finished_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """An outbox row just written: what publishing it needs."""

    id: str
    user_id: str
    message: str  # the completion as JSON


def add_to_outbox(session: Session, message: dict[str, Any]) -> PendingMessage:
    """Record `message` for publishing, in the caller's transaction (with the state change).

    One INSERT built once, run on the driver's cursor (shared.db.hot_writes).
    """
    row = PendingMessage(new_id(), message["user_id"], json.dumps(message))
    hot_writes.execute(
        session.connection(),
        _outbox_insert(),
        {
            "new_id": row.id,
            "new_job_id": message["job_id"],
            "new_user_id": row.user_id,
            "new_message": row.message,
            "now": utcnow(),
        },
    )
    return row


@cache
def _outbox_insert() -> Insert:
    table = cast(Table, OutboxMessage.__table__)
    return insert(table).values(
        id=bindparam("new_id"),
        job_id=bindparam("new_job_id"),
        user_id=bindparam("new_user_id"),
        message=bindparam("new_message"),
        created_at=bindparam("now", type_=table.c.created_at.type),
    )


def flush(
    sessions: sessionmaker[Session],
    notifier: Notifier,
    *,
    job_id: str | None = None,
    older_than_s: float = 0.0,
    limit: int = FLUSH_BATCH,
) -> list[dict[str, Any]]:
    """Publish pending outbox messages (of `job_id`, or all older than `older_than_s`).

    Returns the messages published by this call, each with its `event_id`. Redis errors
    propagate (the rows stay pending for the next one).
    """
    with session_scope(sessions) as session:
        query = select(OutboxMessage).where(OutboxMessage.published_at.is_(None))
        if job_id is not None:
            query = query.where(OutboxMessage.job_id == job_id)
        if older_than_s > 0:
            query = query.where(OutboxMessage.created_at < utcnow() - timedelta(seconds=older_than_s))
        rows = [
            (r.id, r.user_id, r.message, r.job_id)
            for r in session.scalars(query.order_by(OutboxMessage.created_at).limit(limit))
        ]
    published: list[dict[str, Any]] = []
    for outbox_id, user_id, message, row_job in rows:
        sent = publish_row(sessions, notifier, outbox_id, user_id, message)
        if sent is not None:
            published.append(sent)
            if job_id is None:
                log.warning(
                    "published the pending notification %s of job %s (left by a crash or an outage)",
                    sent["event_id"],
                    row_job,
                )
    return published


def publish_row(
    sessions: sessionmaker[Session], notifier: Notifier, outbox_id: str, user_id: str, message: str
) -> dict[str, Any] | None:
    """Publish one outbox row (unless it already was) and mark it published; the message with
    its `event_id` when this call published it, else None. The caller that has just committed
    the row publishes it this way without reading it back (what `flush` does for the others)."""
    entry_id, fresh = notifier.publish_once(outbox_id, user_id, message)
    with session_scope(sessions, write=True) as session:
        hot_writes.execute(
            session.connection(), _mark_published(), {"outbox_id": outbox_id, "now": utcnow(), "entry_id": entry_id}
        )
    return {**json.loads(message), "event_id": entry_id} if fresh else None


@cache
def _mark_published() -> Update:
    table = cast(Table, OutboxMessage.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("outbox_id"), table.c.published_at.is_(None))
        .values(published_at=bindparam("now", type_=table.c.published_at.type), stream_id=bindparam("entry_id"))
    )


def pending_count(sessions: sessionmaker[Session]) -> int:
    """How many notifications wait to be published."""
    from sqlalchemy import func

    with session_scope(sessions) as session:
        return int(
            session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None)))
            or 0
        )
