"""The notify function: progress, completed and failed events become user notifications.

The try-on row is updated BEFORE the message is sent, so a client that refetches at once
sees the new state. A completion is written to the notification outbox in the same
transaction as the job's new state, then published to the replay stream and the pub/sub
channel exactly once per job (shared.notifications): a redelivered event, or the next
event notify handles (at most one look a second), publishes what a crash or a Redis outage
left pending. Progress goes to the channel only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from sqlalchemy.orm import Session

from shared import event_types as t
from shared import jobs
from shared.config import Settings
from shared.db.models import Job, User
from shared.db.session import session_scope
from shared.events import event_data
from shared.jobs import JobRow
from shared.notifications import Notifier, PendingMessage, add_to_outbox, completion_message, flush, publish_row
from shared.observability.metrics import JOB_DURATION, JOBS_FAILED, reason_label
from shared.predictions import api_params, is_prediction
from shared.stage import Dependencies, Stage

log = logging.getLogger(__name__)
# Outbox rows older than this that are still pending were left by a crash: publish them.
STALE_OUTBOX_S = 5.0
# How often at most an event also looks for such rows (a query per event cost more than its
# own publish; a row is only stale after STALE_OUTBOX_S anyway, and the reconciler looks too).
STALE_LOOK_EVERY_S = 1.0


class NotifyFunction(Stage):
    """Records results on the job and try-on rows, then tells the user's sockets."""

    source = "/proteus/functions/notify"
    uses_storage = False

    def __init__(self, deps: Dependencies) -> None:
        super().__init__(deps)
        self.notifier = Notifier(self.redis, deps.settings.redis_key_prefix)
        self.channel = self.notifier.channel
        self._next_stale_look = 0.0  # time.monotonic() of the next look for stale outbox rows
        self.stream = self.notifier.stream
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
            t.WEAVE_PROGRESS: self._progress,
            t.WEAVE_COMPLETED: self._weave_completed,
            t.WEAVE_FAILED: self._failed,
            t.TAILOR_COMPLETED: self._tailor_completed,
            t.TAILOR_FAILED: self._failed,
            t.JOB_CANCELED: self._canceled,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyFunction:
        return cls(Dependencies.from_settings(settings))

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        handler = self._handlers.get(event.get_type())
        if handler is None:
            return None
        message = handler(event_data(event))
        now = time.monotonic()
        if now >= self._next_stale_look:
            self._next_stale_look = now + STALE_LOOK_EVERY_S
            try:
                flush(self.sessions, self.notifier, older_than_s=STALE_OUTBOX_S)  # what a crash left behind
            except Exception:  # this event's own work is done; the next call retries
                self._next_stale_look = 0.0
                log.warning("could not publish pending notifications", exc_info=True)
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
                session,
                data["job_id"],
                result_key=data["result_key"],
                seed=data.get("seed"),
                model=data.get("model"),
                result_keys=data.get("result_keys"),
            )
            row = None
            if changed:
                row = self._record(
                    session,
                    data,
                    "done",
                    result_key=data["result_key"],
                    error=None,
                    result_keys=data.get("result_keys"),
                    job=changed,
                )
            webhook = self._webhook_for(session, data["job_id"], changed)
        if webhook:
            self._request_webhook(data, webhook)
        return self._publish_pending(data["job_id"], row)

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
            changed = jobs.complete_job(
                session, job.id, result_key=data.get("cutout_key") or data.get("mask_key") or ""
            )
            if changed:
                self._record(session, data, "done", result_key=data.get("cutout_key"), error=None)
        return self._publish_pending(data["job_id"])

    def _failed(self, data: dict[str, Any]) -> dict[str, Any] | None:
        with session_scope(self.sessions, write=True) as session:
            row = None
            changed = jobs.fail_job(session, data["job_id"], error=data["error"], code=data.get("code"))
            if changed:
                row = self._record(session, data, "failed", result_key=None, error=data["error"], job=changed)
            webhook = self._webhook_for(session, data["job_id"], changed)
        if webhook:
            self._request_webhook(data, webhook)
        return self._publish_pending(data["job_id"], row)

    def _canceled(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The owner canceled the job: the gateway changed it and recorded its completion in one
        transaction; publish that completion and request the webhook."""
        with session_scope(self.sessions) as session:
            webhook = self._webhook_for(session, data["job_id"])
        if webhook:
            self._request_webhook(data, webhook)
        return self._publish_pending(data["job_id"])

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _record(
        session: Session,
        data: dict[str, Any],
        status: str,
        *,
        result_key: str | None,
        error: str | None,
        result_keys: list[str] | None = None,
        job: Job | JobRow | None = None,
    ) -> PendingMessage:
        """Add the job's completion to the outbox, in the transaction that changed its state
        (`job`: the row that transaction changed, when the caller has it)."""
        if job is None:
            job = session.get(Job, data["job_id"])
        if job is not None and job.created_at is not None:  # the whole job, request to completion
            seconds = (datetime.now(UTC) - job.created_at).total_seconds()
            JOB_DURATION.labels(job.job_type, "ok" if status == "done" else "failed").observe(max(0.0, seconds))
            if status != "done":
                JOBS_FAILED.labels(job.job_type, reason_label(data.get("code"))).inc()
        return add_to_outbox(
            session,
            completion_message(
                job_id=data["job_id"],
                job_type=job.job_type if job is not None else "try_on",
                status=status,
                user_id=data["user_id"],
                vton_id=data.get("vton_id"),
                result_key=result_key,
                error=error,
                result_keys=result_keys,
            ),
        )

    def _publish_pending(self, job_id: str, row: PendingMessage | None = None) -> dict[str, Any] | None:
        """Publish the job's pending completion (`row`, this call's, just committed; else one
        a crash left); the message published now, or None when there was none (already
        published)."""
        if row is not None:  # no need to read back what this call wrote
            return publish_row(self.sessions, self.notifier, row.id, row.user_id, row.message)
        published = flush(self.sessions, self.notifier, job_id=job_id)
        return published[0] if published else None

    @staticmethod
    def _webhook_for(session: Session, job_id: str, job: Job | JobRow | None = None) -> str | None:
        """The webhook URL of a finished public-API job: its own, else its owner's default
        (`job`: the row as this transaction changed it, when the caller has it)."""
        if job is None:
            job = session.get(Job, job_id)
        if job is None or job.status not in ("succeeded", "failed", "canceled") or not is_prediction(job):
            return None
        url = api_params(job).get("webhook_url")
        if not url:
            user = session.get(User, job.user_id)
            url = user.webhook_url if user is not None else None
        return url or None

    def _request_webhook(self, data: dict[str, Any], url: str) -> None:
        """Queue the job's webhook (every time its end is seen: the webhooks function sends each job's once)."""
        self.publish(t.WEBHOOK_REQUESTED, {"job_id": data["job_id"], "user_id": data["user_id"], "url": url})
