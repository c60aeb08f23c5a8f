"""The upload-signing stage's request and reply."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from shared import event_types as t
from shared.contracts.events.base import EventData
from shared.contracts.fields import Id, Key, UploadMethod


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
    method: UploadMethod | SkipJsonSchema[None] = Field(
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
    method: UploadMethod = Field(description="PUT the bytes, or POST a multipart form with `fields` and the file last.")
    headers: dict[str, str] = Field(description="Headers the upload request must carry.")
    fields: dict[str, str] = Field(description="Form fields for a POST upload ({} for PUT).")
    expires_at: str = Field(
        json_schema_extra={"format": "date-time"}, description="When the signature expires (RFC 3339)."
    )
