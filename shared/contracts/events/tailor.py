"""The tailor stage: its request (with the weave request it sends on), its answer and its failure."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shared import event_types as t
from shared.contracts.events.base import GARMENT_KEY, MASK_KEY, PERSON_KEY, VTON_ID, JobEvent, Model, StageFailed
from shared.contracts.fields import Category, CategoryOrAuto, Id, IdempotencyKey, Key
from shared.contracts.tryon import TryOnOptions


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
