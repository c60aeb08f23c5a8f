"""A public-API job as FASHN's status body: the one answer of GET /v1/status/{id}, and the
body POSTed to webhooks (gateway and the webhooks function build it the same way here).

A job is a prediction when its params carry `api` (what /v1/run stored: model name,
output format, return_base64, webhook URL).
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import Row

from shared.config import Settings
from shared.db.models import Job
from shared.storage.base import Storage
from shared.timestamps import iso

STATUS_OF_JOB = {
    "queued": "in_queue",
    "running": "processing",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "canceled",
}
# A failure's ProteusError code -> FASHN's runtime error name.
ERROR_NAMES = {
    "invalid_image": "ImageLoadError",
    "image_too_large": "ImageLoadError",
    "too_large": "ImageLoadError",
    "not_found": "ImageLoadError",
    "unsupported_media_type": "ImageLoadError",
    "fetch_failed": "ImageLoadError",
    "flagged_by_safety_checker": "ContentModerationError",
    "bad_request": "InputValidationError",
    "dependency_unavailable": "InternalServerError",
    "internal_error": "InternalServerError",
}
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def is_prediction(job: Job | Row[Any]) -> bool:
    return isinstance(job.params, dict) and isinstance(job.params.get("api"), dict)


def api_params(job: Job | Row[Any]) -> dict[str, Any]:
    return dict(job.params.get("api") or {}) if isinstance(job.params, dict) else {}


def output_keys(job: Job) -> list[str]:
    if job.result_keys:
        return list(job.result_keys)
    return [job.result_key] if job.result_key else []


def status_body(job: Job, storage: Storage, settings: Settings) -> dict[str, Any]:
    """{id, status, output, error, ...} as FASHN answers it (plus model_name, created_at, seeds)."""
    api = api_params(job)
    body: dict[str, Any] = {
        "id": job.id,
        "status": STATUS_OF_JOB[job.status],
        "output": None,
        "error": None,
        "model_name": api.get("model_name"),
        "created_at": iso(job.created_at),
        "seeds": None,
    }
    if job.status == "succeeded":
        keys = output_keys(job)
        if api.get("return_base64"):
            media_type = MEDIA_TYPES.get(str(api.get("output_format")), "image/png")
            body["output"] = [
                f"data:{media_type};base64,{base64.b64encode(storage.get(k)).decode('ascii')}" for k in keys
            ]
        else:
            body["output"] = [storage.presign_download(k, expires_s=settings.download_url_ttl_s) for k in keys]
        if job.seed is not None:
            body["seeds"] = [job.seed + i for i in range(len(keys))]
    elif job.status == "failed":
        body["error"] = {
            "name": ERROR_NAMES.get(job.error_code or "", "PipelineError"),
            "message": job.error or "the run failed",
        }
    return body
