"""THE routing table: which Redis stream carries each event type, and which function consumes it.

The local stream runner, the Knative event sources (knative/), the KEDA ScaledObject and the
docs all follow this one table; `tests/knative` fails if they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared import event_types as t


@dataclass(frozen=True)
class Route:
    """One stream, the event types written to it, and the function that consumes it."""

    stream: str
    consumer: str
    event_types: tuple[str, ...]

    @property
    def group(self) -> str:
        """The consumer-group name used on the stream (one group per consuming function)."""
        return self.consumer

    @property
    def dead_letter_stream(self) -> str:
        """Where entries go after their last failed attempt, with their error."""
        return f"{self.stream}:dead"


ROUTES: Final[tuple[Route, ...]] = (
    Route("proteus:tryon", "enqueue", (t.TRYON_REQUESTED,)),
    Route("proteus:weave", "weave", (t.WEAVE_REQUESTED,)),
    Route("proteus:tailor", "tailor", (t.TAILOR_REQUESTED,)),
    Route(
        "proteus:results",
        "notify",
        (t.WEAVE_PROGRESS, t.WEAVE_COMPLETED, t.WEAVE_FAILED, t.TAILOR_COMPLETED, t.TAILOR_FAILED, t.JOB_CANCELED),
    ),
    # The public API's webhooks: one entry per finished job that has a webhook URL.
    Route("proteus:webhooks", "webhooks", (t.WEBHOOK_REQUESTED,)),
)

# The user notification is not a route: notify PUBLISHes it on this pub/sub channel (the
# original system's name, which its clients know) and appends it to a capped stream from
# which the gateway replays what a reconnecting WebSocket missed.
NOTIFICATION_CHANNEL: Final = "events:job_done"
NOTIFICATION_STREAM: Final = "proteus:notifications"
NOTIFICATION_STREAM_MAXLEN: Final = 10_000

# When a request is dead-lettered, the runner publishes this failure event for its job, so
# the person is told (through notify) instead of watching a job that never ends.
FAILURE_EVENT_FOR: Final[dict[str, str]] = {
    t.TRYON_REQUESTED: t.WEAVE_FAILED,
    t.WEAVE_REQUESTED: t.WEAVE_FAILED,
    t.TAILOR_REQUESTED: t.TAILOR_FAILED,
}

# Functions that are called synchronously over HTTP, never through a stream.
SYNCHRONOUS_FUNCTIONS: Final[tuple[str, ...]] = ("upload_signing",)

# Every function and its default local port (`make run`); the gateway is on 8000.
FUNCTION_PORTS: Final[dict[str, int]] = {
    "upload_signing": 8101,
    "enqueue": 8102,
    "weave": 8103,
    "tailor": 8104,
    "notify": 8105,
    "webhooks": 8107,
}

_BY_TYPE: Final[dict[str, Route]] = {et: r for r in ROUTES for et in r.event_types}


def route_for(event_type: str) -> Route:
    """The route that carries `event_type`; KeyError naming the type if none does."""
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise KeyError(f"no stream carries event type {event_type!r}") from None


def route_for_consumer(consumer: str) -> Route:
    """The route a function consumes; KeyError naming the function if none."""
    for route in ROUTES:
        if route.consumer == consumer:
            return route
    raise KeyError(f"no stream is consumed by function {consumer!r}")


def prefixed(name: str, prefix: str) -> str:
    """A stream or channel name with the deployment's Redis key prefix applied."""
    return f"{prefix}{name}"
