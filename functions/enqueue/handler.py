"""The enqueue function: a try-on request becomes a recorded job and a weave (or tailor) request.

It checks what a presigned PUT could not: that each object exists, belongs to the user,
and is an image within the size and pixel limits. A request that fails those checks ends
as a failed job the user is told about (a `weave.failed` event), never as a silent drop.
Redelivery is harmless: the job is keyed by its id, and a job already under way is not
sent on twice.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from shared import event_types as t
from shared import jobs
from shared.config import Settings
from shared.db.session import session_scope
from shared.errors import BadRequest, ClientError, LicenceRestricted, NotFound, PayloadTooLarge
from shared.images import probe_image
from shared.stage import Dependencies, Stage
from shared.tryon import (
    CATVTON_VARIANT_MODELS, DEFAULT_GUIDANCE, DEFAULT_HEIGHT, DEFAULT_STEPS, DEFAULT_WIDTH, FASHN_MODEL,
    model_defaults, resolve_model,
)
from shared.uploads import is_owned_key

log = logging.getLogger(__name__)
# The published CatVTON settings, used where a request leaves a value out.
WEAVE_DEFAULTS: dict[str, Any] = {
    "steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE, "height": DEFAULT_HEIGHT, "width": DEFAULT_WIDTH,
    "repaint": False,
}


def seed_for(job_id: str) -> int:
    """The seed of a job that asked for none: random per job, the same on every redelivery."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


class EnqueueFunction(Stage):
    """Validates the objects of a try-on, records the job and publishes the next step."""

    source = "/proteus/functions/enqueue"

    @classmethod
    def from_settings(cls, settings: Settings) -> EnqueueFunction:
        return cls(Dependencies.from_settings(settings))

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        data: dict[str, Any] = dict(event.get_data() or {})
        user_id = data["user_id"]
        with session_scope(self.sessions, write=True) as session:
            job, _created = jobs.get_or_create_job(
                session,
                user_id=user_id,
                vton_id=data["vton_id"],
                job_type="try_on",
                params={k: v for k, v in data.items() if k not in ("job_id", "user_id", "vton_id")},
                idempotency_key=data.get("idempotency_key"),
                job_id=data["job_id"],
            )
            job_id, status = job.id, job.status
        data["job_id"] = job_id
        if status != "queued":
            log.info("job %s is already %s; not sending it on again", job_id, status)
            return None
        try:
            for field in ("person_key", "garment_key", "mask_key"):
                if data.get(field):
                    self._check_object(user_id, field, data[field])
            step = self._next_step(data)
        except ClientError as exc:
            failure = {"job_id": job_id, "user_id": user_id, "vton_id": data["vton_id"], "error": exc.message,
                       "code": exc.code, "retryable": False}
            return self.publish(t.WEAVE_FAILED, failure)
        return self.publish(*step)

    def _check_object(self, user_id: str, field: str, key: str) -> None:
        """The object exists, is the user's, and is an image within the limits (header only)."""
        if not is_owned_key(user_id, key):
            raise NotFound(f"{field} {key!r} does not exist", field=field)
        info = self.storage.head(key)
        if info is None:
            raise NotFound(f"{field} {key!r} does not exist; upload it first", field=field)
        if info.size > self.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"{field} {key!r} is {info.size} bytes, over the limit of {self.settings.max_upload_bytes}",
                field=field,
            )
        if info.size == 0:
            raise BadRequest(f"{field} {key!r} is empty", field=field)
        probe_image(self.storage.get(key), max_pixels=self.settings.max_image_pixels, what=field)

    def _next_step(self, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """weave.requested, or tailor.requested first when the category or the mask must be found."""
        weave_data = {
            "job_id": data["job_id"],
            "user_id": data["user_id"],
            "vton_id": data["vton_id"],
            "person_key": data["person_key"],
            "garment_key": data["garment_key"],
            "category": data.get("category") or "upper",
        }
        model = resolve_model(data.get("model"), data.get("variant"), bool(data.get("mask_key")),
                              self.settings.weave_default_model)
        for name, default in {**WEAVE_DEFAULTS, **model_defaults(model)}.items():
            weave_data[name] = data[name] if data.get(name) is not None else default
        weave_data["seed"] = data["seed"] if data.get("seed") is not None else seed_for(data["job_id"])
        weave_data["model"] = model
        if model == FASHN_MODEL:
            weave_data["variant"] = data.get("variant") or self.settings.weave_variant  # unused by FASHN
            weave_data["garment_photo_type"] = data.get("garment_photo_type") or "auto"
            weave_data["segmentation_free"] = data.get("segmentation_free", True)
        else:
            weave_data["variant"] = next(v for v, n in CATVTON_VARIANT_MODELS.items() if n == model)
        if data.get("mask_key"):
            weave_data["mask_key"] = data["mask_key"]
        needs_mask = weave_data.get("variant") == "mask" and model != FASHN_MODEL and not data.get("mask_key")
        # tailor decides "auto" categories, and whether a FASHN garment photo is worn or a product shot.
        needs_photo_type = weave_data.get("garment_photo_type") == "auto" and not self.settings.commercial
        if self.settings.commercial and weave_data["category"] == "auto":
            raise LicenceRestricted("category 'auto' needs tailor's garment parser (non-commercial licence), which "
                                    "this commercial deployment does not run; send upper, lower or overall",
                                    field="category")
        if weave_data["category"] == "auto" or needs_mask or needs_photo_type:
            tailor_data = {
                "job_id": data["job_id"],
                "user_id": data["user_id"],
                "vton_id": data["vton_id"],
                "garment_key": data["garment_key"],
                "category": data.get("category") or "auto",
                "then_weave": weave_data,
            }
            if needs_mask:
                tailor_data["person_key"] = data["person_key"]
            return t.TAILOR_REQUESTED, tailor_data
        return t.WEAVE_REQUESTED, weave_data
