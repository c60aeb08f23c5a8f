"""Fixtures for the stream tests: a Redis client, fast runner settings, a toy function
served over real HTTP (werkzeug in a thread), and a runner that is always stopped."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from werkzeug.serving import make_server

from shared import event_types as t
from shared.config import Settings
from shared.errors import BadRequest, TransientError
from shared.events import CloudEvent, event_data, make_event
from shared.routing import Route, route_for_consumer
from shared.runtime import create_function_app
from shared.streams.runner import StreamRunner

USER = "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60"
VTON = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
NOTIFY: Route = route_for_consumer("notify")


def progress(job_id: str | None = None, step: int = 1) -> CloudEvent:
    """A valid weave.progress event (the notify route's cheapest event)."""
    data = {"job_id": job_id or str(uuid.uuid4()), "user_id": USER, "vton_id": VTON, "step": step, "steps": 50}
    return make_event(t.WEAVE_PROGRESS, data, source="/tests")


def weave_request(job_id: str | None = None) -> CloudEvent:
    """A valid weave.requested event (a job request: dead-lettered when out of attempts)."""
    data = {
        "job_id": job_id or str(uuid.uuid4()),
        "user_id": USER,
        "vton_id": VTON,
        "person_key": f"uploads/{USER}/p.jpg",
        "garment_key": f"uploads/{USER}/g.jpg",
        "category": "upper",
        "steps": 2,
        "guidance": 2.5,
        "seed": 1,
        "variant": "maskfree",
        "height": 1024,
        "width": 768,
        "repaint": False,
    }
    return make_event(t.WEAVE_REQUESTED, data, source="/tests")


def serve(function: Any, port: int, settings: Settings | None = None) -> Any:
    """Serve `function` behind the real runtime on `port` (in a thread); call .shutdown()."""
    settings = settings or Settings.from_env({"PROTEUS_ENV": "test", "JWT_SECRET": "x" * 40})
    server = make_server("127.0.0.1", port, create_function_app(function, settings), threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {message}")


class ToyFunction:
    """Records calls; `plan[job_id]` lists what each call does: ok, fail (TransientError),
    bad (BadRequest), boom (RuntimeError), slow:<s>, block (waits for `release`)."""

    def __init__(self) -> None:
        self.calls: list[str] = []  # job ids, in call order
        self.plan: dict[str, list[str]] = {}
        self.always: dict[str, str] = {}
        self.release = threading.Event()
        self.state = {"ready": True}
        self.lock = threading.Lock()

    def handle(self, event: CloudEvent) -> None:
        job = event_data(event)["job_id"]
        with self.lock:
            self.calls.append(job)
            steps = self.plan.get(job)
            action = steps.pop(0) if steps else self.always.get(job, "ok")
        if action == "fail":
            raise TransientError(f"transient trouble with {job}")
        if action == "bad":
            raise BadRequest(f"cannot use {job}", field="job_id")
        if action == "boom":
            raise RuntimeError(f"poison {job}")
        if action.startswith("slow:"):
            time.sleep(float(action.split(":")[1]))
        if action == "block":
            self.release.wait(10)
        return None

    def readiness(self) -> dict[str, Any]:
        return self.state

    def count(self, job: str) -> int:
        with self.lock:
            return self.calls.count(job)


class BatchingToy(ToyFunction):
    """A ToyFunction that also takes batches (as weave does): readiness reports `max_batch`,
    and each handle_batch call is recorded in `batches` (job ids) before its events run."""

    def __init__(self, max_batch: int = 3) -> None:
        super().__init__()
        self.max_batch = max_batch
        self.batches: list[list[str]] = []

    def handle_batch(self, events: list[CloudEvent]) -> list[BaseException | None]:
        with self.lock:
            self.batches.append([event_data(e)["job_id"] for e in events])
        outcomes: list[BaseException | None] = []
        for event in events:
            try:
                self.handle(event)
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def readiness(self) -> dict[str, Any]:
        return {**self.state, "max_batch": self.max_batch}


@pytest.fixture
def rds(redis_server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def runner_settings(settings: Settings, redis_server_url: str, redis_prefix: str) -> Settings:
    return settings.with_overrides(
        redis_url=redis_server_url,
        redis_key_prefix=redis_prefix,
        runner_max_attempts=3,
        runner_backoff_s=0.01,
        runner_backoff_max_s=0.04,
        runner_claim_idle_ms=300,
        runner_block_ms=50,
        runner_request_timeout_s=5.0,
    )


@pytest.fixture
def toy() -> ToyFunction:
    return ToyFunction()


@pytest.fixture
def function_url(toy: ToyFunction, runner_settings: Settings) -> Iterator[str]:
    """The toy behind the real runtime, on a real HTTP port."""
    server = make_server("127.0.0.1", 0, create_function_app(toy, runner_settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def batching_toy() -> BatchingToy:
    return BatchingToy()


@pytest.fixture
def batch_function_url(batching_toy: BatchingToy, runner_settings: Settings) -> Iterator[str]:
    """The batching toy behind the real runtime, on a real HTTP port."""
    server = make_server("127.0.0.1", 0, create_function_app(batching_toy, runner_settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def start_runner(rds: redis.Redis) -> Iterator[Callable[..., StreamRunner]]:
    """start_runner(settings, **kwargs) -> a started StreamRunner for the notify route."""
    runners: list[StreamRunner] = []

    def start(settings: Settings, **kwargs: Any) -> StreamRunner:
        kwargs.setdefault("routes", [NOTIFY])
        kwargs.setdefault("consumer", "test-runner")
        runner = StreamRunner(rds, settings, **kwargs)
        runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop(timeout=10)
        assert not any(t.is_alive() for t in runner.threads), "runner did not stop"


def streams(prefix: str) -> tuple[str, str, str]:
    stream = prefix + NOTIFY.stream
    return stream, prefix + NOTIFY.dead_letter_stream, f"{stream}:attempts"


def pending(rds: redis.Redis, stream: str) -> int:
    """Entries read and not yet acknowledged; -1 while the runner has not created its group."""
    try:
        return rds.xpending(stream, NOTIFY.group)["pending"]
    except redis.ResponseError as exc:
        if "NOGROUP" in str(exc):
            return -1
        raise


def dead_letters(rds: redis.Redis, dead: str) -> list[dict[str, str]]:
    return [fields for _id, fields in rds.xrange(dead)]


def push(settings: Settings, url: str) -> Settings:
    return settings.with_overrides(function_urls={"notify": url})
