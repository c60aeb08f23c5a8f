"""The upload-signing function: `upload.requested` in, `upload.signed` out (synchronous)."""

from __future__ import annotations

from typing import Any

from cloudevents.core.base import BaseCloudEvent

from shared import event_types as t
from shared.config import Settings
from shared.contracts.events import UploadRequested, UploadSigned
from shared.events import make_event
from shared.storage import storage_from_settings
from shared.storage.base import Storage
from shared.uploads import sign_upload

SOURCE = "/proteus/functions/upload-signing"


class UploadSigningFunction:
    """Checks file name, type and declared size; presigns an upload under the user's prefix."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadSigningFunction:
        return cls(settings, storage_from_settings(settings))

    def readiness(self) -> dict[str, Any]:
        self.storage.ping()
        return {"ready": True}

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent:
        request = UploadRequested.parse(event.get_data())
        signed = sign_upload(
            self.storage,
            self.settings,
            user_id=request.user_id,
            file_name=request.file_name,
            content_type=request.content_type,
            size=request.size,
            method=request.method,
        )
        reply = UploadSigned(
            key=signed.key,
            url=signed.url,
            method=signed.method,
            headers=dict(signed.headers),
            fields=dict(signed.fields),
            expires_at=signed.expires_at.isoformat().replace("+00:00", "Z"),
        )
        return make_event(t.UPLOAD_SIGNED, reply.to_data(), source=SOURCE, subject=signed.key, user_id=request.user_id)
