"""What every event's data shares: the base models, the job ids, and the one failure shape."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from shared.contracts.base import Contract
from shared.contracts.fields import Code, Id, Message
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
