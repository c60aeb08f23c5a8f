"""How the API shows rows: jobs, try-ons and timestamps as the original frontend reads them."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.orm import Session

from shared.db.models import Job, TryOn
from shared.timestamps import iso

__all__ = ["iso", "job_to_dict", "tryon_progress", "tryon_to_dict"]


def job_to_dict(job: Job) -> dict[str, Any]:
    """A job as the API and the notifications show it."""
    return {
        "id": job.id,
        "jobId": job.id,
        "job_id": job.id,
        "vton_id": job.vton_id,
        "job_type": job.job_type,
        "status": job.status,
        "step": job.step,
        "steps": job.steps,
        "error": job.error,
        "result_key": job.result_key,
        "result_keys": job.result_keys or ([job.result_key] if job.result_key else []),
        "seed": job.seed,
        "model": job.model,
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "finished_at": iso(job.finished_at),
    }


def tryon_progress(tryon: TryOn | Row[Any]) -> float | None:
    """0..1, or None before any progress is known."""
    if tryon.progress_steps:
        return max(0.0, min(1.0, (tryon.progress_step or 0) / tryon.progress_steps))
    return 1.0 if tryon.status == "done" else None


def last_runs(session: Session, vton_ids: list[str]) -> dict[str, Any]:
    """The newest try-on job of each of these try-ons (what made the result the history shows):
    plain rows of (vton_id, model, seed, params, result_keys), one query for the whole page."""
    if not vton_ids:
        return {}
    rows = session.connection().execute(_last_runs_query(), {"vton_ids": vton_ids})
    return {row.vton_id: row for row in rows}


@cache
def _last_runs_query() -> Select[Any]:
    """last_runs' statement, built once (`vton_ids` bound at execution), run as Core."""
    return (
        select(Job.vton_id, Job.model, Job.seed, Job.params, Job.result_keys)
        .where(Job.vton_id.in_(bindparam("vton_ids", expanding=True)), Job.job_type == "try_on")
        .order_by(Job.created_at.asc(), Job.id.asc())
    )


def samples(tryon: TryOn | Row[Any], run: Any = None) -> list[str]:
    """Every sample of the result the try-on shows (outfit_try_on first): its newest job's
    result_keys when that job made the result, else the one result (or none)."""
    if not tryon.outfit_try_on:
        return []
    keys = list(getattr(run, "result_keys", None) or [])
    return keys if keys and keys[0] == tryon.outfit_try_on else [tryon.outfit_try_on]


def tryon_to_dict(tryon: TryOn | Row[Any], run: Any = None) -> dict[str, Any]:
    """A try-on as the API shows it (keys the original frontend reads); with its newest job,
    the model and seed that made it and every sample it made."""
    asked = (run.params or {}) if run is not None else {}
    return {
        "id": tryon.id,
        "user_id": tryon.user_id,
        "user_snap": tryon.user_snap,
        "uncleaned_outfit": tryon.uncleaned_outfit,
        "cleaned_outfit": tryon.cleaned_outfit,
        "outfit_try_on": tryon.outfit_try_on,
        "person_mask": tryon.person_mask,
        "category": tryon.category,
        "category_requested": tryon.category_requested,
        "status": tryon.status,
        "error": tryon.error,
        "progress": tryon_progress(tryon),
        "progress_step": tryon.progress_step,
        "progress_steps": tryon.progress_steps,
        "result_expired_at": iso(tryon.result_expired_at),
        "inputs_expired_at": iso(tryon.inputs_expired_at),
        "model": run.model if run is not None and run.model else asked.get("model"),
        "seed": run.seed if run is not None and run.seed is not None else asked.get("seed"),
        "result_keys": samples(tryon, run),
        "createdAt": iso(tryon.created_at),
        "updatedAt": iso(tryon.updated_at),
    }
