"""S3-compatible storage (AWS, Linode Object Storage, MinIO) through boto3.

`endpoint_url` is how this process reaches the store; `public_endpoint_url`, when set, is
the host written into presigned URLs, for browsers outside the cluster. Signatures are
SigV4. Checksums are sent only where the API requires them, as S3-compatible services
other than AWS may refuse the newer flexible-checksum headers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import DependencyUnavailable, NotFound, ProteusError, TransientError
from shared.storage.base import (
    ObjectInfo,
    Storage,
    StoredObject,
    require_delete_prefix,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shared.config import Settings

_MISSING = {"404", "NoSuchKey", "NotFound"}
_BATCH = 1000  # DeleteObjects' limit


class S3Storage(Storage):
    """One bucket of an S3-compatible store."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
    ) -> None:
        self.bucket = bucket
        self.region = region
        config = Config(
            region_name=region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
        )
        self.client = session.client("s3", endpoint_url=endpoint_url, config=config)
        public = public_endpoint_url or endpoint_url
        self._presigner = (
            self.client if public == endpoint_url else session.client("s3", endpoint_url=public, config=config)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        return cls(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            public_endpoint_url=settings.s3_public_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )

    # -- objects -----------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str) -> None:
        validate_key(key)
        with self._errors(key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), ContentType=content_type)

    def get(self, key: str) -> bytes:
        validate_key(key)
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()

    def read_within(self, key: str, max_bytes: int) -> tuple[int, bytes | None]:
        validate_key(key)
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            size = int(response["ContentLength"])
            if size > max_bytes:
                body.close()  # the connection is dropped rather than the body read
                return size, None
            return size, body.read()

    def read_start(self, key: str, length: int) -> tuple[int, bytes]:
        validate_key(key)
        try:
            with self._errors(key):
                response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")
        except TransientError as exc:
            if exc.details.get("s3_code") == "InvalidRange":  # an empty object has no byte 0
                return 0, b""
            raise
        with self._errors(key):
            data = response["Body"].read()
        # "bytes 0-99/12345" on a 206; a store that ignores the range answers the whole object.
        whole = str(response.get("ContentRange") or "").rpartition("/")[2]
        return (int(whole) if whole.isdigit() else len(data)), data[:length]

    def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            with self._errors(key):
                response = self.client.head_object(Bucket=self.bucket, Key=key)
        except NotFound:
            return None
        return ObjectInfo(
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType") or "application/octet-stream",
        )

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        keys: list[str] = []
        with self._errors(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", ()))
        return sorted(keys)

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        validate_prefix(prefix)
        with self._errors(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    modified = item["LastModified"]
                    yield StoredObject(item["Key"], int(item["Size"]), modified.astimezone(UTC))

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(require_delete_prefix(prefix))
        for start in range(0, len(keys), _BATCH):
            batch = [{"Key": k} for k in keys[start : start + _BATCH]]
            with self._errors(prefix):
                response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if errors := response.get("Errors"):
                first = errors[0]
                raise TransientError(
                    f"could not delete {len(errors)} objects under {prefix!r}, "
                    f"e.g. {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )
        return len(keys)

    # -- presigning --------------------------------------------------------------------

    def _presign_put(self, key: str, content_type: str, max_bytes: int, expires_at: datetime, expires_s: int) -> str:
        with self._errors(key):
            return self._presigner.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=expires_s,
                HttpMethod="PUT",
            )

    def _presign_post(
        self, key: str, content_type: str, max_bytes: int, expires_at: datetime, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        with self._errors(key):
            post = self._presigner.generate_presigned_post(
                self.bucket,
                key,
                Fields={"Content-Type": content_type},
                Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
                ExpiresIn=expires_s,
            )
        return post["url"], dict(post["fields"])

    def _presign_get(self, key: str, expires_at: datetime, expires_s: int) -> str:
        with self._errors(key):
            return self._presigner.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
            )

    # -- the bucket --------------------------------------------------------------------

    def ping(self) -> None:
        with self._errors(self.bucket, on_bucket=True):
            self.client.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self) -> bool:
        """Create the bucket if it is missing (dev and compose); True if it was created."""
        try:
            self.ping()
            return False
        except DependencyUnavailable as exc:
            if exc.details.get("s3_code") not in _MISSING | {"NoSuchBucket"}:
                raise
        extra: dict[str, Any] = {}
        if self.region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            with self._errors(self.bucket, on_bucket=True):
                self.client.create_bucket(Bucket=self.bucket, **extra)
        except TransientError as exc:
            if exc.details.get("s3_code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return False
            raise
        return True

    # -- errors ------------------------------------------------------------------------

    def _errors(self, what: str, *, on_bucket: bool = False) -> _S3Errors:
        return _S3Errors(self.bucket, what, on_bucket)


class _S3Errors:
    """Turns botocore exceptions into the project's: missing -> NotFound, else 5xx."""

    def __init__(self, bucket: str, what: str, on_bucket: bool) -> None:
        self.bucket, self.what, self.on_bucket = bucket, what, on_bucket

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, ProteusError):
            return
        if isinstance(exc, BotoCoreError):
            raise DependencyUnavailable(f"S3 bucket {self.bucket!r} is unreachable ({exc})") from exc
        if isinstance(exc, ClientError):
            raise _client_error(exc, self.bucket, self.what, self.on_bucket) from exc


def _client_error(exc: ClientError, bucket: str, what: str, on_bucket: bool) -> ProteusError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    detail = f"{code or status}: {error.get('Message') or exc}"
    if code in _MISSING and not on_bucket:
        return NotFound(f"no object stored under key {what!r}", field="key")
    if code in ("NoSuchBucket", *_MISSING):
        return DependencyUnavailable(f"S3 bucket {bucket!r} does not exist ({detail})", s3_code=code)
    if status >= 500 or status in (401, 403) or code in ("SlowDown", "RequestTimeout"):
        return DependencyUnavailable(f"S3 bucket {bucket!r} refused {what!r} ({detail})", s3_code=code)
    return TransientError(f"S3 request on {what!r} in bucket {bucket!r} failed ({detail})", s3_code=code)
