"""The gateway's REST request bodies, one model per body (the OpenAPI components come from these).

The original API's field names keep working: each legacy spelling is an alias of the field
(`user_snap_s3` for `user_snap`, `name` for `user_name`...), documented in the OpenAPI
document as "either spelling". A key field checks that the key is one of the caller's
(pass `context={"user_id": ...}` to `parse`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import AliasChoices, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.functional_validators import AfterValidator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from shared.contracts.base import Contract, show
from shared.contracts.fields import DEF_MARKER, KEY_PATTERN, MAX_KEY_LENGTH, CategoryOrAuto, UploadMethod
from shared.contracts.tryon import DEFAULT_REQUEST_CATEGORY, Preset, TryOnOptions
from shared.uploads import MAX_FILE_NAME, is_owned_key

EMAIL_PATTERN: Final = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$"
MAX_EMAIL: Final = 254
MAX_USER_NAME: Final = 100
MIN_PASSWORD: Final = 8
MAX_PASSWORD_BYTES: Final = 72  # bcrypt's limit
MAX_LOGIN_FIELD: Final = 1000
HISTORY_MAX_LIMIT: Final = 100  # GET /vton?limit=: a page of the history holds 1 to this many try-ons
HISTORY_DEFAULT_LIMIT: Final = 50  # a page's size when `before` is given without `limit`
_KEY = re.compile(KEY_PATTERN)


def _owned_key(value: str, info: ValidationInfo) -> str:
    """A storage key under one of the caller's prefixes (uploads/, outputs/weaver/, outputs/tailor/)."""
    user_id = (info.context or {}).get("user_id")
    if len(value) > MAX_KEY_LENGTH or not _KEY.match(value) or (user_id and not is_owned_key(user_id, value)):
        mine = f"uploads/{user_id}/..., outputs/weaver/{user_id}/... or outputs/tailor/{user_id}/..."
        raise PydanticCustomError("proteus", "is not one of your storage keys ({mine})", {"mine": mine})
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("proteus", "must not be empty")
    return value


def _email(value: str) -> str:
    value = value.strip().lower()
    if not re.match(EMAIL_PATTERN, value):
        raise PydanticCustomError("proteus", "is not a valid email address")
    return value


def _new_password(value: str) -> str:
    if len(value) < MIN_PASSWORD:
        raise PydanticCustomError("secret", "must be at least {n} characters long", {"n": MIN_PASSWORD})
    if len(value.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise PydanticCustomError("secret", "must be at most {n} bytes long", {"n": MAX_PASSWORD_BYTES})
    return value


def _not_null(value: Any) -> Any:
    """A field that may be left out but not sent as null."""
    if value is None:
        raise PydanticCustomError("proteus", "must not be null (leave the field out instead)")
    return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


OwnedKey = Annotated[str, Field(min_length=1), AfterValidator(_owned_key), Field(json_schema_extra={DEF_MARKER: "key"})]
UserName = Annotated[
    str, Field(max_length=MAX_USER_NAME), AfterValidator(_not_blank), AfterValidator(lambda v: v.strip())
]
Email = Annotated[
    str,
    Field(max_length=MAX_EMAIL, description="Compared case-insensitively."),
    AfterValidator(_not_blank),
    AfterValidator(_email),
]
NewPassword = Annotated[
    str,
    Field(max_length=MAX_LOGIN_FIELD, description=(f"{MIN_PASSWORD} characters to {MAX_PASSWORD_BYTES} bytes.")),
    AfterValidator(_not_blank),
    AfterValidator(_new_password),
]
Text = Annotated[str, Field(max_length=MAX_LOGIN_FIELD), AfterValidator(_not_blank)]
Open = ConfigDict(extra="ignore")  # bodies the original clients send with more fields than we read


def aliases(*names: str) -> Any:
    """The field's spellings, the first one documented as the name."""
    return AliasChoices(*names)


class SignupRequest(Contract):
    model_config = Open

    user_name: UserName = Field(validation_alias=aliases("user_name", "name"))
    email: Email
    password: NewPassword


class LoginRequest(Contract):
    model_config = Open

    email: Text
    password: Text


class UserUpdate(Contract):
    """Change user_name, email and/or password (at least one)."""

    user_name: UserName | SkipJsonSchema[None] = None
    email: Email | SkipJsonSchema[None] = None
    password: NewPassword | SkipJsonSchema[None] = None

    _not_null = field_validator("user_name", "email", "password", mode="before")(lambda v: _not_null(v))

    @model_validator(mode="after")
    def _something(self) -> UserUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: send user_name, email and/or password")
        return self


class PresignUploadRequest(Contract):
    model_config = Open

    fileName: str = Field(min_length=1, max_length=MAX_FILE_NAME)  # the original API's name
    fileType: str = Field(min_length=1, max_length=255, description="An image type the server accepts.")
    fileSize: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, description="Declared size: gives a presigned POST."
    )
    method: Annotated[UploadMethod, BeforeValidator(_upper)] | SkipJsonSchema[None] = None


class PresignDownloadRequest(Contract):
    model_config = Open

    key: str = Field(min_length=1, description="A storage key.")


class TryOnCreate(Contract):
    """Keys under the caller's own prefixes; either spelling of each."""

    model_config = Open

    user_snap: OwnedKey = Field(validation_alias=aliases("user_snap", "user_snap_s3"))
    uncleaned_outfit: OwnedKey = Field(validation_alias=aliases("uncleaned_outfit", "uncleaned_outfit_s3"))
    category: CategoryOrAuto = DEFAULT_REQUEST_CATEGORY


class TryOnUpdate(Contract):
    """Keys or category of a try-on (at least one); cleaned_outfit may be null."""

    nullable_fields = frozenset({"cleaned_outfit"})

    user_snap: OwnedKey | SkipJsonSchema[None] = Field(
        default=None, validation_alias=aliases("user_snap", "user_snap_s3")
    )
    uncleaned_outfit: OwnedKey | SkipJsonSchema[None] = Field(
        default=None, validation_alias=aliases("uncleaned_outfit", "uncleaned_outfit_s3")
    )
    cleaned_outfit: OwnedKey | None = Field(
        default=None, validation_alias=aliases("cleaned_outfit", "cleaned_outfit_s3")
    )
    category: CategoryOrAuto | SkipJsonSchema[None] = None

    _not_null = field_validator("user_snap", "uncleaned_outfit", "category", mode="before")(lambda v: _not_null(v))

    @model_validator(mode="after")
    def _something(self) -> TryOnUpdate:
        if not self.model_fields_set:
            raise ValueError(
                "nothing to change: send user_snap, uncleaned_outfit, cleaned_outfit (or their _s3 "
                "spellings) or category"
            )
        return self


class WeaveJobRequest(TryOnOptions):
    """Start a try-on of a recorded try-on (`vton_id`); settings left out get enqueue's defaults."""

    model_config = Open

    vton_id: str = Field(description="The try-on to render (unknown ids are a 404).")
    person_key: OwnedKey = Field(validation_alias=aliases("user_snap_s3", "user_snap"))
    garment_key: OwnedKey = Field(validation_alias=aliases("uncleaned_outfit_s3", "uncleaned_outfit"))
    category: CategoryOrAuto | SkipJsonSchema[None] = Field(
        default=None, description="Left out: the try-on's own category, else 'auto'."
    )
    preset: Preset | SkipJsonSchema[None] = None
    mask_key: OwnedKey | SkipJsonSchema[None] = Field(default=None, validation_alias=aliases("mask", "mask_key"))

    def params(self, default_category: str | None) -> dict[str, Any]:
        """The job's parameters (tryon.requested's data without the ids; the preset is the model's:
        see gateway/jobs.py)."""
        params = self.model_dump(mode="json", exclude_none=True, exclude={"vton_id", "preset"})
        params["category"] = self.category or default_category or DEFAULT_REQUEST_CATEGORY
        return params


class TailorJobRequest(Contract):
    model_config = Open

    vton_id: str = Field(description="The try-on whose garment to cut out (unknown ids are a 404).")
    garment_key: OwnedKey = Field(validation_alias=aliases("uncleaned_outfit_s3", "uncleaned_outfit"))
    category: CategoryOrAuto = DEFAULT_REQUEST_CATEGORY


REQUEST_MODELS: Final[tuple[type[Contract], ...]] = (
    SignupRequest,
    LoginRequest,
    UserUpdate,
    PresignUploadRequest,
    PresignDownloadRequest,
    TryOnCreate,
    TryOnUpdate,
    WeaveJobRequest,
    TailorJobRequest,
)
__all__ = ["REQUEST_MODELS", "show", *(m.__name__ for m in REQUEST_MODELS)]
