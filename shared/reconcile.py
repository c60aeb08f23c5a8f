"""The reconciler: notices jobs that can no longer finish, and pending notifications.

A job that made no progress (its row unchanged) for longer than its deadline
(JOB_QUEUED_DEADLINE_S while queued, JOB_RUNNING_DEADLINE_S while running) lost its
request or its result somewhere: a Redis that lost data, a dead letter, a crash. The
reconciler sends the job's request again once, rebuilt from the row (the request the
gateway stored in `params`; a running try-on goes back to queued so enqueue sends it on
again). If the job still makes no progress for another deadline, it fails with a
readable reason, its notification written in the same transaction (shared.notifications).
It also publishes notifications a crash left pending. Every action is logged.

    python -m shared.reconcile            # one pass (Kubernetes: the proteus-reconcile CronJob)
    python -m shared.reconcile --every 60 # a pass at start-up, then every 60 s (make run)
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared import event_types as t
from shared import jobs
from shared.config import Settings
from shared.db.models import Job, utcnow
from shared.db.session import make_engine, make_session_factory, rows_changed, session_scope
from shared.events import make_event
from shared.notifications import Notifier, add_to_outbox, completion_message, flush
from shared.streams.publish import publish

log = logging.getLogger("proteus.reconcile")

SOURCE = "/proteus/reconciler"
REQUEST_FOR_JOB_TYPE = {"try_on": t.TRYON_REQUESTED, "tailor": t.TAILOR_REQUESTED}
STALE_OUTBOX_S = 10.0
BATCH = 100


@dataclass
class Report:
    """What one pass did."""

    reemitted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    notifications: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"reemitted": len(self.reemitted), "failed": len(self.failed), "notifications": self.notifications}


class Reconciler:
    """One pass at a time over the database (and Redis, to publish)."""

    def __init__(self, sessions: sessionmaker[Session], client: redis.Redis, settings: Settings) -> None:
        self.sessions = sessions
        self.redis = client
        self.settings = settings
        self.notifier = Notifier(client, settings.redis_key_prefix)

    @classmethod
    def from_settings(cls, settings: Settings) -> Reconciler:
        from shared.redis_client import redis_from_settings

        return cls(make_session_factory(make_engine(settings.database_url)), redis_from_settings(settings), settings)

    def run_once(self) -> Report:
        """Publish what notifications are pending, then re-emit or fail the stalled jobs."""
        report = Report()
        report.notifications = len(flush(self.sessions, self.notifier, older_than_s=STALE_OUTBOX_S, limit=1000))
        for job_id in self._stalled():
            try:
                self._reconcile(job_id, report)
            except Exception:
                log.exception("could not reconcile job %s", job_id)
        if report.reemitted or report.failed or report.notifications:
            log.info("reconciled: %s", report.as_dict())
        return report

    def _stalled(self) -> list[str]:
        now = utcnow()
        queued = now - timedelta(seconds=self.settings.job_queued_deadline_s)
        running = now - timedelta(seconds=self.settings.job_running_deadline_s)
        with session_scope(self.sessions) as session:
            return list(
                session.scalars(
                    select(Job.id)
                    .where(
                        or_(
                            and_(Job.status == "queued", Job.updated_at < queued),
                            and_(Job.status == "running", Job.updated_at < running),
                        )
                    )
                    .order_by(Job.updated_at)
                    .limit(BATCH)
                )
            )

    def _reconcile(self, job_id: str, report: Report) -> None:
        with session_scope(self.sessions, write=True) as session:
            job = session.get(Job, job_id)
            if job is None or job.status not in jobs.ACTIVE:
                return
            idle_s = (utcnow() - job.updated_at).total_seconds()
            if job.reemitted_at is None:
                data = self._request_of(job)
                # Guarded on the row as read: progress that lands meanwhile wins.
                changed = rows_changed(
                    session,
                    update(Job)
                    .where(Job.id == job.id, Job.status == job.status, Job.updated_at == job.updated_at)
                    .values(reemitted_at=utcnow(), status="queued")
                    .execution_options(synchronize_session=False),
                )
                if changed != 1:
                    return
                status, user_id = job.status, job.user_id
            else:
                reason = (
                    f"No progress for {idle_s:.0f} s while {job.status}, even after the request was sent "
                    f"again; please try again."
                )
                if not jobs.fail_job(session, job.id, error=reason):
                    return
                add_to_outbox(
                    session,
                    completion_message(
                        job_id=job.id,
                        job_type=job.job_type,
                        status="failed",
                        user_id=job.user_id,
                        vton_id=job.vton_id,
                        result_key=None,
                        error=reason,
                    ),
                )
                status, user_id, data = "failed", job.user_id, None
        if data is None:
            log.error(
                "job %s of user %s failed: no progress for %.0f s after it was sent again", job_id, user_id, idle_s
            )
            report.failed.append(job_id)
            flush(self.sessions, self.notifier, job_id=job_id)
            return
        event_type = REQUEST_FOR_JOB_TYPE[data["job_type"]]
        body = {k: v for k, v in data.items() if k != "job_type"}
        publish(
            self.redis,
            make_event(event_type, body, source=SOURCE, subject=job_id, user_id=user_id),
            prefix=self.settings.redis_key_prefix,
        )
        log.warning(
            "job %s of user %s: no progress for %.0f s while %s; sent its request (%s) again",
            job_id,
            user_id,
            idle_s,
            status,
            event_type,
        )
        report.reemitted.append(job_id)

    @staticmethod
    def _request_of(job: Job) -> dict[str, Any]:
        """The request the gateway sent for this job, rebuilt from its row."""
        return {
            "job_type": job.job_type,
            "job_id": job.id,
            "user_id": job.user_id,
            "vton_id": job.vton_id,
            **(job.params or {}),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.reconcile", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run at start-up and then every SECONDS until stopped (default: one pass)",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    from shared.runtime import configure_logging

    configure_logging(settings.log_level)
    reconciler = Reconciler.from_settings(settings)
    if args.every is None:
        report = reconciler.run_once()
        log.info("one pass done: %s", report.as_dict())
        return 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set():
        try:
            reconciler.run_once()
        except Exception:
            log.warning("reconcile pass failed; trying again in %.0f s", args.every, exc_info=True)
        stop.wait(args.every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
