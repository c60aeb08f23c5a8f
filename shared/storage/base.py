"""The storage interface every backend implements, and the key rules they all enforce.

Keys look like `uploads/<userId>/<uuid>-<name>`: relative, '/'-separated, printable, with no
empty, '.' or '..' segment and no backslash. A bad key is a BadRequest naming it; a missing
object is NotFound; a backend that cannot be reached is DependencyUnavailable (503).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.fields import UploadMethod
from shared.errors import BadRequest

MAX_KEY_BYTES = 1024  # S3's limit
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's limit


@dataclass(frozen=True)
class ObjectInfo:
    """What `head` tells about a stored object."""

    size: int
    content_type: str


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it: its key, size and when it was last written (UTC)."""

    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class PresignedUpload:
    """How a client uploads one object without credentials.

    PUT: send the bytes to `url` with `headers`. POST: send a multipart form to `url` with
    `fields` first and the file last, in a part named `file` (as S3 expects).
    """

    url: str
    method: UploadMethod
    headers: dict[str, str]
    fields: dict[str, str]
    key: str
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, `expires_at` as ISO 8601 with a Z."""
        return {
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "fields": dict(self.fields),
            "key": self.key,
            "expires_at": self.expires_at.isoformat().replace("+00:00", "Z"),
        }


def validate_key(key: object) -> str:
    """Return `key` if it is a safe object key; BadRequest naming it otherwise.

    >>> validate_key("uploads/u1/a.png")
    'uploads/u1/a.png'
    """
    _check_text(key, "key")
    assert isinstance(key, str)
    if not key or key.endswith("/"):
        raise BadRequest(f"storage key {key!r} must name an object (non-empty, no trailing '/')", field="key")
    return key


def validate_prefix(prefix: object) -> str:
    """Return `prefix` if it is a safe key prefix ('' or a key, possibly ending with '/')."""
    _check_text(prefix, "prefix")
    assert isinstance(prefix, str)
    return prefix


def _check_text(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise BadRequest(f"storage {what} must be a string, got {value!r}", field=what)
    if not value:
        return
    problem = None
    if len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        problem = f"is longer than {MAX_KEY_BYTES} bytes"
    elif value.startswith("/"):
        problem = "starts with '/'"
    elif "\\" in value:
        problem = "contains a backslash"
    elif not value.isprintable():
        problem = "contains a non-printable character"
    else:
        segments = value.split("/")
        if value.endswith("/"):
            segments = segments[:-1]
        if any(s in ("", ".", "..") for s in segments):
            problem = "has an empty, '.' or '..' segment"
    if problem:
        raise BadRequest(f"storage {what} {value!r} {problem}", field=what)


def check_expiry(expires_s: int) -> None:
    """A presigned URL lives between 1 second and 7 days."""
    if isinstance(expires_s, bool) or not isinstance(expires_s, int) or not 1 <= expires_s <= MAX_PRESIGN_S:
        raise BadRequest(f"expires_s must be 1..{MAX_PRESIGN_S} seconds, got {expires_s!r}", field="expires_s")


def check_upload_terms(content_type: str, max_bytes: int, method: str) -> None:
    """The content type, size limit and method a presigned upload is bound to."""
    if not isinstance(content_type, str) or "/" not in content_type or not content_type.isprintable():
        raise BadRequest(f"content_type must be a MIME type, got {content_type!r}", field="content_type")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise BadRequest(f"max_bytes must be a positive integer, got {max_bytes!r}", field="max_bytes")
    if method not in ("PUT", "POST"):
        raise BadRequest(f"method must be PUT or POST, got {method!r}", field="method")


def expiry_time(expires_s: int, now: datetime | None = None) -> datetime:
    """When a URL made now with `expires_s` stops working (UTC, whole seconds)."""
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    return start + timedelta(seconds=expires_s)


class Storage(abc.ABC):
    """An object store: bytes under string keys, each with a content type."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key` (replacing any object there)."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; NotFound if there is none."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size and content type, or None if there is no object."""

    def exists(self, key: str) -> bool:
        """True if an object is stored under `key`."""
        return self.head(key) is not None

    @abc.abstractmethod
    def read_within(self, key: str, max_bytes: int) -> tuple[int, bytes | None]:
        """(size, bytes) of the object, its bytes None (left unread) when it is over `max_bytes`;
        NotFound if there is none. One request (S3: a GET whose length is checked before its
        body is read) rather than a HEAD and a GET."""

    @abc.abstractmethod
    def read_start(self, key: str, length: int) -> tuple[int, bytes]:
        """(size, first bytes): the object's whole size and at most `length` bytes from its
        start; NotFound if there is none. One request (S3: a ranged GET), so a header can be
        checked without fetching the rest."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; nothing happens if there is none."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix` (non-empty); returns how many."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key starting with `prefix`, sorted."""

    @abc.abstractmethod
    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix`, with its size and time, in key order."""

    def presign_upload(
        self,
        key: str,
        *,
        content_type: str,
        max_bytes: int,
        method: UploadMethod = "PUT",
        expires_s: int = 900,
    ) -> PresignedUpload:
        """A credential-free upload of one object of `content_type`, at most `max_bytes`.

        POST binds both conditions on every backend. A PUT URL binds the content type
        everywhere, but the size only on the local backend: S3 can sign an exact length,
        not a maximum, so check `head(key).size` after an S3 PUT upload.
        """
        validate_key(key)
        check_upload_terms(content_type, max_bytes, method)
        check_expiry(expires_s)
        expires_at = expiry_time(expires_s)
        if method == "POST":
            url, fields = self._presign_post(key, content_type, max_bytes, expires_at, expires_s)
            return PresignedUpload(url, "POST", {}, fields, key, expires_at)
        url = self._presign_put(key, content_type, max_bytes, expires_at, expires_s)
        return PresignedUpload(url, "PUT", {"Content-Type": content_type}, {}, key, expires_at)

    def presign_download(self, key: str, *, expires_s: int = 3600) -> str:
        """A credential-free GET URL for the object (not checked to exist)."""
        validate_key(key)
        check_expiry(expires_s)
        return self._presign_get(key, expiry_time(expires_s), expires_s)

    @abc.abstractmethod
    def _presign_put(self, key: str, content_type: str, max_bytes: int, expires_at: datetime, expires_s: int) -> str:
        """The backend's signed PUT URL (terms already checked)."""

    @abc.abstractmethod
    def _presign_post(
        self, key: str, content_type: str, max_bytes: int, expires_at: datetime, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        """The backend's POST form: (url, fields), binding the type and the size range."""

    @abc.abstractmethod
    def _presign_get(self, key: str, expires_at: datetime, expires_s: int) -> str:
        """The backend's signed GET URL."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Return if the store answers; DependencyUnavailable otherwise."""


def require_delete_prefix(prefix: str) -> str:
    """A valid, non-empty prefix for delete_prefix (an empty one would delete everything)."""
    validate_prefix(prefix)
    if not prefix:
        raise BadRequest("delete_prefix needs a non-empty prefix (refusing to delete everything)", field="prefix")
    return prefix
