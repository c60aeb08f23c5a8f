"""The stream runner: deliver each stream entry to the function that consumes it.

It plays Knative's RedisStreamSource locally, with a few safety nets that source lacks:

- one consumer group per route (route.group), created at id 0 with MKSTREAM, so entries
  written before the first start are not skipped;
- an entry is acknowledged only after a 2xx (push) or a clean handle() (pull);
- a 5xx, a connection error or a timeout is retried with exponential backoff
  (runner_backoff_s doubling up to runner_backoff_max_s) while other entries keep flowing;
- a 4xx (or a non-retryable ProteusError in pull mode), a malformed entry, or the
  runner_max_attempts-th failure moves the entry to route.dead_letter_stream with its error,
  status, attempts and original id;
- attempts are counted in Redis (hash `<stream>:attempts`, incremented before each attempt),
  so they survive a restart and a crash during delivery counts;
- entries a dead consumer left pending for runner_claim_idle_ms are reclaimed (XAUTOCLAIM),
  and an entry being delivered is kept claimed (XCLAIM JUSTID heartbeat) so a long weave job
  is not reclaimed by another runner;
- before reading, and after the function was unreachable, it waits for GET /readyz (or the
  pulled function's readiness) so a slow start does not burn attempts.

Replies from functions are discarded, as RedisStreamSource discards them: functions publish
their follow-up events themselves with shared.streams.publish().

    python -m shared.streams.runner [--only weave,notify] [--pull weave] [--consumer NAME]

`--pull NAME` calls the function's handle() in this process instead of POSTing to it (how
weave runs under KEDA), with the same ack/retry/dead-letter rules.

A route with `in_flight_setting` (weave: WEAVE_MAX_BATCH) has up to that many entries
delivered at once, each acknowledged on its own; weave renders what arrives together as
one batch. Every other route is delivered one entry at a time, in order.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, Protocol
from urllib.parse import urljoin

import redis
import urllib3

from shared.config import Settings
from shared.errors import ProteusError
from shared.events import CloudEvent, from_stream_fields, make_event, to_http_binary, validate_event
from shared import event_types as t
from shared.routing import FAILURE_EVENT_FOR, ROUTES, Route, prefixed
from shared.runtime import FUNCTION_EXTENSION, as_proteus_error, configure_logging, function_readiness
from shared.streams.publish import STREAM_MAXLEN, publish

log = logging.getLogger("proteus.runner")

READ_COUNT: Final = 10
MAX_ERROR_CHARS: Final = 2000


# --------------------------------------------------------------------------- deliveries


class DeliveryFailed(Exception):
    """One failed attempt: what happened, the HTTP status (None: no answer), retryable or not."""

    def __init__(self, message: str, *, status: int | None, retryable: bool, unreachable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.unreachable = unreachable


class Delivery(Protocol):
    """How an event reaches its function."""

    def deliver(self, event: CloudEvent) -> None:
        """Return on success; raise DeliveryFailed otherwise."""

    def ready(self) -> bool:
        """Whether the function can take events now."""


class HttpDelivery:
    """POST the event in binary mode to the function's URL (push mode).

    urllib3 directly, with a keep-alive pool and no retries of its own (the runner retries):
    it costs a third less per delivery than requests, on every hop of every job.
    """

    def __init__(self, url: str, timeout_s: float, connections: int = 2) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.http = urllib3.PoolManager(retries=False, maxsize=connections)

    def deliver(self, event: CloudEvent) -> None:
        headers, body = to_http_binary(event)
        try:
            response = self.http.request("POST", self.url, body=body, headers=headers, timeout=self.timeout_s)
        except urllib3.exceptions.TimeoutError:
            raise DeliveryFailed(f"no answer from {self.url} within {self.timeout_s:g}s", status=None, retryable=True)
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryFailed(
                f"cannot reach {self.url}: {exc.__class__.__name__}", status=None, retryable=True, unreachable=True
            ) from None
        if 200 <= response.status < 300:
            return
        status = response.status
        raise DeliveryFailed(
            f"HTTP {status} from {self.url}: {_response_error(response)}",
            status=status,
            retryable=not 400 <= status < 500,
        )

    def ready(self) -> bool:
        try:
            response = self.http.request("GET", urljoin(self.url, "readyz"), timeout=5)
        except urllib3.exceptions.HTTPError:
            return False
        return response.status < 300 or response.status == 404  # 404: no probe there


class PullDelivery:
    """Call a function object's handle() in this process (pull mode).

    A function with `handle_batch(events) -> [exception or None]` (weave) gets the entries
    of one read together, so it can render them as one batch.
    """

    def __init__(self, function: Any) -> None:
        self.function = function

    @property
    def batches(self) -> bool:
        return callable(getattr(self.function, "handle_batch", None))

    def deliver(self, event: CloudEvent) -> None:
        try:
            validate_event(event)
            self.function.handle(event)  # a reply is discarded, as in push mode
        except Exception as exc:  # noqa: BLE001 - every failure is classified below
            raise self._failure(exc) from None

    def deliver_batch(self, events: Sequence[CloudEvent]) -> list[DeliveryFailed | None]:
        """One outcome per event: None when handled, else why its delivery failed."""
        outcomes: list[DeliveryFailed | None] = [None] * len(events)
        valid: list[int] = []
        for index, event in enumerate(events):
            try:
                validate_event(event)
                valid.append(index)
            except Exception as exc:  # noqa: BLE001
                outcomes[index] = self._failure(exc)
        if not valid:
            return outcomes
        try:
            results = self.function.handle_batch([events[i] for i in valid])
        except Exception as exc:  # noqa: BLE001
            failure = self._failure(exc)
            return [failure if i in valid else outcomes[i] for i in range(len(events))]
        for index, result in zip(valid, results):
            outcomes[index] = None if result is None else self._failure(result)
        return outcomes

    def _failure(self, exc: BaseException) -> DeliveryFailed:
        error = as_proteus_error(exc)
        if error is None:
            log.error("%s failed with an unexpected error", type(self.function).__name__, exc_info=exc)
            error = ProteusError(f"{exc.__class__.__name__}: {exc}")
        return DeliveryFailed(error.message, status=error.status, retryable=error.retryable)

    def ready(self) -> bool:
        return bool(function_readiness(self.function)["ready"])


def _response_error(response: urllib3.BaseHTTPResponse) -> str:
    text = response.data.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return text[:500] or response.reason or "no body"


# --------------------------------------------------------------------------- one route


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
        in_flight: int = 1,
    ) -> None:
        self.redis = client
        self.in_flight = max(1, in_flight)
        self._pool: ThreadPoolExecutor | None = None
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
            except Exception:  # noqa: BLE001 - keep the route alive
                log.exception("%s: unexpected error in the runner loop", self.stream)
                self.stop.wait(self.config.backoff_max_s)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def step(self) -> None:
        """One pass: due retries, reclaim from dead consumers, then read new entries."""
        if self._needs_probe and not self._wait_until_ready():
            return
        self.process_due_retries()
        if time.monotonic() >= self._next_claim:
            self.reclaim()
            self._next_claim = time.monotonic() + max(self.config.claim_idle_ms / 2000, 0.05)
        block = self._block_ms()
        together = self.in_flight > 1 and not isinstance(self.delivery, PullDelivery)
        reply = self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.in_flight if together else READ_COUNT,
            block=block if block > 0 else None,
        )
        for _stream, entries in reply or []:
            if len(entries) > 1 and isinstance(self.delivery, PullDelivery) and self.delivery.batches:
                self.process_batch(entries)
                continue
            if len(entries) > 1 and together:
                self.process_together(entries)
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
            with _Heartbeat(self, entry_id):
                self.delivery.deliver(event)
        except DeliveryFailed as failure:
            self._failed(entry_id, fields, event, failure, attempts)
            return
        self._acknowledge(entry_id, event, attempts, started)

    def process_together(self, entries: Sequence[tuple[str, Mapping[str, str]]]) -> None:
        """Deliver up to `in_flight` entries at the same time, each on its own (HTTP: the
        function may batch what arrives together); returns when all are done."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.in_flight, thread_name_prefix=f"deliver-{self.route.consumer}")
        futures = [self._pool.submit(self.process, entry_id, fields) for entry_id, fields in entries]
        wait(futures)
        for future in futures:
            future.result()  # an unexpected error (Redis down) goes to the loop, as for one entry

    def process_batch(self, entries: Sequence[tuple[str, Mapping[str, str]]]) -> None:
        """Deliver several entries in one call (pull mode, a function with handle_batch);
        each is then acknowledged, retried or dead-lettered on its own."""
        begun: list[tuple[str, Mapping[str, str], CloudEvent, int]] = []
        for entry_id, fields in entries:
            attempt = self._begin(entry_id, fields)
            if attempt is not None:
                begun.append((entry_id, fields, *attempt))
        if not begun:
            return
        started = time.perf_counter()
        with contextlib.ExitStack() as beats:
            for entry_id, *_ in begun:
                beats.enter_context(_Heartbeat(self, entry_id))
            outcomes = self.delivery.deliver_batch([event for _, _, event, _ in begun])  # type: ignore[attr-defined]
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
            self.dead_letter(entry_id, fields, f"no attempts left; last error: {last}", None, attempts - 1)
            return None
        return event, attempts

    def _acknowledge(self, entry_id: str, event: CloudEvent, attempts: int, started: float) -> None:
        self.redis.pipeline(transaction=True).xack(self.stream, self.group, entry_id).hdel(
            self.attempts_key, entry_id, f"{entry_id}#error"
        ).execute()
        self._retry_at.pop(entry_id, None)
        log.info(
            "delivered",
            extra={"fields": {"stream": self.stream, "entry": entry_id, "type": event.get_type(),
                              "id": event.get_id(), "attempt": attempts,
                              "ms": round((time.perf_counter() - started) * 1000, 1)}},
        )

    def _failed(
        self, entry_id: str, fields: Mapping[str, str], event: CloudEvent, failure: DeliveryFailed, attempts: int
    ) -> None:
        if failure.unreachable:
            self._needs_probe = True
        if not failure.retryable or attempts >= self.config.max_attempts:
            self.dead_letter(entry_id, fields, failure.message, failure.status, attempts)
            return
        delay = self.config.backoff(attempts)
        self._retry_at[entry_id] = time.monotonic() + delay
        self.redis.hset(self.attempts_key, f"{entry_id}#error", failure.message[:MAX_ERROR_CHARS])
        log.warning(
            "attempt %d/%d of %s (%s) failed, retrying in %.2fs: %s",
            attempts, self.config.max_attempts, entry_id, event.get_type(), delay, failure.message,
        )

    def dead_letter(
        self, entry_id: str, fields: Mapping[str, str], error: str, status: int | None, attempts: int
    ) -> None:
        """Move an entry to the dead-letter stream (atomically with its XACK)."""
        letter = {
            "type": str(fields.get("type", "")),
            "error": error[:MAX_ERROR_CHARS],
            "status": "" if status is None else str(status),
            "attempts": str(attempts),
            "original_id": entry_id,
            "stream": self.stream,
            "group": self.group,
            "consumer": self.consumer,
            "failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fields": json.dumps(dict(fields)),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.dead_stream, letter, maxlen=STREAM_MAXLEN, approximate=True)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.hdel(self.attempts_key, entry_id, f"{entry_id}#error")
        pipe.execute()
        self._retry_at.pop(entry_id, None)
        log.error(
            "dead-lettered %s (%s) after %d attempt(s) to %s: %s",
            entry_id, letter["type"] or "?", attempts, self.dead_stream, error,
        )
        self._announce_failure(fields, status, attempts)

    def _announce_failure(self, fields: Mapping[str, str], status: int | None, attempts: int) -> None:
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
            body: dict[str, Any] = {"job_id": data["job_id"], "user_id": data["user_id"],
                                    "vton_id": data.get("vton_id"), "error": error}
            if failure_type == t.TAILOR_FAILED:
                body["reason"] = "dead_lettered"
            else:
                body.update(code="dead_lettered", retryable=False)
            publish(self.redis, make_event(failure_type, body, source="/proteus/runner"), prefix=self.prefix)
        except Exception:  # noqa: BLE001 - the dead letter is stored; telling the user is best effort
            log.exception("could not announce the failure of a dead-lettered entry")

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
    """Keeps an entry's idle time low while it is delivered, so nobody reclaims it."""

    def __init__(self, worker: RouteWorker, entry_id: str) -> None:
        self.worker = worker
        self.entry_id = entry_id
        self.interval = max(worker.config.claim_idle_ms / 3000, 0.01)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{entry_id}", daemon=True)

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
                w.redis.xclaim(w.stream, w.group, w.consumer, 0, [self.entry_id], justid=True)
            except redis.RedisError as exc:
                log.warning("%s: heartbeat for %s failed: %r", w.stream, self.entry_id, exc)


# --------------------------------------------------------------------------- the runner


class StreamRunner:
    """One RouteWorker thread per route; `pull` maps consumer names to in-process functions."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        *,
        routes: Sequence[Route] = ROUTES,
        pull: Mapping[str, Any] | None = None,
        consumer: str | None = None,
    ) -> None:
        if not client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("the runner needs a client with decode_responses=True (see redis_from_settings)")
        pull = dict(pull or {})
        unknown = set(pull) - {r.consumer for r in routes}
        if unknown:
            raise ValueError(f"--pull names functions that are not run here: {', '.join(sorted(unknown))}")
        self.stop_event = threading.Event()
        config = RunnerConfig.from_settings(settings)
        consumer = consumer or socket.gethostname()
        self.workers = [
            RouteWorker(
                client,
                route,
                PullDelivery(pull[route.consumer])
                if route.consumer in pull
                else HttpDelivery(settings.function_url(route.consumer), settings.runner_request_timeout_s,
                                  connections=in_flight(route, settings) + 1),
                config,
                prefix=settings.redis_key_prefix,
                consumer=consumer,
                stop=self.stop_event,
                in_flight=in_flight(route, settings),
            )
            for route in routes
        ]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one daemon thread per route."""
        for worker in self.workers:
            thread = threading.Thread(target=worker.run, name=f"runner-{worker.route.consumer}", daemon=True)
            thread.start()
            self.threads.append(thread)
            log.info("reading %s as %s/%s", worker.stream, worker.group, worker.consumer)

    def stop(self, timeout: float | None = None) -> None:
        """Ask every worker to stop and wait for them (an in-flight delivery finishes first)."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)

    def wait(self) -> None:
        """Block until every worker has stopped."""
        while any(t.is_alive() for t in self.threads):
            for thread in self.threads:
                thread.join(0.5)


def in_flight(route: Route, settings: Settings) -> int:
    """How many of the route's entries may be delivered at once."""
    return max(1, int(getattr(settings, route.in_flight_setting))) if route.in_flight_setting else 1


def select_routes(only: str | None) -> list[Route]:
    """The routes whose consumer is in the comma-separated `only` list (all when None)."""
    if not only:
        return list(ROUTES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {r.consumer for r in ROUTES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"--only: unknown function(s) {', '.join(unknown)}; streamed functions: {', '.join(sorted(known))}")
    return [r for r in ROUTES if r.consumer in names]


def load_function(name: str, settings: Settings) -> Any:
    """The function object behind `functions.<name>.main:create_app(settings)`."""
    app = importlib.import_module(f"functions.{name}.main").create_app(settings)
    return app.extensions[FUNCTION_EXTENSION]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.streams.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated functions to feed (default: every streamed one)")
    parser.add_argument("--pull", default="", help="comma-separated functions to run in this process")
    parser.add_argument("--consumer", help="consumer name in the groups (default: the host name)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    from shared.redis_client import redis_from_settings

    routes = select_routes(args.only)
    pull_names = [n.strip() for n in args.pull.split(",") if n.strip()]
    pulled = {name: load_function(name, settings) for name in pull_names}
    runner = StreamRunner(redis_from_settings(settings), settings, routes=routes, pull=pulled, consumer=args.consumer)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s: stopping after the current deliveries (again to force)", signal.Signals(signum).name)
        runner.stop_event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runner.start()
    try:
        runner.wait()
    finally:
        for function in pulled.values():
            close = getattr(function, "close", None)
            if callable(close):
                close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
