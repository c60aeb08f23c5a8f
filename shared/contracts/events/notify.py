"""What reaches people: the WebSocket notification, a cancellation and a webhook delivery."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from shared import event_types as t
from shared.contracts.events.base import VTON_ID, EventData, JobEvent, Step, StepCount
from shared.contracts.fields import Id, JobType, Key, Message

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
    job_type: JobType | SkipJsonSchema[None] = Field(
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
