"""The stream runner: deliver each stream entry to the function that consumes it.

It plays Knative's RedisStreamSource locally, with a few safety nets that source lacks:

- one consumer group per route (route.group), created at id 0 with MKSTREAM, so entries
  written before the first start are not skipped;
- an entry is acknowledged only after a 2xx (push) or a clean handle() (pull);
- a 5xx or a timeout on an open connection is retried with exponential backoff
  (runner_backoff_s doubling up to runner_backoff_max_s) while other entries keep flowing;
  a function that cannot be reached (refused, connect timeout, connection dropped before an
  answer) costs no attempt: the route waits for its readiness, then retries;
- a 4xx (or a non-retryable ProteusError in pull mode), a malformed entry, or a request's
  runner_max_attempts-th failure moves the entry to route.dead_letter_stream with its error,
  status, attempts and original id; a result (progress, completed, failed) out of attempts
  is kept and tried again every runner_backoff_max_s, never dropped;
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

A function that renders batches (weave) reports `max_batch` at readiness; the runner then
delivers what is waiting in the stream at that moment, up to that many entries, in one
request (the CloudEvents batched content mode; pull mode: one handle_batch call), and the
reply says per entry whether it is acknowledged, retried or dead-lettered. Every other
route is delivered one entry at a time, in order.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from shared.config import Settings
from shared.events import load_schemas
from shared.observability import tracing
from shared.routing import ROUTES, Route
from shared.runtime import configure_logging
from shared.streams.consumer import RouteWorker
from shared.streams.delivery import HttpDelivery, PullDelivery
from shared.streams.policy import RunnerConfig

log = logging.getLogger("proteus.runner")


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
                else HttpDelivery(settings.function_url(route.consumer), settings.runner_request_timeout_s),
                config,
                prefix=settings.redis_key_prefix,
                consumer=consumer,
                stop=self.stop_event,
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


def select_routes(only: str | None) -> list[Route]:
    """The routes whose consumer is in the comma-separated `only` list (all when None)."""
    if not only:
        return list(ROUTES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {r.consumer for r in ROUTES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(
            f"--only: unknown function(s) {', '.join(unknown)}; streamed functions: {', '.join(sorted(known))}"
        )
    return [r for r in ROUTES if r.consumer in names]


def load_function(name: str, settings: Settings) -> Any:
    """The function object from `functions.<name>.main:create_function(settings)` (no web app)."""
    load_schemas()
    return importlib.import_module(f"functions.{name}.main").create_function(settings)


def serve_metrics(client: redis.Redis, settings: Settings, routes: Sequence[Route]) -> None:
    """Prometheus /metrics on METRICS_PORT: deliveries, and each stream's length, lag, pending
    entries and dead letters read from Redis at scrape time."""
    from prometheus_client import REGISTRY, start_http_server

    from shared.observability.streams import StreamCollector

    REGISTRY.register(StreamCollector(client, settings.redis_key_prefix, routes))
    try:
        start_http_server(settings.metrics_port)
    except OSError as exc:  # the deliveries matter more than their metrics: keep running
        log.error("no /metrics: port %d is taken (%s); set METRICS_PORT", settings.metrics_port, exc.strerror)
        return
    log.info("metrics on :%d/metrics", settings.metrics_port)


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
    client = redis_from_settings(settings)
    serve_metrics(client, settings, routes)
    tracing.configure_tracing(settings, "runner")
    pull_names = [n.strip() for n in args.pull.split(",") if n.strip()]
    pulled = {name: load_function(name, settings) for name in pull_names}
    runner = StreamRunner(client, settings, routes=routes, pull=pulled, consumer=args.consumer)

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
