"""The try-on path: tryon.requested (from the gateway), weave.requested (from enqueue or tailor)
and what weave answers (progress, completed, failed)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shared import event_types as t
from shared.contracts.events.base import (
    GARMENT_KEY,
    MASK_KEY,
    PERSON_KEY,
    VTON_ID,
    JobEvent,
    Model,
    StageFailed,
    Step,
    StepCount,
)
from shared.contracts.fields import CategoryOrAuto, Id, IdempotencyKey, Key
from shared.contracts.tryon import (
    CATVTON_VARIANT_MODELS,
    DEFAULT_GARMENT_PHOTO_TYPE,
    DEFAULT_HEIGHT,
    DEFAULT_REPAINT,
    DEFAULT_SEGMENTATION_FREE,
    DEFAULT_WIDTH,
    FASHN_MODEL,
    Guidance,
    Height,
    Repaint,
    Seed,
    Steps,
    TryOnOptions,
    Variant,
    Width,
    default_seed,
    model_defaults,
    resolve_model,
)


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
            fields["garment_photo_type"] = self.garment_photo_type or DEFAULT_GARMENT_PHOTO_TYPE
            fields["segmentation_free"] = (
                DEFAULT_SEGMENTATION_FREE if self.segmentation_free is None else self.segmentation_free
            )
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


class WeaveFailed(StageFailed):
    event_type = t.WEAVE_FAILED
    description = "A try-on job failed for good (weave gave up, or enqueue refused the request)."

    vton_id: Id = Field(description=VTON_ID)
