"""Presigned storage URLs: /images/presignedUploadUrl and /images/presignedDownloadUrl.

Upload: `{"fileName", "fileType", "fileSize"?, "method"?}` -> (asked of the upload-signing
stage over HTTP, gateway/upload_signing.py) a fresh key under
`uploads/<userId>/` and how to send the bytes (PUT with headers, or a presigned POST form
carrying size and type conditions when the client asks for POST or declares fileSize).
Download: `{"key"}` -> a GET URL, only for keys under the caller's own prefixes; any other
key answers 404, as if it did not exist.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify

from gateway import auth, resources
from gateway.limits import rate_limited
from gateway.upload_signing import sign_upload
from gateway.validation import parse_body, show
from shared.contracts.events import UploadRequested
from shared.contracts.fields import KEY_PATTERN, MAX_KEY_LENGTH
from shared.contracts.rest import PresignDownloadRequest, PresignUploadRequest
from shared.errors import NotFound
from shared.storage.base import expiry_time
from shared.uploads import check_upload, is_owned_key, safe_file_name

bp = Blueprint("images", __name__, url_prefix="/images")


@bp.post("/presignedUploadUrl")
@rate_limited
@auth.login_required
@resources.write_lock_later  # writes nothing; waits on the upload-signing stage
def presigned_upload_url() -> Response:
    body = parse_body(PresignUploadRequest)
    settings = resources.settings()
    # Refused here with the API's field names (415 fileType, 413 fileSize); the stage checks again.
    _, content_type, size = check_upload(
        settings, file_name=body.fileName, content_type=body.fileType, size=body.fileSize
    )
    signed = sign_upload(
        settings,
        UploadRequested(
            user_id=auth.current_user().id,
            file_name=safe_file_name(body.fileName),
            content_type=content_type,
            size=size,
            method=body.method,
        ),
    )
    return jsonify(
        {
            "key": signed.key,
            "url": signed.url,
            "uploadUrl": signed.url,
            "method": signed.method,
            "headers": signed.headers,
            "fields": signed.fields,
            "expiresAt": signed.expires_at,
            "maxBytes": settings.max_upload_bytes,
        }
    )


@bp.post("/presignedDownloadUrl")
@auth.login_required
@resources.write_lock_later  # writes nothing
def presigned_download_url() -> Response:
    key = parse_body(PresignDownloadRequest).key
    if len(key) > MAX_KEY_LENGTH or not re.match(KEY_PATTERN, key) or not is_owned_key(auth.current_user().id, key):
        raise NotFound(f"no object with key {show(key)}", field="key")
    settings = resources.settings()
    url = resources.storage().presign_download(key, expires_s=settings.download_url_ttl_s)
    expires = expiry_time(settings.download_url_ttl_s).isoformat().replace("+00:00", "Z")
    return jsonify({"key": key, "url": url, "expiresAt": expires})
