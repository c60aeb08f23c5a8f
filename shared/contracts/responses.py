"""The gateway's REST answers and WebSocket messages, one model per shape (`RESPONSE_MODELS`).

The OpenAPI components of the answers are generated from these, like the request bodies'
(`make schemas`); the gateway builds the dicts (gateway/serializers.py, the views) and the
tests check every answer they get against the generated document (tests/gateway/helpers.py),
so an answer cannot drift from its model. The enums come from shared/contracts/fields.py.
"""

from __future__ import annotations

from copy import copy
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import Field, RootModel, create_model
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticUndefined

from shared.contracts.base import Contract
from shared.contracts.events.notify import UserNotification
from shared.contracts.fields import MAX_KEY_LENGTH, JobStatus, JobType, TryOnStatus, UploadMethod

AnyId = Annotated[str, Field(min_length=1, max_length=64)]
StoredKey = Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH, description="A storage key.")]
Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Headers = dict[str, str]


class Error(Contract):
    """Every error answer: {error, message, code, field} (the original clients read `error`)."""

    error: str = Field(description="The message (the original clients read `error`).")
    message: str
    code: str = Field(description="Machine-readable, e.g. bad_request, unauthorized.")
    field: str | None = Field(description="The offending field, where there is one.")
    details: dict[str, Any] | SkipJsonSchema[None] = None


class Message(Contract):
    message: str


class User(Contract):
    id: AnyId
    user_name: str
    email: str
    createdAt: Time
    updatedAt: Time


class UpdatedUser(User):
    token: str | SkipJsonSchema[None] = Field(default=None, description="A new login token, when the password changed.")


class LoginResponse(Contract):
    message: str
    token: str = Field(description="JWT (HS256).")
    user: User


class WsToken(Contract):
    token: str = Field(description="JWT with purpose 'ws'.")
    expiresIn: int | SkipJsonSchema[None] = None


class PresignedUpload(Contract):
    key: StoredKey
    url: str
    uploadUrl: str | SkipJsonSchema[None] = Field(default=None, description="Same as url.")
    method: UploadMethod
    headers: Headers
    fields: Headers
    expiresAt: Time | SkipJsonSchema[None] = None
    maxBytes: int | SkipJsonSchema[None] = None


class PresignedDownload(Contract):
    key: StoredKey | SkipJsonSchema[None] = None
    url: str
    expiresAt: Time | SkipJsonSchema[None] = None


class TryOn(Contract):
    """A try-on as the history shows it, with the model and seed of its newest try-on job."""

    id: AnyId
    user_id: AnyId
    user_snap: StoredKey
    uncleaned_outfit: StoredKey
    cleaned_outfit: StoredKey | None
    outfit_try_on: StoredKey | None
    person_mask: StoredKey | None
    category: str | None = Field(description="The category used (tailor's answer for auto).")
    category_requested: str | None = Field(description="What was asked for, auto included.")
    status: TryOnStatus
    error: str | None
    progress: Annotated[float, Field(ge=0, le=1)] | None
    progress_step: int | None
    progress_steps: int | None
    model: str | None = Field(
        default=None, description="The model of its newest try-on job (e.g. fashn-vton-1.5); null before any."
    )
    seed: int | None = Field(default=None, description="The seed of its newest try-on job.")
    result_keys: list[StoredKey] | SkipJsonSchema[None] = Field(
        default=None, description="Every sample of the result it shows (outfit_try_on first); [] before one."
    )
    result_expired_at: Time | None = Field(
        description="When the retention sweep deleted the result (RETENTION_RESULTS_DAYS); "
        "outfit_try_on is null from then on."
    )
    inputs_expired_at: Time | None = Field(
        description="When the retention sweep deleted the uploaded photos (RETENTION_UPLOADS_DAYS)."
    )
    createdAt: Time
    updatedAt: Time


class TryOnList(RootModel[list[TryOn]]):
    """The caller's try-ons, newest first (a bare array)."""


class JobAccepted(Contract):
    jobId: AnyId
    job_id: AnyId
    vton_id: AnyId
    status: JobStatus


class Job(Contract):
    id: AnyId
    jobId: AnyId | SkipJsonSchema[None] = None
    job_id: AnyId
    vton_id: AnyId
    job_type: JobType
    status: JobStatus
    step: Annotated[int, Field(ge=0)]
    steps: int | None
    error: str | None
    result_key: StoredKey | None
    result_keys: list[StoredKey] | SkipJsonSchema[None] = Field(
        default=None, description="Every sample's result (result_key first)."
    )
    seed: int | None = None
    model: str | None = None
    createdAt: Time | SkipJsonSchema[None] = None
    updatedAt: Time | SkipJsonSchema[None] = None
    finished_at: Time | None = None


class HealthModels(Contract):
    """What each model function reported in Redis (model, variant, device, dtype, smoke, warning)."""

    weave: dict[str, Any] | None
    tailor: dict[str, Any] | None


class HealthLimits(Contract):
    max_upload_bytes: int
    image_content_types: list[str]


class Health(Contract):
    status: Literal["ok", "degraded"]
    checks: dict[str, str]
    models: HealthModels
    smoke: bool = Field(description="True when weave or tailor runs a smoke model.")
    warnings: list[str]
    limits: HealthLimits
    websockets: Annotated[int, Field(ge=0)] = Field(description="Sockets held by this process.")


class Live(Contract):
    status: Literal["ok"]


class Ready(Contract):
    ready: bool
    checks: dict[str, str]


# -- WebSocket messages (server to client) --


def _skips_none(arg: Any) -> bool:
    return arg is type(None) or get_origin(arg) is Annotated and get_args(arg)[0] is type(None)


def _from_notification(name: str, doc: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Any:
    """A WebSocket message made of user.notification's fields (the event the gateway pushes):
    each field keeps its rule and description, `required` ones become required (and non-null
    unless the notification allows null), so the two documents cannot disagree."""
    fields: dict[str, Any] = {}
    for field_name in (*required, *optional):
        info = copy(UserNotification.model_fields[field_name])
        annotation = info.annotation
        if field_name in required:
            info.default = PydanticUndefined
            if field_name not in UserNotification.nullable_fields and get_origin(annotation) in (Union, UnionType):
                [annotation] = [arg for arg in get_args(annotation) if not _skips_none(arg)]
        fields[field_name] = (Annotated[annotation, *info.metadata] if info.metadata else annotation, info)
    return create_model(name, __base__=Contract, __doc__=doc, **fields)


CompletionMessage = _from_notification(
    "CompletionMessage",
    "A finished job, in the original system's shape, with its replay-stream id.",
    ("job_id", "job_type", "status", "user_id", "vton_id", "result_s3_key", "error", "finished_at", "event_id"),
    ("result_keys",),
)
ProgressMessage = _from_notification(
    "ProgressMessage",
    "A denoising step of a running try-on (no job_type: the original frontend ignores it).",
    ("event", "job_id", "vton_id", "user_id", "step", "steps"),
)


class ReadyMessage(Contract):
    event: Literal["ready"]
    user_id: AnyId
    replayed: Annotated[int, Field(ge=0)]
    truncated: bool


RESPONSE_MODELS: Final[tuple[type[Contract] | type[RootModel[Any]], ...]] = (
    Error,
    Message,
    User,
    UpdatedUser,
    LoginResponse,
    WsToken,
    PresignedUpload,
    PresignedDownload,
    TryOn,
    TryOnList,
    JobAccepted,
    Job,
    Health,
    Live,
    Ready,
    CompletionMessage,
    ProgressMessage,
    ReadyMessage,
)
