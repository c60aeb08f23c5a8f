"""Every CloudEvent type Proteus produces or consumes (reverse-DNS names).

The schema of each lives in `cloudevents-schemas/<type>.json`.
"""

from __future__ import annotations

from typing import Final

UPLOAD_REQUESTED: Final = "dev.proteus.upload.requested"
UPLOAD_SIGNED: Final = "dev.proteus.upload.signed"
TRYON_REQUESTED: Final = "dev.proteus.tryon.requested"
WEAVE_REQUESTED: Final = "dev.proteus.weave.requested"
WEAVE_PROGRESS: Final = "dev.proteus.weave.progress"
WEAVE_COMPLETED: Final = "dev.proteus.weave.completed"
WEAVE_FAILED: Final = "dev.proteus.weave.failed"
TAILOR_REQUESTED: Final = "dev.proteus.tailor.requested"
TAILOR_COMPLETED: Final = "dev.proteus.tailor.completed"
TAILOR_FAILED: Final = "dev.proteus.tailor.failed"
USER_NOTIFICATION: Final = "dev.proteus.user.notification"
JOB_CANCELED: Final = "dev.proteus.job.canceled"
WEBHOOK_REQUESTED: Final = "dev.proteus.webhook.requested"

ALL_TYPES: Final[tuple[str, ...]] = (
    UPLOAD_REQUESTED,
    UPLOAD_SIGNED,
    TRYON_REQUESTED,
    WEAVE_REQUESTED,
    WEAVE_PROGRESS,
    WEAVE_COMPLETED,
    WEAVE_FAILED,
    TAILOR_REQUESTED,
    TAILOR_COMPLETED,
    TAILOR_FAILED,
    USER_NOTIFICATION,
    JOB_CANCELED,
    WEBHOOK_REQUESTED,
)
