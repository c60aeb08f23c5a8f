"""Build, validate and (de)serialise Proteus CloudEvents.

Every event is a CloudEvents 1.0 `cloudevents.core.v1.event.CloudEvent` whose data is a JSON
object described by `cloudevents-schemas/<type>.json`. One module per job, as in the
CloudEvents SDK:

- `event`: `make_event`, `event_data`, `source_for`, parsing one structured-mode event;
- `validation`: `validate_event` against the schemas (`formats`: their format checks);
- `errors`: `InvalidEvent` and its kinds;
- bindings: `http` (binary and structured mode), `batch` (HTTP batched mode and its
  per-event reply), `redis_stream` (a stream entry: the field
  `event` holds the structured-mode JSON, `type` repeats the type for people) and `knative`
  (RedisStreamSource's wrapper, which `from_http` undoes so a function works the same
  behind the local runner or behind Knative).

Example:
    >>> event = make_event(TRYON_REQUESTED, data, source=source_for("gateway"))
    >>> validate_event(event)
    >>> headers, body = to_http_binary(event)
"""

from cloudevents.core.v1.event import CloudEvent

from shared.events.batch import (
    BatchOutcome,
    batch_reply,
    from_http_batch,
    is_batch,
    read_batch_reply,
    to_http_batch,
)
from shared.events.errors import (
    InvalidEvent,
    InvalidEventData,
    UnknownEventType,
    type_name,
)
from shared.events.event import (
    JSON_MEDIA_TYPE,
    USER_ID_EXTENSION,
    event_data,
    make_event,
    source_for,
)
from shared.events.http import (
    BATCH_MEDIA_TYPE,
    STRUCTURED_MEDIA_TYPE,
    from_http,
    to_http_binary,
    to_http_structured,
)
from shared.events.knative import REDIS_STREAM_SOURCE_TYPE, unwrap_redis_stream_source
from shared.events.redis_stream import from_stream_fields, to_stream_fields
from shared.events.validation import (
    SCHEMA_DIR,
    load_schemas,
    schema_for,
    validate_event,
)

__all__ = [
    "BATCH_MEDIA_TYPE",
    "JSON_MEDIA_TYPE",
    "REDIS_STREAM_SOURCE_TYPE",
    "SCHEMA_DIR",
    "STRUCTURED_MEDIA_TYPE",
    "USER_ID_EXTENSION",
    "BatchOutcome",
    "CloudEvent",
    "InvalidEvent",
    "InvalidEventData",
    "UnknownEventType",
    "batch_reply",
    "event_data",
    "from_http",
    "from_http_batch",
    "from_stream_fields",
    "is_batch",
    "load_schemas",
    "make_event",
    "read_batch_reply",
    "schema_for",
    "source_for",
    "to_http_batch",
    "to_http_binary",
    "to_http_structured",
    "to_stream_fields",
    "type_name",
    "unwrap_redis_stream_source",
    "validate_event",
]
