"""The statements of shared.jobs' transitions (guarded UPDATEs) and lookups, built once.

Each transition changes a job only while it is active (`status IN ('queued', 'running')`)
and gives the changed row back (`RETURNING`), then updates its try-on. Built per call with
the ORM, one transition took ~0.8 ms of Python on this project's 2-core machine (statement
construction, its cache key, the ORM's bulk-update machinery) against ~0.25 ms as these
Core statements, built once with bound parameters and run in the caller's session; a job
makes three such transitions on its way (weave starts it, notify finishes it, progress).

Parameters: `job_id` (job statements), `vton_id` (try-on statements), `now` (both: the
rows' `updated_at`), and the `new_*` values each statement names below. The UPDATEs run
on the driver's cursor (shared.db.hot_writes).
"""

from __future__ import annotations

from functools import cache
from typing import cast

from sqlalchemy import BindParameter, ColumnElement, Select, Table, Update, bindparam, func, or_, select, update

from shared.db.models import Job, TryOn

ACTIVE = ("queued", "running")
JOBS = cast(Table, Job.__table__)
TRYONS = cast(Table, TryOn.__table__)


def value(name: str, column: ColumnElement[object]) -> BindParameter[object]:
    """A parameter bound with the column's type (its bind processing: UTC times, JSON)."""
    return bindparam(name, type_=column.type)


def one_of(column: ColumnElement[str], values: tuple[str, ...]) -> ColumnElement[bool]:
    """`column IN values`, written as `=`s: SQLAlchemy expands an IN's list at execution,
    which keeps a statement off shared.db.hot_writes' driver path."""
    return or_(*(column == v for v in values))


def job_update(*conditions: ColumnElement[bool]) -> Update:
    """UPDATE the job `job_id` while it is active (and `conditions` hold), RETURNING its row;
    `updated_at` is bound (`now`), not left to the column's Python-side onupdate."""
    return (
        update(JOBS)
        .where(JOBS.c.id == bindparam("job_id"), one_of(JOBS.c.status, ACTIVE), *conditions)
        .values(updated_at=value("now", JOBS.c.updated_at))
        .returning(*JOBS.c)
    )


def tryon_update(*conditions: ColumnElement[bool]) -> Update:
    """UPDATE the try-on `vton_id` (where `conditions` hold), `updated_at` bound (`now`)."""
    return (
        update(TRYONS)
        .where(TRYONS.c.id == bindparam("vton_id"), *conditions)
        .values(updated_at=value("now", TRYONS.c.updated_at))
    )


@cache
def status() -> Select[tuple[str, str]]:
    """The owner and status of the job `job_id`."""
    return select(JOBS.c.user_id, JOBS.c.status).where(JOBS.c.id == bindparam("job_id"))


@cache
def mark_running() -> tuple[Update, Update]:
    return (
        job_update().values(status="running", attempts=JOBS.c.attempts + 1),
        tryon_update(TRYONS.c.status == "queued").values(status="processing"),
    )


@cache
def record_progress() -> tuple[Update, Update]:
    """`new_step` of `new_steps`, only ahead of what the job has."""
    step, steps = value("new_step", JOBS.c.step), value("new_steps", JOBS.c.steps)
    return (
        job_update(or_(JOBS.c.step < step, JOBS.c.steps.is_(None))).values(status="running", step=step, steps=steps),
        tryon_update(one_of(TRYONS.c.status, ("queued", "processing"))).values(
            status="processing",
            progress_step=value("new_step", TRYONS.c.progress_step),
            progress_steps=value("new_steps", TRYONS.c.progress_steps),
        ),
    )


@cache
def complete() -> Update:
    """Succeeded with `new_result_key` (and `new_result_keys`, `new_seed`, `new_model`,
    `new_finished_at`); its steps all done."""
    steps = func.coalesce(JOBS.c.steps, 1)
    return job_update().values(
        status="succeeded",
        result_key=value("new_result_key", JOBS.c.result_key),
        result_keys=value("new_result_keys", JOBS.c.result_keys),
        seed=value("new_seed", JOBS.c.seed),
        model=value("new_model", JOBS.c.model),
        error=None,
        finished_at=value("new_finished_at", JOBS.c.finished_at),
        step=steps,
        steps=steps,
    )


@cache
def complete_tryon(result_column: str) -> Update:
    """The try-on done with its result `new_result_key` in `result_column` (outfit_try_on,
    or a tailor job's cleaned_outfit) and progress `new_steps` of `new_steps`."""
    return tryon_update().values(
        {
            TRYONS.c[result_column]: value("new_result_key", TRYONS.c[result_column]),
            TRYONS.c.status: "done",
            TRYONS.c.error: None,
            TRYONS.c.progress_step: value("new_steps", TRYONS.c.progress_step),
            TRYONS.c.progress_steps: value("new_steps", TRYONS.c.progress_steps),
        }
    )


@cache
def end(status: str) -> tuple[Update, Update]:
    """The job ended as `status` (failed, canceled) with `new_error`, `new_error_code` and
    `new_finished_at`; its try-on failed with the same error unless it is done already."""
    return (
        job_update().values(
            status=status,
            error=value("new_error", JOBS.c.error),
            error_code=value("new_error_code", JOBS.c.error_code),
            finished_at=value("new_finished_at", JOBS.c.finished_at),
        ),
        tryon_update(TRYONS.c.status != "done").values(status="failed", error=value("new_error", TRYONS.c.error)),
    )
