"""Redis Streams: publish(), the stream runner and the dead-letter CLI.

An entry on a stream has two fields: `event` (the structured-mode JSON of one CloudEvent)
and `type` (its type, for people reading the stream). See shared.events.to_stream_fields.
"""

from shared.streams.publish import publish, stream_for

__all__ = ["publish", "stream_for"]
