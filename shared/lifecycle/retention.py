"""The retention sweep: delete what is older than RETENTION_* allows.

Five kinds of data expire, each on its own clock (a RETENTION_* of 0 keeps that kind for ever):

- results (RETENTION_RESULTS_DAYS after their job finished): every sample's object goes, the
  job's `result_key`/`result_keys` and the try-on's `outfit_try_on` are cleared and the
  try-on is marked `result_expired_at`, so the history says "expired" instead of showing a
  broken image;
- results of /v1 runs with `return_base64` (BASE64_RESULT_TTL_S after their job finished):
  the same, much sooner: they are kept only while the status poll or the webhook (with its
  retries) delivers them (`run_base64` sweeps them alone, for a frequent schedule);
- uploads (RETENTION_UPLOADS_DAYS after the newest try-on that used them): the two photos
  go and the try-on is marked `inputs_expired_at` (a photo still used by a younger try-on
  stays until that one expires);
- cut-outs and masks (RETENTION_CUTOUTS_DAYS after tailor made them): the object and its
  `garment_assets` row go and the try-ons' `cleaned_outfit` / `person_mask` are cleared;
- orphans (RETENTION_ORPHANS_HOURS after upload): objects under `uploads/` that no try-on
  refers to.

Work is done in batches of RETENTION_BATCH_SIZE rows, one transaction each: objects first,
then the rows, so a failure leaves the rows for the next run. Every step is idempotent
(deleting a missing object is a no-op; rows are changed only while still unmarked), and on
PostgreSQL a batch takes its rows with FOR UPDATE SKIP LOCKED, so two sweeps running at
once share the work instead of repeating it. `clock` is injectable for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings
from shared.db.models import GarmentAsset, Job, TryOn
from shared.db.session import session_scope
from shared.storage.base import Storage

log = logging.getLogger("proteus.retention")

Clock = Callable[[], datetime]
UPLOADS_PREFIX = "uploads/"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of data is kept (None: for ever) and the batch size."""

    uploads: timedelta | None
    cutouts: timedelta | None
    results: timedelta | None
    orphans: timedelta | None
    batch_size: int = 500
    base64_results: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        def days(value: int) -> timedelta | None:
            return timedelta(days=value) if value > 0 else None

        return cls(
            uploads=days(settings.retention_uploads_days),
            cutouts=days(settings.retention_cutouts_days),
            results=days(settings.retention_results_days),
            orphans=timedelta(hours=settings.retention_orphans_hours) if settings.retention_orphans_hours > 0 else None,
            batch_size=settings.retention_batch_size,
            base64_results=timedelta(seconds=settings.base64_result_ttl_s),
        )


@dataclass
class SweepReport:
    """What one sweep removed (objects deleted, rows changed), per kind."""

    results: int = 0
    base64_results: int = 0
    uploads: int = 0
    cutouts: int = 0
    orphans: int = 0
    objects_deleted: int = 0
    kept_for_younger_tryons: int = 0
    batches: int = 0
    finished_at: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetentionSweep:
    """One sweep over the database and object storage (call `run()`)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: Storage,
        policy: RetentionPolicy,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.policy = policy
        self.clock = clock

    def run(self) -> SweepReport:
        """Sweep every kind once; returns what was removed."""
        report = SweepReport()
        now = self.clock()
        self._sweep_base64(now, report)
        if self.policy.results is not None:
            self._sweep_results(now - self.policy.results, report)
        if self.policy.uploads is not None:
            self._sweep_uploads(now - self.policy.uploads, report)
        if self.policy.cutouts is not None:
            self._sweep_cutouts(now - self.policy.cutouts, report)
        if self.policy.orphans is not None:
            self._sweep_orphans(now - self.policy.orphans, report)
        return self._done(report)

    def run_base64(self) -> SweepReport:
        """Sweep only the return_base64 results (cheap: meant to run every few minutes)."""
        report = SweepReport()
        self._sweep_base64(self.clock(), report)
        return self._done(report)

    def _done(self, report: SweepReport) -> SweepReport:
        report.finished_at = self.clock().isoformat()
        log.info("retention sweep done", extra={"fields": {"outcome": "ok", **report.to_dict()}})
        return report

    # -- the kinds ---------------------------------------------------------------------

    def _in_batches(self, batch: Callable[[Session], int]) -> None:
        """Run `batch` in one write transaction after another until it handles less than a full batch."""
        while True:
            with session_scope(self.sessions, write=True) as session:
                handled = batch(session)
            if handled < self.policy.batch_size:
                return

    def _locked(self, query: Any) -> Any:
        return query.limit(self.policy.batch_size).with_for_update(skip_locked=True)

    def _sweep_results(self, cutoff: datetime, report: SweepReport) -> None:
        self._expire_results(Job.finished_at < cutoff, report, "results")

    def _sweep_base64(self, now: datetime, report: SweepReport) -> None:
        if self.policy.base64_results is not None:
            base64 = Job.params[("api", "return_base64")].as_boolean().is_(True)
            self._expire_results(
                and_(Job.finished_at < now - self.policy.base64_results, base64), report, "base64_results"
            )

    def _expire_results(self, which: ColumnElement[bool], report: SweepReport, kind: str) -> None:
        """Delete the results of the finished jobs `which` selects, every sample, and mark their try-ons."""

        def batch(session: Session) -> int:
            jobs = session.scalars(
                self._locked(
                    select(Job)
                    .where(Job.result_key.is_not(None), Job.finished_at.is_not(None), which)
                    .order_by(Job.finished_at)
                )
            ).all()
            report.batches += 1
            now = self.clock()
            for job in jobs:
                keys = [key for key in dict.fromkeys([job.result_key, *(job.result_keys or [])]) if key]
                for key in keys:
                    self.storage.delete(key)
                report.objects_deleted += len(keys)
                job.result_key = None
                job.result_keys = None
                session.execute(
                    update(TryOn).where(TryOn.outfit_try_on.in_(keys)).values(outfit_try_on=None, result_expired_at=now)
                )
                setattr(report, kind, getattr(report, kind) + 1)
            return len(jobs)

        self._in_batches(batch)

    def _sweep_uploads(self, cutoff: datetime, report: SweepReport) -> None:
        def batch(session: Session) -> int:
            tryons = session.scalars(
                self._locked(
                    select(TryOn)
                    .where(TryOn.inputs_expired_at.is_(None), TryOn.created_at < cutoff)
                    .order_by(TryOn.created_at)
                )
            ).all()
            report.batches += 1
            for tryon in tryons:
                for key in {tryon.user_snap, tryon.uncleaned_outfit} - {""}:
                    if _used_by_younger_tryon(session, key, cutoff, tryon.id):
                        report.kept_for_younger_tryons += 1
                        continue
                    self.storage.delete(key)
                    report.objects_deleted += 1
                tryon.inputs_expired_at = self.clock()
                report.uploads += 1
            return len(tryons)

        self._in_batches(batch)

    def _sweep_cutouts(self, cutoff: datetime, report: SweepReport) -> None:
        def batch(session: Session) -> int:
            assets = session.scalars(
                self._locked(
                    select(GarmentAsset).where(GarmentAsset.created_at < cutoff).order_by(GarmentAsset.created_at)
                )
            ).all()
            report.batches += 1
            for asset in assets:
                self.storage.delete(asset.key)
                report.objects_deleted += 1
                session.execute(update(TryOn).where(TryOn.cleaned_outfit == asset.key).values(cleaned_outfit=None))
                session.execute(update(TryOn).where(TryOn.person_mask == asset.key).values(person_mask=None))
                session.delete(asset)
                report.cutouts += 1
            return len(assets)

        self._in_batches(batch)

    def _sweep_orphans(self, cutoff: datetime, report: SweepReport) -> None:
        """Uploads older than the cutoff that no try-on refers to (listing order, in batches)."""
        batch: list[str] = []
        for stored in self.storage.list_objects(UPLOADS_PREFIX):
            if stored.last_modified < cutoff:
                batch.append(stored.key)
            if len(batch) >= self.policy.batch_size:
                self._delete_unreferenced(batch, report)
                batch = []
        if batch:
            self._delete_unreferenced(batch, report)

    def _delete_unreferenced(self, keys: list[str], report: SweepReport) -> None:
        report.batches += 1
        with session_scope(self.sessions) as session:
            used = set(session.scalars(select(TryOn.user_snap).where(TryOn.user_snap.in_(keys))).all()) | set(
                session.scalars(select(TryOn.uncleaned_outfit).where(TryOn.uncleaned_outfit.in_(keys))).all()
            )
        for key in keys:
            if key not in used:
                self.storage.delete(key)
                report.objects_deleted += 1
                report.orphans += 1


def _used_by_younger_tryon(session: Session, key: str, cutoff: datetime, tryon_id: str) -> bool:
    """Whether a try-on made after `cutoff` (other than `tryon_id`) still uses the object."""
    query = (
        select(TryOn.id)
        .where(or_(TryOn.user_snap == key, TryOn.uncleaned_outfit == key))
        .where(TryOn.created_at >= cutoff, TryOn.id != tryon_id)
        .limit(1)
    )
    return session.scalars(query).first() is not None
