"""The data of every Proteus CloudEvent, one model per type (`EVENT_MODELS`).

cloudevents-schemas/<type>.json is generated from these (`make schemas`); events are
validated against those files on publish and on receipt (shared.events.validate_event),
and a stage reads its event as the typed model: `WeaveRequested.parse(event_data(event))`.

One module per concern: `base` (what every event shares, the one failure shape), `upload`,
`weave` (the try-on path), `tailor` and `notify` (what reaches people).
"""

from __future__ import annotations

from typing import Final

from shared import event_types as t
from shared.contracts.events.base import EventData, JobEvent, StageFailed
from shared.contracts.events.notify import JobCanceled, UserNotification, WebhookRequested
from shared.contracts.events.tailor import TailorCompleted, TailorFailed, TailorRequested, ThenWeave
from shared.contracts.events.upload import UploadRequested, UploadSigned
from shared.contracts.events.weave import TryonRequested, WeaveCompleted, WeaveFailed, WeaveProgress, WeaveRequested
from shared.contracts.examples import EXAMPLES
from shared.contracts.tryon import TryOnOptions

EVENT_MODELS: Final[dict[str, type[EventData]]] = {
    model.event_type: model
    for model in (
        UploadRequested,
        UploadSigned,
        TryonRequested,
        WeaveRequested,
        WeaveProgress,
        WeaveCompleted,
        WeaveFailed,
        TailorRequested,
        TailorCompleted,
        TailorFailed,
        UserNotification,
        JobCanceled,
        WebhookRequested,
    )
}
assert set(EVENT_MODELS) == set(t.ALL_TYPES), "every event type needs its model"
assert set(EXAMPLES) == set(t.ALL_TYPES), "every event type needs its examples"

__all__ = [
    "EVENT_MODELS",
    "EventData",
    "JobCanceled",
    "JobEvent",
    "StageFailed",
    "TailorCompleted",
    "TailorFailed",
    "TailorRequested",
    "ThenWeave",
    "TryOnOptions",
    "TryonRequested",
    "UploadRequested",
    "UploadSigned",
    "UserNotification",
    "WeaveCompleted",
    "WeaveFailed",
    "WeaveProgress",
    "WeaveRequested",
    "WebhookRequested",
]
