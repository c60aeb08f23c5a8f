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

from sqlalchemy import Connection, Update, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from shared import job_statements as statements
from shared.db import hot_writes
from shared.db.hot_reads import fetch_all
from shared.db.models import JOB_TYPES, Job, TryOn, utcnow
from shared.db.session import begin_write
from shared.errors import BadRequest, Conflict

log = logging.getLogger(__name__)

ACTIVE = statements.ACTIVE
#: A job's columns as a transition's UPDATE ... RETURNING gave them back, read by name
#: (`row.status`): a named tuple (shared.db.hot_writes), or SQLAlchemy's Row where it ran the statement.
JobRow = Any
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
    if job is not None:
        _check_owner(job.id, job.user_id, user_id)
    return job


def job_status(connection: Connection, job_id: str, user_id: str) -> str | None:
    """The status of the user's job `job_id`, or None when there is none (one SELECT built
    once, on the driver's cursor outside a transaction: what enqueue asks of a job the gateway
    recorded); Conflict if it is another user's."""
    rows = fetch_all(connection, statements.status(), {"job_id": job_id})
    if not rows:
        return None
    _check_owner(job_id, rows[0].user_id, user_id)
    return str(rows[0].status)


def _check_owner(job_id: str, owner: str, user_id: str) -> None:
    if owner != user_id:
        raise Conflict(f"job {job_id} belongs to another user", field="job_id")


def mark_running(session: Session, job_id: str) -> bool:
    """Count an attempt and mark the job running; False if it is finished or unknown.

    True on every call while the job is not finished, so a redelivered request is worked on.
    """
    job, tryon = statements.mark_running()
    changed = _guarded_update(session, job, job_id)
    if changed is None:
        return False
    _update_tryon(session, tryon, changed)
    return True


def record_progress(session: Session, job_id: str, step: int, steps: int) -> bool:
    """Record step `step` of `steps`; False (nothing changed) if it is not ahead or the job is done."""
    if isinstance(step, bool) or isinstance(steps, bool) or not isinstance(step, int) or not isinstance(steps, int):
        raise BadRequest(f"step and steps must be integers, got {step!r} and {steps!r}", field="step")
    if steps < 1 or not 0 <= step <= steps:
        raise BadRequest(f"progress {step}/{steps} is not 0 <= step <= steps, steps >= 1", field="step")
    job, tryon = statements.record_progress()
    changed = _guarded_update(session, job, job_id, new_step=step, new_steps=steps)
    if changed is None:
        return False
    if changed.job_type == "try_on":
        _update_tryon(session, tryon, changed, new_step=step, new_steps=steps)
    return True


def complete_job(
    session: Session,
    job_id: str,
    *,
    result_key: str,
    seed: int | None = None,
    model: str | None = None,
    result_keys: list[str] | None = None,
) -> JobRow | None:
    """Mark the job succeeded and its try-on done; the changed job (its row as the UPDATE left
    it) only for the call that did it, else None.

    A try_on job's result is the try-on's `outfit_try_on`; a tailor job's its `cleaned_outfit`.
    """
    if not isinstance(result_key, str) or not result_key:
        raise BadRequest(f"result_key must be a non-empty storage key, got {result_key!r}", field="result_key")
    changed = _guarded_update(
        session,
        statements.complete(),
        job_id,
        new_result_key=result_key,
        new_result_keys=result_keys if result_keys and len(result_keys) > 1 else None,
        new_seed=seed,
        new_model=model,
        new_finished_at=utcnow(),
    )
    if changed is None:
        return None
    tryon = statements.complete_tryon("cleaned_outfit" if changed.job_type == "tailor" else "outfit_try_on")
    _update_tryon(session, tryon, changed, new_result_key=result_key, new_steps=changed.steps or 1)
    return changed


def fail_job(session: Session, job_id: str, *, error: str, code: str | None = None) -> JobRow | None:
    """Mark the job failed with `error` (and its error `code`); the changed job only for the call
    that did it, else None.

    Its try-on becomes failed too, unless another job of it already made it done.
    """
    return _end(session, job_id, "failed", (str(error) or "failed")[:MAX_ERROR_CHARS], code)


CANCELED_MESSAGE = "canceled by its owner"
# A Redis flag per canceled job (+ job id), set by POST /v1/cancel: weave stops rendering the
# job at its next denoising step and stores nothing.
CANCEL_FLAG = "proteus:canceled:"


def cancel_job(session: Session, job_id: str) -> bool:
    """Mark a queued or running job canceled (its try-on failed: canceled); True if this call did it."""
    return _end(session, job_id, "canceled", CANCELED_MESSAGE, "canceled") is not None


def _end(session: Session, job_id: str, status: str, error: str, code: str | None) -> JobRow | None:
    job, tryon = statements.end(status)
    values = {"new_error": error, "new_error_code": code, "new_finished_at": utcnow()}
    changed = _guarded_update(session, job, job_id, **values)
    if changed is not None:
        _update_tryon(session, tryon, changed, new_error=error)
    return changed


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


def _guarded_update(session: Session, statement: Update, job_id: str, **values: Any) -> JobRow | None:
    """Run one of shared.job_statements' guarded job UPDATEs; the changed row, or None when the
    job is finished (or unknown).

    One statement: the changed row comes back with UPDATE ... RETURNING (SQLite >= 3.35,
    PostgreSQL). A copy of the job the session holds is expired (reloaded when next read).
    """
    begin_write(session)
    session.flush()  # a Core statement does not flush the session's pending changes itself
    changed = hot_writes.execute(session.connection(), statement, {"job_id": job_id, "now": utcnow(), **values})
    row = changed.one_or_none()
    if row is not None:
        _expire(session, Job, job_id)
    return row


def _update_tryon(session: Session, statement: Update, job: JobRow, **values: Any) -> None:
    hot_writes.execute(session.connection(), statement, {"vton_id": job.vton_id, "now": utcnow(), **values})
    _expire(session, TryOn, job.vton_id)


def _expire(session: Session, model: type[Job] | type[TryOn], row_id: str) -> None:
    loaded = session.identity_map.get(identity_key(model, row_id))
    if loaded is not None:
        session.expire(loaded)  # the caller's copy is stale now
