"""The data of every Proteus CloudEvent, one model per type (`EVENT_MODELS`).

cloudevents-schemas/<type>.json is generated from these (`make schemas`); events are
validated against those files on publish and on receipt (shared.events.validate_event),
and a stage reads its event as the typed model: `WeaveRequested.parse(event_data(event))`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shared import event_types as t
from shared.contracts.base import Contract
from shared.contracts.examples import EXAMPLES
from shared.contracts.fields import (
    Category,
    CategoryOrAuto,
    Code,
    Id,
    IdempotencyKey,
    Key,
    Message,
)
from shared.contracts.tryon import (
    CATVTON_VARIANT_MODELS,
    DEFAULT_HEIGHT,
    DEFAULT_REPAINT,
    DEFAULT_WIDTH,
    FASHN_MODEL,
    GarmentPhotoType,
    Guidance,
    Height,
    NumSamples,
    OutputFormat,
    Repaint,
    Seed,
    SegmentationFree,
    Steps,
    TryOnModel,
    Variant,
    Width,
    default_seed,
    model_defaults,
    resolve_model,
)
from shared.errors import ProteusError

JOB_ID: Final = "The job (table jobs) this event belongs to; also the event's subject."
USER_ID: Final = "The owner; equals the event's userid extension."
VTON_ID: Final = "The try-on record (table vtons)."
PERSON_KEY: Final = "Storage key of the person photo."
GARMENT_KEY: Final = "Storage key of the garment photo (or tailor's cut-out)."
MASK_KEY: Final = "Storage key of a mask of the area to repaint (variant 'mask')."
Model = Annotated[str, Field(min_length=1, max_length=200)]
Step = Annotated[int, Field(ge=0, le=1000)]
StepCount = Annotated[int, Field(ge=1, le=1000)]


class EventData(Contract):
    """The data of one event type (`event_type`), documented by `description`."""

    event_type: ClassVar[str]
    description: ClassVar[str]


class JobEvent(EventData):
    job_id: Id = Field(description=JOB_ID)
    user_id: Id = Field(description=USER_ID)


class UploadRequested(EventData):
    event_type = t.UPLOAD_REQUESTED
    description = "Ask upload_signing for a pre-signed upload (answered synchronously with upload.signed)."

    user_id: Id = Field(description="Who uploads; equals the userid extension.")
    file_name: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f\x7f/\\]+$",
        description=(
            "The client's file name (no path separators or control characters); the key uses a sanitised copy."
        ),
    )
    content_type: str = Field(
        pattern=r"^image/[a-z0-9][a-z0-9.+-]{0,63}$",
        description=("The image's media type; upload_signing checks it against IMAGE_CONTENT_TYPES."),
    )
    size: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, description=("Size in bytes, when known (checked against MAX_UPLOAD_BYTES).")
    )
    method: Literal["PUT", "POST"] | SkipJsonSchema[None] = Field(
        default=None,
        description=("PUT the bytes, or POST a multipart form; left out: POST when size is given, else PUT."),
    )


class UploadSigned(EventData):
    event_type = t.UPLOAD_SIGNED
    description = "The reply to upload.requested: where and how to upload the file."

    key: Key = Field(description="The storage key the upload will have (uploads/<userId>/<uuid>-<safe name>).")
    url: str = Field(
        max_length=4096, json_schema_extra={"format": "uri"}, description="Absolute URL to send the file to."
    )
    method: Literal["PUT", "POST"] = Field(
        description="PUT the bytes, or POST a multipart form with `fields` and the file last."
    )
    headers: dict[str, str] = Field(description="Headers the upload request must carry.")
    fields: dict[str, str] = Field(description="Form fields for a POST upload ({} for PUT).")
    expires_at: str = Field(
        json_schema_extra={"format": "date-time"}, description="When the signature expires (RFC 3339)."
    )


class TryOnOptions(Contract):
    """The try-on settings a request may leave out (enqueue fills them in)."""

    steps: Steps | SkipJsonSchema[None] = None
    guidance: Guidance | SkipJsonSchema[None] = None
    seed: Seed | SkipJsonSchema[None] = None
    variant: Variant | SkipJsonSchema[None] = None
    height: Height | SkipJsonSchema[None] = None
    width: Width | SkipJsonSchema[None] = None
    repaint: Repaint | SkipJsonSchema[None] = None
    model: TryOnModel | SkipJsonSchema[None] = None
    garment_photo_type: GarmentPhotoType | SkipJsonSchema[None] = None
    segmentation_free: SegmentationFree | SkipJsonSchema[None] = None
    num_samples: NumSamples | SkipJsonSchema[None] = None
    output_format: OutputFormat | SkipJsonSchema[None] = None


class TryonRequested(TryOnOptions, JobEvent):
    event_type = t.TRYON_REQUESTED
    description = (
        "A user asked for a try-on. The gateway publishes it after storing the job; enqueue resolves "
        "defaults and 'auto' and publishes weave.requested (or tailor.requested first)."
    )

    vton_id: Id = Field(description=VTON_ID)
    person_key: Key = Field(description=PERSON_KEY)
    garment_key: Key = Field(description=GARMENT_KEY)
    mask_key: Key | SkipJsonSchema[None] = Field(default=None, description=MASK_KEY)
    category: CategoryOrAuto = Field(description="Garment category.")
    idempotency_key: IdempotencyKey | SkipJsonSchema[None] = None

    def resolved_fields(self, *, default_model: str, configured_variant: str) -> dict[str, Any]:
        """Every try-on setting with its default applied (the model's own steps and guidance):
        the one place defaults are applied. `default_model` and `configured_variant` are the
        deployment's WEAVE_DEFAULT_MODEL and WEAVE_VARIANT."""
        model = resolve_model(self.model, self.variant, bool(self.mask_key), default_model)
        defaults = model_defaults(model)
        fields = {
            **self.model_dump(include=set(TryOnOptions.model_fields)),  # a new optional setting passes on as is
            "job_id": self.job_id,
            "user_id": self.user_id,
            "vton_id": self.vton_id,
            "person_key": self.person_key,
            "garment_key": self.garment_key,
            "mask_key": self.mask_key,
            "category": self.category,
            "model": model,
            "steps": defaults["steps"] if self.steps is None else self.steps,
            "guidance": defaults["guidance"] if self.guidance is None else self.guidance,
            "seed": default_seed(self.job_id) if self.seed is None else self.seed,
            "height": DEFAULT_HEIGHT if self.height is None else self.height,
            "width": DEFAULT_WIDTH if self.width is None else self.width,
            "repaint": DEFAULT_REPAINT if self.repaint is None else self.repaint,
        }
        if model == FASHN_MODEL:
            fields["variant"] = self.variant or configured_variant  # unused by FASHN
            fields["garment_photo_type"] = self.garment_photo_type or "auto"
            fields["segmentation_free"] = True if self.segmentation_free is None else self.segmentation_free
        else:
            fields["variant"] = next(v for v, n in CATVTON_VARIANT_MODELS.items() if n == model)
        return fields


_NEEDS_MASK_KEY: Final[dict[str, Any]] = {
    "allOf": [
        {
            "if": {"properties": {"variant": {"const": "mask"}}, "required": ["variant"]},
            "then": {"required": ["mask_key"]},
        }
    ]
}


class WeaveRequested(TryOnOptions, JobEvent):
    event_type = t.WEAVE_REQUESTED
    description = (
        "Run the try-on model. Every parameter is resolved (no defaults left to weave); variant 'mask' "
        "needs mask_key. category may stay 'auto': the maskfree model needs no category and the mask "
        "model takes its area from mask_key."
    )
    model_config = {"json_schema_extra": _NEEDS_MASK_KEY}

    vton_id: Id = Field(description=VTON_ID)
    person_key: Key = Field(description=PERSON_KEY)
    garment_key: Key = Field(description=GARMENT_KEY)
    mask_key: Key | SkipJsonSchema[None] = Field(default=None, description=MASK_KEY)
    category: CategoryOrAuto = Field(description="Garment category.")
    steps: Steps
    guidance: Guidance
    seed: Seed
    variant: Variant
    height: Height
    width: Width
    repaint: Repaint
    idempotency_key: IdempotencyKey | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _mask_variant_needs_a_mask(self) -> WeaveRequested:
        if self.variant == "mask" and not self.mask_key:
            raise ValueError("variant 'mask' needs mask_key")
        return self


class WeaveProgress(JobEvent):
    event_type = t.WEAVE_PROGRESS
    description = "Weave finished denoising step `step` of `steps` (sent at most every PROGRESS_INTERVAL_S)."

    vton_id: Id = Field(description=VTON_ID)
    step: Step = Field(description="Steps done so far (0 to steps).")
    steps: StepCount = Field(description="Total steps.")


class WeaveCompleted(JobEvent):
    event_type = t.WEAVE_COMPLETED
    description = "Weave stored the result image under result_key."

    vton_id: Id = Field(description=VTON_ID)
    result_key: Key = Field(
        description="Storage key of the result (outputs/weaver/<userId>/<jobId>.png; the "
        "first sample when there are several)."
    )
    result_keys: Annotated[list[Key], Field(min_length=1, max_length=4)] | SkipJsonSchema[None] = Field(
        default=None, description="Every sample's result key, in seed order (result_key is the first)."
    )
    seed: Seed = Field(description="The seed actually used (of the first sample; sample i has seed + i).")
    model: Model = Field(description="Which model made the image (e.g. 'catvton-maskfree', 'smoke').")
    metadata: dict[str, Any] = Field(
        description=(
            "Free-form facts about the run (steps, guidance, width, height, variant, duration_ms, device...). "
            "JSON values only, no image bytes."
        )
    )


class StageFailed(JobEvent):
    """The one failure shape of every stage: what went wrong for a person, the error's code,
    whether sending the same request again may work, and the stage's own finer reason where
    it has one. Nothing reading a failure needs to know which stage sent it."""

    error: Message = Field(description="What went wrong, for the user.")
    code: Code = Field(
        description=(
            "The ProteusError code (e.g. invalid_image, unusable_photo, dependency_unavailable, dead_lettered)."
        )
    )
    retryable: bool = Field(default=False, description="Whether sending the same request again may work.")
    reason: Code | SkipJsonSchema[None] = Field(
        default=None,
        description=(
            "The stage's own finer reason, where it has one (tailor: no_person, several_people, no_garment, "
            "unknown_category, no_region)."
        ),
    )

    @staticmethod
    def fields_of(error: ProteusError) -> dict[str, Any]:
        """error, code, retryable and (where the error has one) reason, from a ProteusError."""
        fields: dict[str, Any] = {"error": error.message, "code": error.code, "retryable": error.retryable}
        if error.reason:
            fields["reason"] = error.reason
        return fields


class WeaveFailed(StageFailed):
    event_type = t.WEAVE_FAILED
    description = "A try-on job failed for good (weave gave up, or enqueue refused the request)."

    vton_id: Id = Field(description=VTON_ID)


class ThenWeave(TryOnOptions, JobEvent):
    """A weave request tailor sends on; tailor fills garment_key, mask_key and category."""

    model_config = {
        "title": "then_weave",
        "json_schema_extra": {
            "description": (
                "A weave request tailor publishes (as dev.proteus.weave.requested) once it is done, after filling "
                "garment_key with the cut-out and mask_key with the mask it made."
            )
        },
    }

    vton_id: Id = Field(description=VTON_ID)
    person_key: Key = Field(description=PERSON_KEY)
    garment_key: Key | SkipJsonSchema[None] = Field(default=None, description=GARMENT_KEY)
    mask_key: Key | SkipJsonSchema[None] = Field(default=None, description=MASK_KEY)
    category: CategoryOrAuto | SkipJsonSchema[None] = Field(default=None, description="Garment category.")
    idempotency_key: IdempotencyKey | SkipJsonSchema[None] = None


class TailorRequested(JobEvent):
    event_type = t.TAILOR_REQUESTED
    description = (
        "Cut a garment out of its photo and/or make the person mask for a category. At least one of "
        "garment_key and person_key. With then_weave, tailor publishes that weave request afterwards."
    )
    model_config = {"json_schema_extra": {"anyOf": [{"required": ["garment_key"]}, {"required": ["person_key"]}]}}

    vton_id: Id | SkipJsonSchema[None] = Field(default=None, description=VTON_ID)
    garment_key: Key | SkipJsonSchema[None] = Field(
        default=None, description="Storage key of the garment photo to cut out."
    )
    person_key: Key | SkipJsonSchema[None] = Field(default=None, description="Storage key of the person photo to mask.")
    category: CategoryOrAuto | SkipJsonSchema[None] = Field(
        default=None, description="Garment category; 'auto' lets tailor classify it."
    )
    then_weave: ThenWeave | SkipJsonSchema[None] = Field(
        default=None,
        description=(
            "A weave request tailor publishes (as dev.proteus.weave.requested) once it is done, after filling "
            "garment_key with the cut-out and mask_key with the mask it made."
        ),
    )

    @model_validator(mode="after")
    def _garment_or_person(self) -> TailorRequested:
        if not self.garment_key and not self.person_key:
            raise ValueError("needs garment_key or person_key")
        return self


class TailorCompleted(JobEvent):
    event_type = t.TAILOR_COMPLETED
    description = "Tailor stored a garment cut-out and/or a person mask."

    vton_id: Id | SkipJsonSchema[None] = Field(default=None, description=VTON_ID)
    cutout_key: Key | SkipJsonSchema[None] = Field(
        default=None, description="Storage key of the garment cut-out (RGBA PNG)."
    )
    mask_key: Key | SkipJsonSchema[None] = Field(
        default=None, description="Storage key of the person mask for `category`."
    )
    category: Category | SkipJsonSchema[None] = Field(
        default=None, description="The category used (resolved when 'auto' was asked)."
    )
    confidence: Annotated[float, Field(ge=0, le=1)] | SkipJsonSchema[None] = Field(
        default=None, description="Classifier confidence for `category`."
    )
    model: Model = Field(description="Which model did the work (e.g. 'smoke').")


class TailorFailed(StageFailed):
    event_type = t.TAILOR_FAILED
    description = "A tailor job failed for good."

    vton_id: Id | SkipJsonSchema[None] = Field(default=None, description=VTON_ID)


_COMPLETION_OR_PROGRESS: Final[dict[str, Any]] = {
    "if": {"required": ["event"]},
    "then": {
        "required": ["event", "step", "steps"],
        "not": {"anyOf": [{"required": ["job_type"]}, {"required": ["status"]}]},
    },
    "else": {"required": ["job_type", "status", "result_s3_key", "error", "finished_at"]},
}


class UserNotification(EventData):
    event_type = t.USER_NOTIFICATION
    description = (
        "What the user's browser receives over the WebSocket: a completion in the original system's exact shape "
        "(job_type, status done|failed, result_s3_key...), or a progress update (event: progress, no job_type, so "
        "the original frontend ignores it). notify publishes it on the pub/sub channel events:job_done; completions "
        "also go to the replay stream, whose entry id is event_id."
    )
    model_config = {"json_schema_extra": _COMPLETION_OR_PROGRESS}
    nullable_fields = frozenset({"vton_id", "result_s3_key", "error"})

    job_id: Id = Field(description="The job.")
    job_type: Literal["try_on", "tailor"] | SkipJsonSchema[None] = Field(
        default=None, description="Completions only: which kind of job finished."
    )
    status: Literal["done", "failed"] | SkipJsonSchema[None] = Field(
        default=None, description=("Completions only. done: the result is at result_s3_key; failed: error says why.")
    )
    user_id: Id = Field(description="The owner: the gateway pushes the message to this user's sockets only.")
    vton_id: Id | None = Field(description="The try-on record, if any.")
    result_s3_key: Key | None = Field(
        default=None,
        description=("Completions only: storage key of the result (try_on) or cut-out (tailor); null when failed."),
    )
    result_keys: Annotated[list[Key], Field(max_length=4)] | SkipJsonSchema[None] = Field(
        default=None,
        description=("Completions only: every sample's result key (result_s3_key is the first); empty when failed."),
    )
    error: Message | None = Field(
        default=None,
        description=("Completions only: why the job failed, in words a person can act on; null when done."),
    )
    finished_at: str | SkipJsonSchema[None] = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="Completions only: when the job finished (ISO 8601, UTC).",
    )
    event_id: Annotated[str, Field(pattern=r"^[0-9]+-[0-9]+$")] | SkipJsonSchema[None] = Field(
        default=None,
        description=("The replay-stream entry id; a reconnecting socket passes the last one it saw as last_event_id."),
    )
    event: Literal["progress"] | SkipJsonSchema[None] = Field(
        default=None,
        description=(
            'Present ("progress") only on progress updates; completions carry job_type instead, as in the original '
            "system."
        ),
    )
    step: Step | SkipJsonSchema[None] = Field(
        default=None, description=("Progress only: the denoising step just finished (k of steps).")
    )
    steps: StepCount | SkipJsonSchema[None] = Field(default=None, description="Progress only: the number of steps.")


class JobCanceled(JobEvent):
    event_type = t.JOB_CANCELED
    description = (
        "The owner canceled a job (POST /v1/cancel/{id}); the gateway already marked it canceled and put "
        "its completion in the outbox, which notify publishes."
    )

    vton_id: Id = Field(description=VTON_ID)


class WebhookRequested(JobEvent):
    event_type = t.WEBHOOK_REQUESTED
    description = (
        "A finished public-API job whose status must be POSTed to a webhook URL (one message per job: "
        "its webhook-id is msg_<job_id>)."
    )

    url: str = Field(min_length=8, max_length=2048, pattern="^https?://", description="Where to POST the status.")


EVENT_MODELS: Final[dict[str, type[EventData]]] = {
    model.event_type: model
    for model in (
        UploadRequested,
        UploadSigned,
        TryonRequested,
        WeaveRequested,
        WeaveProgress,
        WeaveCompleted,
        WeaveFailed,
        TailorRequested,
        TailorCompleted,
        TailorFailed,
        UserNotification,
        JobCanceled,
        WebhookRequested,
    )
}
assert set(EVENT_MODELS) == set(t.ALL_TYPES), "every event type needs its model"
assert set(EXAMPLES) == set(t.ALL_TYPES), "every event type needs its examples"
