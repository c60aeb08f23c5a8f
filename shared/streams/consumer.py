"""One route's consumer: the consumer-group protocol around each delivery.

A RouteWorker reads its route's stream as one consumer of the route's group and, for each
entry, counts the attempt, delivers it (shared.streams.delivery), and then acknowledges it,
schedules a retry with backoff, or dead-letters it (shared.streams.failures). It reclaims
entries a dead consumer left pending, keeps the entries it is delivering claimed
(heartbeat), and waits for the function's readiness before reading.

Only deliveries the function answered (or left unanswered past the timeout on an open
connection) count as attempts: while it cannot be reached, the worker waits for its
readiness and spends none. A request out of attempts is dead-lettered (and its job
failed); a result out of attempts is kept and tried again after `backoff_max_s`, never
dropped, since its job would otherwise stay running forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import redis

from shared.config import Settings
from shared.errors import ProteusError
from shared.events import CloudEvent, from_stream_fields
from shared.observability import tracing
from shared.observability.metrics import DELIVERIES, DELIVERY_DURATION
from shared.routing import FAILURE_EVENT_FOR, Route, prefixed
from shared.streams.delivery import Delivery, DeliveryFailed
from shared.streams.failures import MAX_ERROR_CHARS, announce_failure, write_dead_letter

log = logging.getLogger("proteus.runner")

READ_COUNT: Final = 10


@dataclass(frozen=True)
class RunnerConfig:
    """The runner's knobs, from Settings."""

    max_attempts: int
    backoff_s: float
    backoff_max_s: float
    claim_idle_ms: int
    block_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        return cls(
            max_attempts=max(1, settings.runner_max_attempts),
            backoff_s=settings.runner_backoff_s,
            backoff_max_s=settings.runner_backoff_max_s,
            claim_idle_ms=settings.runner_claim_idle_ms,
            block_ms=max(1, settings.runner_block_ms),
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)


def is_result(event: CloudEvent) -> bool:
    """A function's result (progress, completed, failed), as opposed to a job request: a
    request that cannot be delivered fails its job; a result is kept and retried."""
    return event.get_type() not in FAILURE_EVENT_FOR


class RouteWorker:
    """Reads one route's stream as `consumer` in the route's group and delivers each entry."""

    def __init__(
        self,
        client: redis.Redis,
        route: Route,
        delivery: Delivery,
        config: RunnerConfig,
        *,
        prefix: str,
        consumer: str,
        stop: threading.Event,
    ) -> None:
        self.redis = client
        self.route = route
        self.delivery = delivery
        self.config = config
        self.consumer = consumer
        self.stop = stop
        self.prefix = prefix
        self.stream = prefixed(route.stream, prefix)
        self.dead_stream = prefixed(route.dead_letter_stream, prefix)
        self.attempts_key = f"{self.stream}:attempts"
        self.group = route.group
        self._retry_at: dict[str, float] = {}
        self._next_claim = 0.0
        self._needs_probe = True

    # ---- the loop

    def run(self) -> None:
        """Work until `stop` is set; Redis outages are waited out, never fatal."""
        started = False
        while not self.stop.is_set():
            try:
                if not started:
                    self.ensure_group()
                    if not self._wait_until_ready():
                        return
                    self.process_own_pending()
                    started = True
                self.step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("%s: Redis unavailable (%s); retrying", self.stream, exc.__class__.__name__)
                self.stop.wait(self.config.backoff_max_s)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted under us
                    started = False
                    continue
                log.exception("%s: unexpected Redis error", self.stream)
                self.stop.wait(self.config.backoff_max_s)
            except Exception:
                log.exception("%s: unexpected error in the runner loop", self.stream)
                self.stop.wait(self.config.backoff_max_s)

    def step(self) -> None:
        """One pass: due retries, reclaim from dead consumers, then read new entries.

        A function that batches (delivery.max_batch > 1) gets what is waiting in the stream
        right now, up to its limit, as one batch; a lone entry goes at once, alone. Others
        get the entries one at a time, in order.
        """
        if self._needs_probe and not self._wait_until_ready():
            return
        self.process_due_retries()
        if time.monotonic() >= self._next_claim:
            self.reclaim()
            self._next_claim = time.monotonic() + max(self.config.claim_idle_ms / 2000, 0.05)
        block = self._block_ms()
        batch = self.delivery.max_batch
        reply = self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=batch if batch > 1 else READ_COUNT,
            block=block if block > 0 else None,
        )
        for _stream, entries in reply or []:
            if len(entries) > 1 and batch > 1:
                self.process_batch(entries)
                continue
            for entry_id, fields in entries:
                if self.stop.is_set():
                    return
                self.process(entry_id, fields)

    def ensure_group(self) -> None:
        """Create the consumer group at id 0 (so no entry is skipped), with the stream."""
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("%s: created consumer group %s", self.stream, self.group)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def process_own_pending(self) -> None:
        """Entries this consumer read before a restart and never acknowledged."""
        cursor = "0"
        while not self.stop.is_set():
            reply = self.redis.xreadgroup(self.group, self.consumer, {self.stream: cursor}, count=READ_COUNT)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            for entry_id, fields in entries:
                cursor = entry_id
                if fields:
                    self.process(entry_id, fields)
                else:  # deleted from the stream while pending
                    self._forget(entry_id)

    def reclaim(self) -> None:
        """Take over entries another (crashed) consumer left pending too long."""
        cursor = "0-0"
        while not self.stop.is_set():
            reply = self.redis.xautoclaim(
                self.stream, self.group, self.consumer, self.config.claim_idle_ms, cursor, count=READ_COUNT
            )
            cursor, entries = reply[0], reply[1]
            for entry_id in reply[2] if len(reply) > 2 else []:
                self._forget(entry_id)  # deleted from the stream while pending
            for entry_id, fields in entries:
                if entry_id in self._retry_at and self._retry_at[entry_id] > time.monotonic():
                    continue  # ours, waiting for its backoff
                log.info("%s: reclaimed %s from a silent consumer", self.stream, entry_id)
                if fields:
                    self.process(entry_id, fields)
                else:
                    self._forget(entry_id)
            if cursor in ("0-0", b"0-0"):
                return

    def process_due_retries(self) -> None:
        now = time.monotonic()
        for entry_id in [i for i, at in self._retry_at.items() if at <= now]:
            if self.stop.is_set():
                return
            self._retry_at.pop(entry_id, None)
            pending = self.redis.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
            if not pending or pending[0]["consumer"] != self.consumer:
                continue  # acknowledged or taken over meanwhile
            entries = self.redis.xrange(self.stream, entry_id, entry_id)
            if entries:
                self.process(entry_id, entries[0][1])
            else:
                self._forget(entry_id)

    # ---- one entry

    def process(self, entry_id: str, fields: Mapping[str, str]) -> None:
        """Deliver one entry and acknowledge, schedule a retry or dead-letter it."""
        attempt = self._begin(entry_id, fields)
        if attempt is None:
            return
        event, attempts = attempt
        started = time.perf_counter()
        try:
            with (
                _Heartbeat(self, entry_id),
                tracing.span(
                    f"runner deliver {self.route.consumer}",
                    parent=tracing.event_carrier(event),
                    kind="producer",
                    attributes={
                        "cloudevents.event_id": event.get_id(),
                        "messaging.destination.name": self.route.stream,
                    },
                ),
            ):
                self.delivery.deliver(event)
        except DeliveryFailed as failure:
            self._failed(entry_id, fields, event, failure, attempts)
            return
        self._acknowledge(entry_id, event, attempts, started)

    def process_batch(self, entries: Sequence[tuple[str, Mapping[str, str]]]) -> None:
        """Deliver several entries in one call (HTTP: one batched request; pull: one
        handle_batch); each is then acknowledged, retried or dead-lettered on its own."""
        begun: list[tuple[str, Mapping[str, str], CloudEvent, int]] = []
        for entry_id, fields in entries:
            attempt = self._begin(entry_id, fields)
            if attempt is not None:
                begun.append((entry_id, fields, *attempt))
        if not begun:
            return
        started = time.perf_counter()
        with _Heartbeat(self, *(entry_id for entry_id, *_ in begun)):
            outcomes = self.delivery.deliver_batch([event for _, _, event, _ in begun])
        for (entry_id, fields, event, attempts), failure in zip(begun, outcomes):
            if failure is None:
                self._acknowledge(entry_id, event, attempts, started)
            else:
                self._failed(entry_id, fields, event, failure, attempts)

    def _begin(self, entry_id: str, fields: Mapping[str, str]) -> tuple[CloudEvent, int] | None:
        """Parse the entry and count the attempt; None when it went to the dead letters instead."""
        try:
            event = from_stream_fields(fields)
        except ProteusError as exc:
            self.dead_letter(entry_id, fields, f"malformed entry: {exc.message}", status=None, attempts=0)
            return None
        attempts = int(self.redis.hincrby(self.attempts_key, entry_id, 1))
        if attempts > self.config.max_attempts:
            last = self.redis.hget(self.attempts_key, f"{entry_id}#error") or "an attempt that never finished"
            if is_result(event):  # never dropped: a fresh round of attempts
                log.error(
                    "%s: %s (%s) had no attempts left (last error: %s); trying it again",
                    self.stream,
                    entry_id,
                    event.get_type(),
                    last,
                )
                self.redis.hset(self.attempts_key, entry_id, 1)
                return event, 1
            self.dead_letter(entry_id, fields, f"no attempts left; last error: {last}", None, attempts - 1)
            return None
        return event, attempts

    def _acknowledge(self, entry_id: str, event: CloudEvent, attempts: int, started: float) -> None:
        self.redis.pipeline(transaction=True).xack(self.stream, self.group, entry_id).hdel(
            self.attempts_key, entry_id, f"{entry_id}#error"
        ).execute()
        self._retry_at.pop(entry_id, None)
        DELIVERIES.labels(self.route.consumer, "ok").inc()
        DELIVERY_DURATION.labels(self.route.consumer).observe(time.perf_counter() - started)
        log.info(
            "delivered",
            extra={
                "fields": {
                    "stream": self.stream,
                    "entry": entry_id,
                    "type": event.get_type(),
                    "id": event.get_id(),
                    "job_id": event.get_subject(),
                    "trace_id": tracing.trace_id_of(tracing.event_carrier(event)),
                    "attempt": attempts,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                }
            },
        )

    def _failed(
        self, entry_id: str, fields: Mapping[str, str], event: CloudEvent, failure: DeliveryFailed, attempts: int
    ) -> None:
        if failure.unreachable:
            DELIVERIES.labels(self.route.consumer, "unreachable").inc()
            # The function never answered: not an attempt. Wait for its readiness, then retry.
            self._needs_probe = True
            self.redis.hincrby(self.attempts_key, entry_id, -1)
            self._retry_at[entry_id] = time.monotonic()
            log.warning(
                "%s (%s) not delivered, attempt not counted; waiting for %s to be ready: %s",
                entry_id,
                event.get_type(),
                self.route.consumer,
                failure.message,
            )
            return
        if failure.retryable and attempts >= self.config.max_attempts and is_result(event):
            # A result is never dropped (its job would stay running): try again later, afresh.
            self.redis.pipeline(transaction=True).hset(self.attempts_key, entry_id, 0).hset(
                self.attempts_key, f"{entry_id}#error", failure.message[:MAX_ERROR_CHARS]
            ).execute()
            self._retry_at[entry_id] = time.monotonic() + self.config.backoff_max_s
            DELIVERIES.labels(self.route.consumer, "retry").inc()
            log.error(
                "%s (%s) failed %d time(s), keeping it and trying again in %.0fs: %s",
                entry_id,
                event.get_type(),
                attempts,
                self.config.backoff_max_s,
                failure.message,
            )
            return
        if not failure.retryable or attempts >= self.config.max_attempts:
            self.dead_letter(entry_id, fields, failure.message, failure.status, attempts)
            return
        DELIVERIES.labels(self.route.consumer, "retry").inc()
        delay = self.config.backoff(attempts)
        self._retry_at[entry_id] = time.monotonic() + delay
        self.redis.hset(self.attempts_key, f"{entry_id}#error", failure.message[:MAX_ERROR_CHARS])
        log.warning(
            "attempt %d/%d of %s (%s) failed, retrying in %.2fs: %s",
            attempts,
            self.config.max_attempts,
            entry_id,
            event.get_type(),
            delay,
            failure.message,
        )

    def dead_letter(
        self, entry_id: str, fields: Mapping[str, str], error: str, status: int | None, attempts: int
    ) -> None:
        """Move an entry to the dead-letter stream (atomically with its XACK) and tell its owner."""
        letter = write_dead_letter(
            self.redis,
            self.stream,
            self.group,
            self.consumer,
            entry_id,
            fields,
            error=error,
            status=status,
            attempts=attempts,
            dead_stream=self.dead_stream,
            attempts_key=self.attempts_key,
        )
        self._retry_at.pop(entry_id, None)
        DELIVERIES.labels(self.route.consumer, "dead_letter").inc()
        log.error(
            "dead-lettered %s (%s) after %d attempt(s) to %s: %s",
            entry_id,
            letter["type"] or "?",
            attempts,
            self.dead_stream,
            error,
        )
        announce_failure(self.redis, fields, status, attempts, prefix=self.prefix)

    def _forget(self, entry_id: str) -> None:
        """An entry that no longer exists: drop it from the PEL and the counters."""
        self.redis.pipeline(transaction=True).xack(self.stream, self.group, entry_id).hdel(
            self.attempts_key, entry_id, f"{entry_id}#error"
        ).execute()
        self._retry_at.pop(entry_id, None)

    # ---- waiting

    def _block_ms(self) -> int:
        deadline = min([*self._retry_at.values(), self._next_claim], default=self._next_claim)
        until = int((deadline - time.monotonic()) * 1000)
        return max(0, min(self.config.block_ms, until))

    def _wait_until_ready(self) -> bool:
        """Block until the function is ready (False if stopped first)."""
        if self.delivery.ready():
            self._needs_probe = False
            return True
        log.warning("%s: function for %s is not ready; waiting", self.stream, self.route.consumer)
        delay = max(self.config.backoff_s, 0.01)
        while not self.stop.wait(delay):
            if self.delivery.ready():
                log.info("%s: function for %s is ready", self.stream, self.route.consumer)
                self._needs_probe = False
                return True
            delay = min(delay * 2, max(self.config.backoff_max_s, 0.01))
        return False


class _Heartbeat:
    """Keeps the idle time of the entries being delivered low, so nobody reclaims them."""

    def __init__(self, worker: RouteWorker, *entry_ids: str) -> None:
        self.worker = worker
        self.entry_ids = list(entry_ids)
        self.interval = max(worker.config.claim_idle_ms / 3000, 0.01)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{entry_ids[0]}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _beat(self) -> None:
        w = self.worker
        while not self.done.wait(self.interval):
            try:
                w.redis.xclaim(w.stream, w.group, w.consumer, 0, self.entry_ids, justid=True)
            except redis.RedisError as exc:
                log.warning("%s: heartbeat for %s failed: %r", w.stream, ", ".join(self.entry_ids), exc)
