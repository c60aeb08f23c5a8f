"""The images of a /v1 run: a storage key of the caller's, a data: URL, or an https URL.

Bytes that arrive in the request (data: URLs) or are fetched (https, through the SSRF guard
of shared/safe_http.py) are checked as images (format and size, from the header) and
stored under the caller's uploads/ prefix before anything is queued, so no GPU time is
spent on something that is not an image; an uploaded key is checked the same way. Every error names the field and the value.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid

from gateway import resources
from gateway.validation import show
from shared.errors import BadRequest, ClientError
from shared.images import probe_image
from shared.safe_http import FetchFailed, SafeClient
from shared.uploads import is_owned_key

DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,(?P<data>.*)$", re.DOTALL
)
EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
    "HEIF": "heic",
    "AVIF": "avif",
    "MPO": "jpg",
}


def resolve_image(value: str, field: str, user_id: str) -> str:
    """The storage key holding the image `value` names (stored first when it came inline or by URL)."""
    if value.startswith("data:"):
        return _store(_decode_data_url(value, field), field, user_id)
    if value.startswith(("https://", "http://")):
        return _store(_fetch(value, field), field, user_id)
    key = value
    if len(key) > 1024 or not is_owned_key(user_id, key):
        raise BadRequest(
            f"{field} {show(value)} is not a data: URL, an https URL or one of your storage keys "
            f"(uploads/{user_id}/...)",
            field=field,
        )
    storage, settings = resources.storage(), resources.settings()
    info = storage.head(key)
    if info is None:
        raise BadRequest(f"{field} {show(value)} does not exist; upload it first (POST /images/presign)", field=field)
    if info.size > settings.max_upload_bytes:  # S3 signs an exact length, not a maximum
        raise BadRequest(
            f"{field} {show(value)} is {info.size} bytes; at most {settings.max_upload_bytes} are allowed", field=field
        )
    # An upload may hold anything: checked as an image (header only) before any GPU time.
    try:
        probe_image(storage.get(key), max_pixels=settings.max_image_pixels, what=field)
    except ClientError as exc:
        exc.message = exc.message.replace(field, f"{field} {show(value)}", 1)
        raise
    return key


def _decode_data_url(value: str, field: str) -> bytes:
    match = DATA_URL.match(value)
    if match is None:
        raise BadRequest(f"{field} must be a data:image/<type>;base64,<data> URL, got {show(value[:60])}", field=field)
    limit = resources.settings().max_upload_bytes
    if len(match["data"]) > limit * 4 // 3 + 4:
        raise BadRequest(f"{field} is over {limit} bytes once decoded", field=field)
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            f"{field} is not valid base64 after 'base64,': {show(match['data'][:40])}", field=field
        ) from None


def _fetch(url: str, field: str) -> bytes:
    settings = resources.settings()
    client = SafeClient(
        field=field, timeout_s=settings.api_fetch_timeout_s, allowed_hosts=settings.api_fetch_allowed_hosts
    )
    response = client.request(
        "GET",
        url,
        max_bytes=settings.max_upload_bytes,
        headers={"Accept": "image/*", "User-Agent": "Proteus/1 (+image fetch)"},
    )
    if response.status != 200:
        raise FetchFailed(f"{field}: {show(url)} answered HTTP {response.status}, not an image", field=field)
    return response.body


def _store(data: bytes, field: str, user_id: str) -> str:
    """Check the bytes are an image within the limits (header only), then store them."""
    settings = resources.settings()
    if len(data) > settings.max_upload_bytes:
        raise BadRequest(f"{field} is {len(data)} bytes; at most {settings.max_upload_bytes} are allowed", field=field)
    image_format, _, _ = probe_image(data, max_pixels=settings.max_image_pixels, what=field)
    extension = EXTENSIONS.get(image_format, "img")
    key = f"uploads/{user_id}/{uuid.uuid4().hex}-api-{field.rsplit('.', 1)[-1].replace('_', '-')}.{extension}"
    resources.storage().put(key, data, f"image/{'jpeg' if extension == 'jpg' else extension}")
    return key
