"""The enqueue function: a try-on request becomes a recorded job and a weave (or tailor) request.

It checks what a presigned PUT could not: that each object exists, belongs to the user,
and is an image within the size and pixel limits. A request that fails those checks ends
as a failed job the user is told about (a `weave.failed` event), never as a silent drop.
Redelivery is harmless: the job is keyed by its id, and a job already under way is not
sent on twice.
"""

from __future__ import annotations

import logging
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from shared import event_types as t
from shared import jobs
from shared.config import Settings
from shared.contracts.events import (
    StageFailed,
    TailorRequested,
    ThenWeave,
    TryonRequested,
    WeaveFailed,
    WeaveRequested,
)
from shared.contracts.tryon import FASHN_MODEL
from shared.db.session import session_scope
from shared.errors import (
    BadRequest,
    ClientError,
    InvalidImage,
    LicenceRestricted,
    NotFound,
    PayloadTooLarge,
)
from shared.images import HEADER_BYTES, probe_image
from shared.stage import Dependencies, Stage
from shared.uploads import is_owned_key

log = logging.getLogger(__name__)


class EnqueueFunction(Stage):
    """Validates the objects of a try-on, records the job and publishes the next step."""

    source = "/proteus/functions/enqueue"

    @classmethod
    def from_settings(cls, settings: Settings) -> EnqueueFunction:
        return cls(Dependencies.from_settings(settings))

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        request = TryonRequested.parse(event.get_data())
        job_id, status = self._record(request)
        if status != "queued":
            log.info("job %s is already %s; not sending it on again", job_id, status)
            return None
        request = request.model_copy(update={"job_id": job_id})
        try:
            for field in ("person_key", "garment_key", "mask_key"):
                if getattr(request, field):
                    self._check_object(request.user_id, field, getattr(request, field))
            step = self._next_step(request)
        except ClientError as exc:
            failure = WeaveFailed(
                job_id=job_id, user_id=request.user_id, vton_id=request.vton_id, **StageFailed.fields_of(exc)
            )
            return self.publish(t.WEAVE_FAILED, failure.to_data())
        return self.publish(*step)

    def _record(self, request: TryonRequested) -> tuple[str, str]:
        """(id, status) of the request's job: the one the gateway recorded (a plain read), else
        recorded now (a producer that publishes without one; redelivery finds it)."""
        with self.deps.engine.connect() as connection:
            status = jobs.job_status(connection, request.job_id, request.user_id)
        if status is not None:
            return request.job_id, status
        with session_scope(self.sessions, write=True) as session:
            job, _created = jobs.get_or_create_job(
                session,
                user_id=request.user_id,
                vton_id=request.vton_id,
                job_type="try_on",
                params=request.model_dump(mode="json", exclude_none=True, exclude={"job_id", "user_id", "vton_id"}),
                idempotency_key=request.idempotency_key,
                job_id=request.job_id,
            )
            return job.id, job.status

    def _check_object(self, user_id: str, field: str, key: str) -> None:
        """The object exists, is the user's, and is an image within the limits, judged by its
        header. Only its first HEADER_BYTES are read (one ranged GET on S3), all of it only
        when the header runs past them (a long metadata block first, a HEIF index at the end)."""
        if not is_owned_key(user_id, key):
            raise NotFound(f"{field} {key!r} does not exist", field=field)
        try:
            size, start = self.storage.read_start(key, HEADER_BYTES)
        except NotFound:
            raise NotFound(f"{field} {key!r} does not exist; upload it first", field=field) from None
        self._check_size(field, key, size)
        try:
            probe_image(start, max_pixels=self.settings.max_image_pixels, what=field)
        except InvalidImage:
            if len(start) >= size:
                raise
            self._check_whole(field, key)

    def _check_whole(self, field: str, key: str) -> None:
        size, data = self.storage.read_within(key, self.settings.max_upload_bytes)
        self._check_size(field, key, size)
        probe_image(data or b"", max_pixels=self.settings.max_image_pixels, what=field)

    def _check_size(self, field: str, key: str, size: int) -> None:
        if size > self.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"{field} {key!r} is {size} bytes, over the limit of {self.settings.max_upload_bytes}",
                field=field,
            )
        if size == 0:
            raise BadRequest(f"{field} {key!r} is empty", field=field)

    def _next_step(self, request: TryonRequested) -> tuple[str, dict[str, Any]]:
        """weave.requested, or tailor.requested first when the category, the mask or (FASHN) the
        garment photo's type must be found. Every default is applied here, once."""
        weave = request.resolved_fields(
            default_model=self.settings.weave_default_model, configured_variant=self.settings.weave_variant
        )
        needs_mask = weave["variant"] == "mask" and weave["model"] != FASHN_MODEL and not request.mask_key
        # tailor decides "auto" categories, and whether a FASHN garment photo is worn or a product shot.
        needs_photo_type = weave.get("garment_photo_type") == "auto" and not self.settings.commercial
        if self.settings.commercial and request.category == "auto":
            raise LicenceRestricted(
                "category 'auto' needs tailor's garment parser (non-commercial licence), which "
                "this commercial deployment does not run; send upper, lower or overall",
                field="category",
            )
        if request.category == "auto" or needs_mask or needs_photo_type:
            tailor = TailorRequested(
                job_id=request.job_id,
                user_id=request.user_id,
                vton_id=request.vton_id,
                garment_key=request.garment_key,
                category=request.category,
                person_key=request.person_key if needs_mask else None,
                then_weave=ThenWeave.model_validate(weave),
            )
            return t.TAILOR_REQUESTED, tailor.to_data()
        return t.WEAVE_REQUESTED, WeaveRequested.model_validate(weave).to_data()
