"""Job and try-on state transitions, shared by the gateway, enqueue, weave and notify.

Every transition is safe to repeat, because events are redelivered: each is one guarded
UPDATE (`... WHERE status IN ('queued', 'running')`), so of two concurrent calls only one
changes the row, and a finished job (succeeded or failed) never changes again. Functions
work inside the caller's transaction (`session_scope`) and do not commit; called first in
it, they begin it as a writer (`begin_write`), which SQLite needs under concurrency.

Job:    queued -> running -> succeeded | failed; queued | running -> canceled (its owner, /v1/cancel)
TryOn:  queued -> processing -> done | failed
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from shared.db.models import JOB_TYPES, Job, TryOn, utcnow
from shared.db.session import begin_write
from shared.errors import BadRequest, Conflict

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
MAX_ERROR_CHARS = 2000


def get_or_create_job(
    session: Session,
    *,
    user_id: str,
    vton_id: str,
    job_type: str,
    params: dict[str, Any],
    idempotency_key: str | None = None,
    job_id: str | None = None,
) -> tuple[Job, bool]:
    """The user's job for `idempotency_key` (or `job_id`), created if there is none.

    Returns (job, created). Two racing callers with the same key get the same job: the
    loser's INSERT hits the unique constraint, rolls back to its savepoint and re-reads.
    """
    if job_type not in JOB_TYPES:
        raise BadRequest(f"job_type must be one of {', '.join(JOB_TYPES)}, got {job_type!r}", field="job_type")
    if not isinstance(params, dict):
        raise BadRequest(f"params must be a JSON object, got {type(params).__name__}", field="params")
    begin_write(session)
    existing = _find_job(session, user_id, idempotency_key, job_id)
    if existing is not None:
        return existing, False
    job = Job(
        id=job_id,  # None: a fresh uuid
        user_id=user_id,
        vton_id=vton_id,
        job_type=job_type,
        params=params,
        idempotency_key=idempotency_key,
        status="queued",
        step=0,
        attempts=0,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        existing = _find_job(session, user_id, idempotency_key, job_id)
        if existing is None:
            raise  # not a duplicate: e.g. the user or try-on does not exist
        return existing, False
    return job, True


def _find_job(session: Session, user_id: str, idempotency_key: str | None, job_id: str | None) -> Job | None:
    job: Job | None = None
    if idempotency_key is not None:
        job = session.scalars(
            select(Job)
            .where(Job.user_id == user_id, Job.idempotency_key == idempotency_key)
            .execution_options(populate_existing=True)
        ).one_or_none()
    if job is None and job_id is not None:
        job = session.get(Job, job_id, populate_existing=True)
    if job is not None and job.user_id != user_id:
        raise Conflict(f"job {job.id} belongs to another user", field="job_id")
    return job


def mark_running(session: Session, job_id: str) -> bool:
    """Count an attempt and mark the job running; False if it is finished or unknown.

    True on every call while the job is not finished, so a redelivered request is worked on.
    """
    changed = _guarded_update(session, job_id, status="running", attempts=Job.attempts + 1)
    if changed is None:
        return False
    _update_tryon(session, changed, TryOn.status == "queued", status="processing")
    return True


def record_progress(session: Session, job_id: str, step: int, steps: int) -> bool:
    """Record step `step` of `steps`; False (nothing changed) if it is not ahead or the job is done."""
    if isinstance(step, bool) or isinstance(steps, bool) or not isinstance(step, int) or not isinstance(steps, int):
        raise BadRequest(f"step and steps must be integers, got {step!r} and {steps!r}", field="step")
    if steps < 1 or not 0 <= step <= steps:
        raise BadRequest(f"progress {step}/{steps} is not 0 <= step <= steps, steps >= 1", field="step")
    ahead = or_(Job.step < step, Job.steps.is_(None))
    changed = _guarded_update(session, job_id, ahead, status="running", step=step, steps=steps)
    if changed is None:
        return False
    if changed.job_type == "try_on":
        _update_tryon(
            session,
            changed,
            TryOn.status.in_(("queued", "processing")),
            status="processing",
            progress_step=step,
            progress_steps=steps,
        )
    return True


def complete_job(
    session: Session,
    job_id: str,
    *,
    result_key: str,
    seed: int | None = None,
    model: str | None = None,
    result_keys: list[str] | None = None,
) -> Job | None:
    """Mark the job succeeded and its try-on done; the changed job (fresh from the UPDATE) only
    for the call that did it, else None.

    A try_on job's result is the try-on's `outfit_try_on`; a tailor job's its `cleaned_outfit`.
    """
    if not isinstance(result_key, str) or not result_key:
        raise BadRequest(f"result_key must be a non-empty storage key, got {result_key!r}", field="result_key")
    changed = _guarded_update(
        session,
        job_id,
        status="succeeded",
        result_key=result_key,
        result_keys=result_keys if result_keys and len(result_keys) > 1 else None,
        seed=seed,
        model=model,
        error=None,
        finished_at=utcnow(),
        step=func.coalesce(Job.steps, 1),
        steps=func.coalesce(Job.steps, 1),
    )
    if changed is None:
        return None
    steps = changed.steps or 1
    result_column = "cleaned_outfit" if changed.job_type == "tailor" else "outfit_try_on"
    _update_tryon(
        session,
        changed,
        None,
        status="done",
        error=None,
        progress_step=steps,
        progress_steps=steps,
        **{result_column: result_key},
    )
    return changed


def fail_job(session: Session, job_id: str, *, error: str, code: str | None = None) -> Job | None:
    """Mark the job failed with `error` (and its error `code`); the changed job only for the call
    that did it, else None.

    Its try-on becomes failed too, unless another job of it already made it done.
    """
    message = (str(error) or "failed")[:MAX_ERROR_CHARS]
    changed = _guarded_update(session, job_id, status="failed", error=message, error_code=code, finished_at=utcnow())
    if changed is None:
        return None
    _update_tryon(session, changed, TryOn.status != "done", status="failed", error=message)
    return changed


CANCELED_MESSAGE = "canceled by its owner"
# A Redis flag per canceled job (+ job id), set by POST /v1/cancel: weave stops rendering the
# job at its next denoising step and stores nothing.
CANCEL_FLAG = "proteus:canceled:"


def cancel_job(session: Session, job_id: str) -> bool:
    """Mark a queued or running job canceled (its try-on failed: canceled); True if this call did it."""
    changed = _guarded_update(
        session, job_id, status="canceled", error=CANCELED_MESSAGE, error_code="canceled", finished_at=utcnow()
    )
    if changed is None:
        return False
    _update_tryon(session, changed, TryOn.status != "done", status="failed", error=CANCELED_MESSAGE)
    return True


def record_tailor_assets(
    session: Session,
    vton_id: str,
    *,
    cutout_key: str | None = None,
    mask_key: str | None = None,
    category: str | None = None,
) -> bool:
    """Note tailor outputs on a try-on: the garment cutout, the person mask, the found category.

    Values left None are kept; False if there is no such try-on.
    """
    values: dict[str, Any] = {
        name: value
        for name, value in (("cleaned_outfit", cutout_key), ("person_mask", mask_key), ("category", category))
        if value
    }
    begin_write(session)
    tryon = session.get(TryOn, vton_id)
    if tryon is None:
        log.warning("tailor assets for unknown try-on %s", vton_id)
        return False
    for name, value in values.items():
        setattr(tryon, name, value)
    session.flush()
    return True


def _guarded_update(session: Session, job_id: str, *conditions: Any, **values: Any) -> Job | None:
    """UPDATE the job if it is still active (and `conditions` hold); the fresh row or None.

    One statement: the changed row comes back with UPDATE ... RETURNING (SQLite >= 3.35,
    PostgreSQL) and replaces any copy the session holds.
    """
    begin_write(session)
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE), *conditions)
        .values(**values)
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return session.scalars(statement).one_or_none()


def _update_tryon(session: Session, job: Job, condition: Any, **values: Any) -> None:
    statement = update(TryOn).where(TryOn.id == job.vton_id)
    if condition is not None:
        statement = statement.where(condition)
    session.execute(statement.values(**values).execution_options(synchronize_session=False))
    loaded = session.identity_map.get(identity_key(TryOn, job.vton_id))
    if loaded is not None:
        session.expire(loaded)  # the caller's copy is stale now
