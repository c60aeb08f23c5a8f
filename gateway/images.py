"""Presigned storage URLs: /images/presignedUploadUrl and /images/presignedDownloadUrl.

Upload: `{"fileName", "fileType", "fileSize"?, "method"?}` -> a fresh key under
`uploads/<userId>/` and how to send the bytes (PUT with headers, or a presigned POST form
carrying size and type conditions when the client asks for POST or declares fileSize).
Download: `{"key"}` -> a GET URL, only for keys under the caller's own prefixes; any other
key answers 404, as if it did not exist.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from gateway import auth, resources
from gateway.limits import rate_limited
from gateway.validation import KEY_PATTERN, json_body, show
from shared.errors import BadRequest, NotFound
from shared.storage.base import expiry_time
from shared.uploads import is_owned_key, sign_upload

bp = Blueprint("images", __name__, url_prefix="/images")


@bp.post("/presignedUploadUrl")
@rate_limited
@auth.login_required
def presigned_upload_url() -> Response:
    body = json_body()
    method = body.get("method")
    if method is not None:
        if not isinstance(method, str) or method.upper() not in ("PUT", "POST"):
            raise BadRequest(f"method must be PUT or POST, got {show(method)}", field="method")
        method = method.upper()
    settings = resources.settings()
    signed = sign_upload(
        resources.storage(),
        settings,
        user_id=auth.current_user().id,
        file_name=body.get("fileName"),
        content_type=body.get("fileType"),
        size=body.get("fileSize"),
        method=method,
    )
    data = signed.to_dict()
    return jsonify(
        {
            "key": signed.key,
            "url": signed.url,
            "uploadUrl": signed.url,
            "method": signed.method,
            "headers": data["headers"],
            "fields": data["fields"],
            "expiresAt": data["expires_at"],
            "maxBytes": settings.max_upload_bytes,
        }
    )


@bp.post("/presignedDownloadUrl")
@auth.login_required
def presigned_download_url() -> Response:
    body = json_body()
    key = body.get("key")
    if key is None:
        raise BadRequest("key is required", field="key")
    if not isinstance(key, str) or not key:
        raise BadRequest(f"key must be a storage key string, got {show(key)}", field="key")
    if len(key) > 1024 or not KEY_PATTERN.match(key) or not is_owned_key(auth.current_user().id, key):
        raise NotFound(f"no object with key {show(key)}", field="key")
    settings = resources.settings()
    url = resources.storage().presign_download(key, expires_s=settings.download_url_ttl_s)
    expires = expiry_time(settings.download_url_ttl_s).isoformat().replace("+00:00", "Z")
    return jsonify({"key": key, "url": url, "expiresAt": expires})
