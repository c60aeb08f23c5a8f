"""Object storage: one interface (`base.Storage`), one small module per backend.

`storage_from_settings(settings)` picks the backend named by `STORAGE_BACKEND`.
"""

from __future__ import annotations

from shared.config import ConfigError, Settings
from shared.storage.base import ObjectInfo, PresignedUpload, Storage

__all__ = ["ObjectInfo", "PresignedUpload", "Storage", "storage_from_settings"]


def storage_from_settings(settings: Settings) -> Storage:
    """The configured backend: local disk (URLs signed with the JWT secret) or S3."""
    if settings.storage_backend == "s3":
        from shared.storage.s3 import S3Storage  # boto3 only where S3 is used

        return S3Storage.from_settings(settings)
    if settings.storage_backend != "local":
        raise ConfigError(
            f"STORAGE_BACKEND must be local or s3, got {settings.storage_backend!r}", field="STORAGE_BACKEND"
        )
    if not settings.jwt_secret:
        raise ConfigError(
            "JWT_SECRET is needed to sign local storage URLs (Settings.from_env fills it in)", field="JWT_SECRET"
        )
    from shared.storage.local import LocalStorage

    return LocalStorage(settings.storage_dir, public_url=settings.public_url, secret=settings.jwt_secret)
