"""Upload rules shared by the gateway and the upload-signing function.

Who may write where: every object lives under its owner's prefix. What may be uploaded:
an image type from `Settings.image_content_types`, at most `Settings.max_upload_bytes`.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from shared.contracts.fields import UploadMethod
from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.storage.base import PresignedUpload, Storage

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILE_NAME = 255


def user_prefixes(user_id: str) -> tuple[str, ...]:
    """The key prefixes that belong to `user_id`: uploads, weave results, tailor assets."""
    return (f"uploads/{user_id}/", f"outputs/weaver/{user_id}/", f"outputs/tailor/{user_id}/")


def is_owned_key(user_id: str, key: str) -> bool:
    """True when `key` lies under one of the user's prefixes (and is a sane key)."""
    if not key or ".." in key or key.startswith("/") or "\\" in key:
        return False
    return any(key.startswith(prefix) and len(key) > len(prefix) for prefix in user_prefixes(user_id))


def result_key(user_id: str, job_id: str, index: int = 0, image_format: str = "png") -> str:
    """Where weave writes sample `index` of job `job_id` (one object each, whatever the retries):
    `<job>.png` for the first sample as PNG, `<job>-<index>.<ext>` for the others."""
    extension = {"jpeg": "jpg"}.get(image_format, image_format)
    return f"outputs/weaver/{user_id}/{job_id}{f'-{index}' if index else ''}.{extension}"


def safe_file_name(file_name: str) -> str:
    """The file name reduced to letters, digits, '.', '_' and '-' (never empty)."""
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("-", base).strip(".-")[:100]
    return cleaned or "image"


def check_upload(
    settings: Settings, *, file_name: object, content_type: object, size: object = None
) -> tuple[str, str, int | None]:
    """Validate a declared upload; returns (file_name, content_type, size) or raises naming the value."""
    if not isinstance(file_name, str) or not file_name.strip():
        raise BadRequest(f"fileName must be a non-empty string, got {file_name!r}", field="fileName")
    if len(file_name) > MAX_FILE_NAME:
        raise BadRequest(
            f"fileName is {len(file_name)} characters long; at most {MAX_FILE_NAME} are allowed",
            field="fileName",
        )
    if not isinstance(content_type, str) or not content_type:
        raise BadRequest(f"fileType must be a content type such as image/jpeg, got {content_type!r}", field="fileType")
    normalised = content_type.split(";", 1)[0].strip().lower()
    if normalised not in settings.image_content_types:
        raise UnsupportedMediaType(
            f"fileType {content_type!r} is not an accepted image type ({', '.join(settings.image_content_types)})",
            field="fileType",
        )
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise BadRequest(f"fileSize must be a positive integer of bytes, got {size!r}", field="fileSize")
        if size > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"fileSize {size} bytes is over the limit of {settings.max_upload_bytes} bytes",
                field="fileSize",
            )
    return file_name, normalised, size


def upload_key(user_id: str, file_name: str) -> str:
    """A fresh key under the user's upload prefix."""
    return f"uploads/{user_id}/{uuid.uuid4().hex}-{safe_file_name(file_name)}"


def sign_upload(
    storage: Storage,
    settings: Settings,
    *,
    user_id: str,
    file_name: object,
    content_type: object,
    size: object = None,
    method: str | None = None,
) -> PresignedUpload:
    """Check the declared upload and presign it for a fresh key under the user's prefix.

    PUT (the original frontend's way) unless the caller asks for POST or declares a size:
    a presigned POST carries the size and type conditions, which a PUT URL cannot.
    """
    name, ctype, declared = check_upload(settings, file_name=file_name, content_type=content_type, size=size)
    if method is not None and method not in ("PUT", "POST"):
        raise BadRequest(f"method must be PUT or POST, got {method!r}", field="method")
    chosen: UploadMethod = "POST" if method == "POST" or (method is None and declared is not None) else "PUT"
    return storage.presign_upload(
        upload_key(user_id, name),
        content_type=ctype,
        max_bytes=settings.max_upload_bytes,
        method=chosen,
        expires_s=settings.upload_url_ttl_s,
    )
