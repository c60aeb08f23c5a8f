"""The Redis stream commands the runner uses, with their replies typed.

redis-py types each reply for both protocols and both decode modes (bytes or str, RESP2
lists or RESP3 dicts). Proteus's clients speak RESP2 with `decode_responses=True`
(shared/redis_client.py; the runner refuses another client), so each reply is read here,
once, as text in RESP2's shape, and the rest of shared/streams works with plain types.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import cast

import redis
from redis.typing import EncodableT, FieldT, StreamIdT

log = logging.getLogger("proteus.runner")

Fields = dict[str, str]
Entry = tuple[str, Fields]
#: An entry of a pending list: its fields are empty (None) when it was deleted from the stream meanwhile.
PendingEntry = tuple[str, Fields | None]


def add(client: redis.Redis, stream: str, fields: Mapping[str, str], *, maxlen: int) -> str:
    """XADD with an approximate MAXLEN; the new entry's id (on a pipeline: queued, see execute)."""
    values: dict[FieldT, EncodableT] = {key: value for key, value in fields.items()}
    return cast(str, client.xadd(stream, values, maxlen=maxlen, approximate=True))


def read_group(
    client: redis.Redis, stream: str, group: str, consumer: str, cursor: str, *, count: int, block: int | None = None
) -> list[PendingEntry]:
    """XREADGROUP of one stream: new entries (cursor ">") or this consumer's pending ones."""
    reply = cast(
        "list[tuple[str, list[PendingEntry]]] | None",
        client.xreadgroup(group, consumer, {stream: cursor}, count=count, block=block),
    )
    return [entry for _stream, entries in reply or [] for entry in entries]


def read_new(
    client: redis.Redis, stream: str, group: str, consumer: str, *, count: int, block: int | None
) -> list[Entry]:
    """XREADGROUP of the entries nobody has read yet (cursor ">"; they all have fields)."""
    return cast("list[Entry]", read_group(client, stream, group, consumer, ">", count=count, block=block))


def autoclaim(
    client: redis.Redis, stream: str, group: str, consumer: str, min_idle_ms: int, cursor: str, *, count: int
) -> tuple[str, list[PendingEntry], list[str]]:
    """XAUTOCLAIM: (next cursor, claimed entries, ids deleted from the stream meanwhile)."""
    reply = cast(
        "list[str | list[PendingEntry] | list[str]]",
        client.xautoclaim(stream, group, consumer, min_idle_ms, cursor, count=count),
    )
    deleted = cast("list[str]", reply[2]) if len(reply) > 2 else []
    return cast(str, reply[0]), cast("list[PendingEntry]", reply[1]), deleted


def pending_consumer(client: redis.Redis, stream: str, group: str, entry_id: str) -> str | None:
    """The consumer an entry is pending with, or None when nobody holds it."""
    pending = cast("list[dict[str, str]]", client.xpending_range(stream, group, entry_id, entry_id, 1))
    return pending[0]["consumer"] if pending else None


def read_range(
    client: redis.Redis, stream: str, first: str = "-", last: str = "+", count: int | None = None
) -> list[Entry]:
    """XRANGE: the entries from `first` to `last` (inclusive), oldest first."""
    return cast("list[Entry]", client.xrange(stream, first, last, count=count))


def get_text(client: redis.Redis, key: str, field: str) -> str | None:
    """HGET: the text stored under `field` of hash `key`, or None."""
    return cast("str | None", client.hget(key, field))


def claim_ids(client: redis.Redis, stream: str, group: str, consumer: str, entry_ids: Iterable[str]) -> None:
    """XCLAIM ... JUSTID with no idle floor: resets the entries' idle time (a heartbeat)."""
    ids: list[StreamIdT] = list(entry_ids)
    client.xclaim(stream, group, consumer, 0, ids, justid=True)


@contextmanager
def counting_ahead(client: redis.Redis, attempts_key: str, entry_ids: Sequence[str]) -> Iterator[None]:
    """Count an attempt of each of these new entries (HINCRBY) while the block delivers them.

    The commands reach Redis before the block runs and their replies are read after it: the
    count is on record as before (a crash mid-delivery still counts) without waiting a round
    trip before every delivery. An entry read as new was never attempted, so each count is 1.
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    answered = False
    try:
        connection.send_packed_command(
            connection.pack_commands([("HINCRBY", attempts_key, entry_id, 1) for entry_id in entry_ids])
        )
        try:
            yield
        finally:
            counts = [connection.read_response() for _ in entry_ids]
            answered = True
            if any(count != 1 for count in counts):
                log.warning("%s: new entries %s had been counted before: %s", attempts_key, entry_ids, counts)
    finally:
        if not answered:
            connection.disconnect()  # replies may still be on their way: never reuse it
        pool.release(connection)


def forget(client: redis.Redis, stream: str, group: str, attempts_key: str, entry_ids: Sequence[str]) -> None:
    """XACK the entries and drop their attempt counters and last errors, in one transaction."""
    pipe = client.pipeline(transaction=True)
    pipe.xack(stream, group, *entry_ids)
    pipe.hdel(attempts_key, *(key for entry_id in entry_ids for key in (entry_id, f"{entry_id}#error")))
    pipe.execute()


class Heartbeat:
    """Keeps the idle time of the entries being delivered low, so nobody reclaims them: one
    thread per route worker (started at the first delivery, stopped with `stop`) claims
    whatever is in flight again every `interval` seconds; `track(ids)` marks ids in flight
    for the length of a block. A thread started and joined per delivery cost both on every
    hop of every job."""

    def __init__(
        self, client: redis.Redis, stream: str, group: str, consumer: str, interval: float, stop: threading.Event
    ) -> None:
        self.client, self.stream, self.group, self.consumer = client, stream, group, consumer
        self.interval = interval
        self.stop = stop
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}  # entry id -> deliveries of it now in progress
        self._thread: threading.Thread | None = None

    @contextmanager
    def track(self, entry_ids: Sequence[str]) -> Iterator[None]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.stream}", daemon=True)
                self._thread.start()
            for entry_id in entry_ids:
                self._in_flight[entry_id] = self._in_flight.get(entry_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                for entry_id in entry_ids:
                    left = self._in_flight.pop(entry_id, 1) - 1
                    if left > 0:
                        self._in_flight[entry_id] = left

    def _beat(self) -> None:
        """Beat until stopped; once stopped, on while a delivery is still finishing."""
        while True:
            if self.stop.is_set():
                time.sleep(self.interval)
            else:
                self.stop.wait(self.interval)
            with self._lock:
                entry_ids = list(self._in_flight)
                if not entry_ids and self.stop.is_set():
                    self._thread = None  # a later delivery starts another
                    return
            if not entry_ids:
                continue
            try:
                claim_ids(self.client, self.stream, self.group, self.consumer, entry_ids)
            except redis.RedisError as exc:
                log.warning("%s: heartbeat for %s failed: %r", self.stream, ", ".join(entry_ids), exc)
