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
from contextlib import AbstractContextManager, nullcontext
from typing import Final

import redis

from shared.errors import ProteusError
from shared.events import CloudEvent, from_stream_fields
from shared.observability import tracing
from shared.observability.metrics import DELIVERIES, DELIVERY_DURATION
from shared.routing import Route, prefixed
from shared.streams import commands
from shared.streams.delivery import Delivery, DeliveryFailed
from shared.streams.failures import MAX_ERROR_CHARS, announce_failure, write_dead_letter
from shared.streams.policy import RunnerConfig, is_result

log = logging.getLogger("proteus.runner")

READ_COUNT: Final = 10


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
        interval = max(config.claim_idle_ms / 3000, 0.01)
        self._beats = commands.Heartbeat(client, self.stream, self.group, consumer, interval, stop)

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
        entries = commands.read_new(
            self.redis,
            self.stream,
            self.group,
            self.consumer,
            count=batch if batch > 1 else READ_COUNT,
            block=block if block > 0 else None,
        )
        if len(entries) > 1 and batch > 1:
            self.process_batch(entries, new=True)
            return
        for entry_id, fields in entries:
            if self.stop.is_set():
                return
            self.process(entry_id, fields, new=True)

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
            entries = commands.read_group(self.redis, self.stream, self.group, self.consumer, cursor, count=READ_COUNT)
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
            cursor, entries, deleted = commands.autoclaim(
                self.redis, self.stream, self.group, self.consumer, self.config.claim_idle_ms, cursor, count=READ_COUNT
            )
            for entry_id in deleted:
                self._forget(entry_id)  # deleted from the stream while pending
            for entry_id, fields in entries:
                if entry_id in self._retry_at and self._retry_at[entry_id] > time.monotonic():
                    continue  # ours, waiting for its backoff
                log.info("%s: reclaimed %s from a silent consumer", self.stream, entry_id)
                if fields:
                    self.process(entry_id, fields)
                else:
                    self._forget(entry_id)
            if cursor == "0-0":
                return

    def process_due_retries(self) -> None:
        now = time.monotonic()
        for entry_id in [i for i, at in self._retry_at.items() if at <= now]:
            if self.stop.is_set():
                return
            self._retry_at.pop(entry_id, None)
            if commands.pending_consumer(self.redis, self.stream, self.group, entry_id) != self.consumer:
                continue  # acknowledged or taken over meanwhile
            entries = commands.read_range(self.redis, self.stream, entry_id, entry_id)
            if entries:
                self.process(entry_id, entries[0][1])
            else:
                self._forget(entry_id)

    # ---- one entry

    def process(self, entry_id: str, fields: Mapping[str, str], *, new: bool = False) -> None:
        """Deliver one entry (`new`: read for the first time); acknowledge, retry or dead-letter it."""
        attempt = self._begin(entry_id, fields, new=new)
        if attempt is None:
            return
        event, attempts = attempt
        started = time.perf_counter()
        try:
            with (
                self._counting([entry_id], new),
                self._heartbeat(entry_id),
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

    def process_batch(self, entries: Sequence[tuple[str, Mapping[str, str]]], *, new: bool = False) -> None:
        """Deliver several entries in one call (HTTP: one batched request; pull: one
        handle_batch); each is then acknowledged, retried or dead-lettered on its own."""
        begun: list[tuple[str, Mapping[str, str], CloudEvent, int]] = []
        for entry_id, fields in entries:
            attempt = self._begin(entry_id, fields, new=new)
            if attempt is not None:
                begun.append((entry_id, fields, *attempt))
        if not begun:
            return
        started = time.perf_counter()
        ids = [entry_id for entry_id, *_ in begun]
        with self._counting(ids, new), self._heartbeat(*ids):
            outcomes = self.delivery.deliver_batch([event for _, _, event, _ in begun])
        for (entry_id, fields, event, attempts), failure in zip(begun, outcomes):
            if failure is None:
                self._acknowledge(entry_id, event, attempts, started)
            else:
                self._failed(entry_id, fields, event, failure, attempts)

    def _begin(self, entry_id: str, fields: Mapping[str, str], *, new: bool) -> tuple[CloudEvent, int] | None:
        """Parse the entry and count the attempt (a new one's: `_counting`); None when dead-lettered."""
        try:
            event = from_stream_fields(fields)
        except ProteusError as exc:
            self.dead_letter(entry_id, fields, f"malformed entry: {exc.message}", status=None, attempts=0)
            return None
        if new:
            return event, 1
        attempts = int(self.redis.hincrby(self.attempts_key, entry_id, 1))
        if attempts > self.config.max_attempts:
            last = (
                commands.get_text(self.redis, self.attempts_key, f"{entry_id}#error")
                or "an attempt that never finished"
            )
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
        commands.forget(self.redis, self.stream, self.group, self.attempts_key, [entry_id])
        self._retry_at.pop(entry_id, None)
        DELIVERIES.labels(self.route.consumer, "ok").inc()
        DELIVERY_DURATION.labels(self.route.consumer).observe(time.perf_counter() - started)
        if not log.isEnabledFor(logging.INFO):
            return
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
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self.attempts_key, entry_id, 0)
            pipe.hset(self.attempts_key, f"{entry_id}#error", failure.message[:MAX_ERROR_CHARS])
            pipe.execute()
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
        commands.forget(self.redis, self.stream, self.group, self.attempts_key, [entry_id])
        self._retry_at.pop(entry_id, None)

    # ---- waiting

    def _counting(self, entry_ids: list[str], new: bool) -> AbstractContextManager[None]:
        """New entries: their attempt is counted while they are delivered (one round trip fewer)."""
        return commands.counting_ahead(self.redis, self.attempts_key, entry_ids) if new else nullcontext()

    def _heartbeat(self, *entry_ids: str) -> AbstractContextManager[None]:
        """Keeps these entries claimed while they are delivered (see `claim_idle_ms`)."""
        return self._beats.track(entry_ids)

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
