"""publish(): validate an event and append it to the stream the routing table names."""

from __future__ import annotations

import weakref
from typing import Final

import redis

from shared.errors import BadRequest, DependencyUnavailable
from shared.events import CloudEvent, to_stream_fields, validate_event
from shared.routing import prefixed, route_for
from shared.streams import commands

# A generous cap (MAXLEN ~): consumers ack within seconds, so trimming only ever drops
# entries that were handled long ago.
STREAM_MAXLEN: Final = 100_000

# Events this process validated and published: a function that replies with the event it
# published (enqueue, weave) is not validated a second time by the runtime.
_published: weakref.WeakSet[CloudEvent] = weakref.WeakSet()


def was_published(event: CloudEvent) -> bool:
    """Whether `event` (this very object) was validated and published by publish()."""
    return event in _published


def stream_for(event_type: str, prefix: str = "") -> str:
    """The (prefixed) stream that carries `event_type`; BadRequest if none does."""
    try:
        return prefixed(route_for(event_type).stream, prefix)
    except KeyError:
        raise BadRequest(
            f"event type {event_type!r} is not carried by any stream (see shared/routing.py)", field="type"
        ) from None


def publish(client: redis.Redis, event: CloudEvent, *, prefix: str = "", maxlen: int = STREAM_MAXLEN) -> str:
    """Validate `event`, XADD it to its route's stream and return the entry id.

    Raises InvalidEvent (400) for a bad event, BadRequest for a type no stream carries and
    DependencyUnavailable (503) when Redis does not answer.

    Example:
        >>> publish(redis_from_settings(settings), event, prefix=settings.redis_key_prefix)
        '1767225600000-0'
    """
    validate_event(event)
    stream = stream_for(event.get_type(), prefix)
    try:
        entry_id = commands.add(client, stream, to_stream_fields(event), maxlen=maxlen)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise DependencyUnavailable(
            f"Redis is unavailable: cannot publish {event.get_type()} to {stream} ({exc.__class__.__name__})"
        ) from exc
    _published.add(event)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
