"""What happens to an entry that will not be delivered: its dead letter and the owner's notice.

The dead letter keeps the entry (its fields, error, HTTP status, attempts and original id)
on the route's dead-letter stream for `python -m shared.streams.deadletters` to list or
replay. When the entry was a job request, the route's failure event is published so the
job fails visibly instead of staying queued.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import redis

from shared.events import from_stream_fields, make_event
from shared.routing import FAILURE_EVENT_FOR
from shared.streams import commands
from shared.streams.publish import STREAM_MAXLEN, publish

log = logging.getLogger("proteus.runner")

MAX_ERROR_CHARS: Final = 2000


def write_dead_letter(
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    entry_id: str,
    fields: Mapping[str, str],
    *,
    error: str,
    status: int | None,
    attempts: int,
    dead_stream: str,
    attempts_key: str,
) -> dict[str, str]:
    """Append the letter to `dead_stream` and acknowledge the entry, in one transaction."""
    letter = {
        "type": str(fields.get("type", "")),
        "error": error[:MAX_ERROR_CHARS],
        "status": "" if status is None else str(status),
        "attempts": str(attempts),
        "original_id": entry_id,
        "stream": stream,
        "group": group,
        "consumer": consumer,
        "failed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fields": json.dumps(dict(fields)),
    }
    pipe = client.pipeline(transaction=True)
    commands.add(pipe, dead_stream, letter, maxlen=STREAM_MAXLEN)
    pipe.xack(stream, group, entry_id)
    pipe.hdel(attempts_key, entry_id, f"{entry_id}#error")
    pipe.execute()
    return letter


def announce_failure(
    client: redis.Redis, fields: Mapping[str, str], status: int | None, attempts: int, *, prefix: str
) -> None:
    """Publish the failure event of a dead-lettered job request, so its owner is told."""
    try:
        event = from_stream_fields(fields)
        failure_type = FAILURE_EVENT_FOR.get(event.get_type())
        data = event.get_data()
        if failure_type is None or not isinstance(data, dict) or not data.get("job_id"):
            return
        if status is not None and 400 <= status < 500:
            error = "The request was refused as invalid, so it was not processed."
        else:
            error = f"Processing failed {attempts} time(s) in a row; please try again later."
        body: dict[str, Any] = {
            "job_id": data["job_id"],
            "user_id": data["user_id"],
            "vton_id": data.get("vton_id"),
            "error": error,
            "code": "dead_lettered",
            "retryable": False,
        }
        publish(client, make_event(failure_type, body, source="/proteus/runner"), prefix=prefix)
    except Exception:
        log.exception("could not announce the failure of a dead-lettered entry")
