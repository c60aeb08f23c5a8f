"""The notify function: progress, completed and failed events become user notifications.

The try-on row is updated BEFORE the message is sent, so a client that refetches at once
sees the new state. Completions go to the replay stream and the pub/sub channel exactly
once per job (the job's state transition decides); progress goes to the channel only.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from sqlalchemy.orm import Session

from shared import event_types as t
from shared import jobs
from shared.config import Settings
from shared.db.models import Job
from shared.db.session import session_scope
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM, NOTIFICATION_STREAM_MAXLEN, prefixed
from shared.stage import Dependencies, Stage

log = logging.getLogger(__name__)


class NotifyFunction(Stage):
    """Records results on the job and try-on rows, then tells the user's sockets."""

    source = "/proteus/functions/notify"
    uses_storage = False

    def __init__(self, deps: Dependencies) -> None:
        super().__init__(deps)
        prefix = deps.settings.redis_key_prefix
        self.channel = prefixed(NOTIFICATION_CHANNEL, prefix)
        self.stream = prefixed(NOTIFICATION_STREAM, prefix)
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
            t.WEAVE_PROGRESS: self._progress,
            t.WEAVE_COMPLETED: self._weave_completed,
            t.WEAVE_FAILED: self._failed,
            t.TAILOR_COMPLETED: self._tailor_completed,
            t.TAILOR_FAILED: self._failed,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyFunction:
        return cls(Dependencies.from_settings(settings))

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        handler = self._handlers.get(event.get_type())
        if handler is None:
            return None
        message = handler(event.get_data() or {})
        if message is None:
            return None
        return self.event(t.USER_NOTIFICATION, message)

    # -- one method per event type -------------------------------------------------

    def _progress(self, data: dict[str, Any]) -> dict[str, Any] | None:
        with session_scope(self.sessions, write=True) as session:
            if not jobs.record_progress(session, data["job_id"], data["step"], data["steps"]):
                return None
        message = {
            "event": "progress",
            "job_id": data["job_id"],
            "vton_id": data.get("vton_id"),
            "user_id": data["user_id"],
            "step": data["step"],
            "steps": data["steps"],
        }
        self.redis.publish(self.channel, json.dumps(message))
        return message

    def _weave_completed(self, data: dict[str, Any]) -> dict[str, Any] | None:
        with session_scope(self.sessions, write=True) as session:
            changed = jobs.complete_job(
                session, data["job_id"], result_key=data["result_key"], seed=data.get("seed"), model=data.get("model")
            )
            job_type = self._job_type(session, data["job_id"])
        if not changed:
            return None
        return self._push_done(data, job_type, "done", result_key=data["result_key"], error=None)

    def _tailor_completed(self, data: dict[str, Any]) -> dict[str, Any] | None:
        with session_scope(self.sessions, write=True) as session:
            job = session.get(Job, data["job_id"])
            if job is None:
                log.warning("tailor.completed for unknown job %s", data["job_id"])
                return None
            jobs.record_tailor_assets(
                session,
                job.vton_id,
                cutout_key=data.get("cutout_key"),
                mask_key=data.get("mask_key"),
                category=data.get("category"),
            )
            if job.job_type != "tailor":
                # A tailor step on the way to a try-on: weave finishes that job.
                return None
            changed = jobs.complete_job(session, job.id, result_key=data.get("cutout_key") or data.get("mask_key") or "")
        if not changed:
            return None
        return self._push_done(data, "tailor", "done", result_key=data.get("cutout_key"), error=None)

    def _failed(self, data: dict[str, Any]) -> dict[str, Any] | None:
        with session_scope(self.sessions, write=True) as session:
            changed = jobs.fail_job(session, data["job_id"], error=data["error"])
            job_type = self._job_type(session, data["job_id"])
        if not changed:
            return None
        return self._push_done(data, job_type, "failed", result_key=None, error=data["error"])

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _job_type(session: Session, job_id: str) -> str:
        job = session.get(Job, job_id)
        return job.job_type if job is not None else "try_on"

    def _push_done(
        self, data: dict[str, Any], job_type: str, status: str, *, result_key: str | None, error: str | None
    ) -> dict[str, Any]:
        """Append the completion to the replay stream, then publish it with its stream id."""
        message: dict[str, Any] = {
            "job_id": data["job_id"],
            "job_type": job_type,
            "status": status,
            "user_id": data["user_id"],
            "vton_id": data.get("vton_id"),
            "result_s3_key": result_key,
            "error": error,
            "finished_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        entry_id = self.redis.xadd(
            self.stream,
            {"user_id": data["user_id"], "message": json.dumps(message)},
            maxlen=NOTIFICATION_STREAM_MAXLEN,
            approximate=True,
        )
        message["event_id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        self.redis.publish(self.channel, json.dumps(message))
        return message
