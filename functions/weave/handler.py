"""The weave function: a `weave.requested` event becomes a try-on image in storage.

It loads the pipelines in the background (readiness says when they are there), runs the
request, writes the result to the job's one result key, and publishes progress (at most
a few a second), then completed, or failed with a reason a person can read. Redelivery
is harmless: a finished job is skipped, and a result already written is announced again
rather than rendered twice (the seed, fixed by enqueue, makes a re-render identical too).
Events become pipeline requests in events.py; what weave reports about itself is in status.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from functions.weave.batch_size import choose_batch_limit, measure_throughput
from functions.weave.events import (
    FLAGGED_MESSAGE,
    JobCanceled,
    json_safe,
    model_name,
    request_from_event,
    result_fields,
    sample_count,
    sample_keys,
)
from functions.weave.fashn.pipeline import FashnRequest
from functions.weave.loading import model_config, resolve_model
from functions.weave.models import Pipeline, Request, is_smoke, load_models, run_models
from functions.weave.pipeline_common import TryOnResult
from functions.weave.status import SMOKE_WARNING, describe_models, record_batch
from shared import event_types as t
from shared import jobs
from shared.c2pa_signing import ResultSigner
from shared.config import Settings
from shared.contracts.events import StageFailed
from shared.db.models import Job
from shared.db.session import session_scope
from shared.errors import ClientError, DependencyUnavailable, ModelNotLoaded
from shared.observability import tracing
from shared.observability.metrics import MODEL_LOAD_SECONDS
from shared.provenance import MEDIA_TYPES, encode_result
from shared.stage import Dependencies, Stage

log = logging.getLogger(__name__)
Todo = tuple[int, dict[str, Any], Request]  # (position in the call, event data, checked request)
MODELS_KEY = "proteus:models"
LOAD_WAIT_S = 120.0


class WeaveFunction(Stage):
    """Runs the try-on models (by name) for weave requests, one batch at a time (pipelines are
    not thread-safe)."""

    source = "/proteus/functions/weave"

    def __init__(self, deps: Dependencies, load: Callable[[], Mapping[str, Pipeline]], *, max_batch: int = 1) -> None:
        super().__init__(deps)
        self._pipelines: Mapping[str, Pipeline] | None = None
        self._load_error: BaseException | None = None
        self._loaded = threading.Event()
        self._run_lock = threading.Lock()
        self._traces: dict[str, dict[str, str]] = {}  # job id -> trace context (the batch runs elsewhere)
        self._checked_s: dict[str, float] = {}  # job id -> seconds its check_inputs (decoding) took
        self._max_batch = max(1, max_batch)  # WEAVE_MAX_BATCH: the most a warm-up measures
        self.batch_limit = 1  # what warm-up found worth batching (readiness: max_batch)
        self.batch_throughput: dict[int, float] | None = None
        self._signer = ResultSigner.from_settings(self.settings)  # every stored result is signed (C2PA)
        threading.Thread(target=self._load, args=(load,), name="weave-model-load", daemon=True).start()

    @classmethod
    def from_settings(cls, settings: Settings) -> WeaveFunction:
        config = model_config(settings)
        kind = resolve_model(config)
        if kind == "smoke":
            log.warning("%s (WEAVE_MODEL=%s, models in %s)", SMOKE_WARNING, settings.weave_model, settings.models_dir)
        return cls(
            Dependencies.from_settings(settings),
            lambda: load_models(config, settings.weave_models, commercial=settings.commercial),
            max_batch=settings.weave_max_batch,
        )

    # -- model ------------------------------------------------------------------------

    def _load(self, load: Callable[[], Mapping[str, Pipeline]]) -> None:
        try:
            started = time.perf_counter()
            pipelines = load()
            MODEL_LOAD_SECONDS.labels("weave").set(time.perf_counter() - started)
            self._size_batches(pipelines)
            self._pipelines = pipelines
            info = self.model_info()
            self.redis.hset(self.settings.redis_key_prefix + MODELS_KEY, "weave", json.dumps(info))
            if info["smoke"]:
                log.warning("%s", SMOKE_WARNING)
        except BaseException as exc:
            log.exception("loading the weave model failed")
            self._load_error = exc
        finally:
            self._loaded.set()

    def _size_batches(self, pipelines: Mapping[str, Pipeline]) -> None:
        """Measure images/s per batch size on this device (the default model) and keep the
        largest size that still raises it (functions/weave/batch_size.py). A smoke model is
        not measured (tiny random weights: its speed says nothing about a real model's); it
        takes WEAVE_MAX_BATCH."""
        default = self.settings.weave_default_model
        pipe = pipelines[default] if default in pipelines else next(iter(pipelines.values()))
        if self._max_batch == 1 or is_smoke(pipe):
            self.batch_limit = self._max_batch
        else:
            self.batch_throughput = measure_throughput(pipe, self._max_batch)
            self.batch_limit = choose_batch_limit(self.batch_throughput)
        for each in pipelines.values():
            each.options.max_batch_size = self.batch_limit
        log.info(
            "weave batches up to %d (WEAVE_MAX_BATCH=%d; images/s by batch size: %s)",
            self.batch_limit,
            self._max_batch,
            self.batch_throughput or "not measured for a smoke model",
        )

    def model_info(self) -> dict[str, Any]:
        """What runs (functions/weave/status.py): the loaded models, the default, device, dtype."""
        return describe_models(
            self._pipelines,
            self._default_model(),
            commercial=self.settings.commercial,
            batch_limit=self.batch_limit,
            batch_throughput=self.batch_throughput,
        )

    def _default_model(self) -> str:
        loaded = self._pipelines or {}
        default = self.settings.weave_default_model
        return default if default in loaded or not loaded else next(iter(loaded))

    def _ready_pipelines(self, timeout: float) -> Mapping[str, Pipeline]:
        if not self._loaded.wait(timeout):
            raise DependencyUnavailable("the weave model is still loading; try again shortly")
        if self._pipelines is None:
            raise DependencyUnavailable(f"the weave model failed to load: {self._load_error}")
        return self._pipelines

    def readiness(self) -> dict[str, Any]:
        info = self.model_info()
        if self._load_error is not None:
            return {"ready": False, "error": f"model failed to load: {self._load_error}", **info}
        if not self._loaded.is_set():
            return {"ready": False, "status": "loading model", **info}
        self.check_dependencies()
        return {"ready": True, **info}

    # -- events -----------------------------------------------------------------------

    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        """One request (a single HTTP event, e.g. from Knative's RedisStreamSource): a batch
        of one. Returns the completed or failed event; raises what makes the delivery retry."""
        (outcome,) = self._handle_all([event])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def handle_batch(self, events: Sequence[BaseCloudEvent]) -> list[BaseException | None]:
        """Several weave requests, rendered in as few batched pipeline calls as they allow.

        The stream runner delivers them together (HTTP batched mode, or pull mode); each
        outcome is None (handled: completed or failed with a reason) or the exception that
        makes that entry's delivery retry.
        """
        return [o if isinstance(o, BaseException) else None for o in self._handle_all(events)]

    def _handle_all(self, events: Sequence[BaseCloudEvent]) -> list[BaseCloudEvent | BaseException | None]:
        outcomes: list[BaseCloudEvent | BaseException | None] = [None] * len(events)
        todo: list[Todo] = []
        for index, event in enumerate(events):
            data: dict[str, Any] = dict(event.get_data() or {})
            self._remember_trace(data, tracing.event_carrier(event))
            try:
                with tracing.attached(self._traces.get(data.get("job_id", ""))):
                    done, request = self._prepare(data)
            except Exception as exc:
                outcomes[index] = exc
                continue
            if request is None:
                outcomes[index] = done
            else:
                todo.append((index, data, request))
        try:
            for index, outcome in self._render(todo):
                outcomes[index] = outcome
        finally:
            for event in events:
                self._traces.pop((event.get_data() or {}).get("job_id"), None)
                self._checked_s.pop((event.get_data() or {}).get("job_id"), None)
        return outcomes

    def _remember_trace(self, data: dict[str, Any], carrier: dict[str, str]) -> None:
        """Where a job's events continue its trace (the batch runs on another thread)."""
        if carrier and data.get("job_id"):
            self._traces[data["job_id"]] = carrier

    def _prepare(self, data: dict[str, Any]) -> tuple[BaseCloudEvent | None, Request | None]:
        """(the reply, None) when there is nothing to render, else (None, the checked request)."""
        job_id = data["job_id"]
        with session_scope(self.sessions, write=True) as session:
            if not jobs.mark_running(session, job_id):  # finished, or unknown (rendered all the same)
                job = session.get(Job, job_id)
                if job is not None:
                    log.info("job %s is already %s; nothing to do", job_id, job.status)
                    return None, None
        keys = sample_keys(data)
        if self.storage.exists(keys[-1]):
            # A previous delivery rendered it (the last sample is written last) and died before announcing it.
            return self._publish(
                t.WEAVE_COMPLETED,
                data,
                **result_fields(keys),
                seed=data.get("seed"),
                model=self.model_info()["model"],
                metadata={"recovered": True},
            ), None
        pipelines = self._ready_pipelines(LOAD_WAIT_S)
        try:
            name = model_name(data, self.settings.weave_default_model)
            if name not in pipelines:
                raise ModelNotLoaded(
                    f"model {name!r} is not loaded by this weave instance (loaded: {', '.join(pipelines)})",
                    field="model",
                )
            request = request_from_event(data, self.settings, self.storage)
            with tracing.span("weave decode images", attributes={"proteus.job_id": job_id}):
                decoding = time.perf_counter()
                checked = pipelines[name].check_inputs(request)  # type: ignore[arg-type]
                self._checked_s[job_id] = time.perf_counter() - decoding
        except ClientError as exc:
            return self._publish(t.WEAVE_FAILED, data, **StageFailed.fields_of(exc)), None
        # Checked here so one bad request never fails a batch; decoded once.
        if isinstance(request, FashnRequest):
            return None, replace(request, person=checked.person, garment=checked.garment)
        return None, replace(request, person=checked.person, garment=checked.garment, mask=checked.mask)

    def _render(self, todo: list[Todo]) -> list[tuple[int, BaseCloudEvent | BaseException]]:
        """Run the checked requests as one pipeline call (batched where compatible).

        If a call of several fails, each request runs alone, so one request's trouble (or a
        batch too big for the GPU) never fails the others. A job canceled meanwhile is answered
        at once and leaves the batch at the next denoising step (`_progress`).
        """
        if not todo:
            return []
        parents = [self._traces.get(d["job_id"], {}) for _, d, _ in todo]
        steps = [0]
        canceled: dict[int, BaseCloudEvent] = {}  # position in todo -> its weave.failed (canceled)
        # num_samples N: N requests with seeds seed, seed+1, ... in the same batched call.
        expanded = [
            (position, replace(request, seed=(request.seed or 0) + i))
            for position, (_, data, request) in enumerate(todo)
            for i in range(sample_count(data))
        ]
        try:
            with (
                self._run_lock,
                tracing.span(
                    "weave render batch",
                    parent=parents[0] or None,
                    links=parents[1:],
                    attributes={"proteus.batch_size": len(todo)},
                ),
            ):
                started = time.perf_counter()
                flat = run_models(
                    self._ready_pipelines(LOAD_WAIT_S),
                    [r for _, r in expanded],
                    callback=self._progress(todo, [position for position, _ in expanded], steps, canceled),
                )
                elapsed = round(time.perf_counter() - started, 4)
            record_batch(len(expanded), steps[0], elapsed)
        except JobCanceled:
            return [(index, canceled.get(pos) or self._canceled(data)) for pos, (index, data, _) in enumerate(todo)]
        except Exception as exc:
            answered = [(todo[pos][0], reply) for pos, reply in canceled.items()]
            rest = [item for pos, item in enumerate(todo) if pos not in canceled]
            if len(rest) > 1 or (rest and canceled):
                if not isinstance(exc, ClientError):
                    log.warning("a batch of %d failed (%r); running them one at a time", len(todo), exc)
                return answered + [out for item in rest for out in self._render([item])]
            if not rest:
                return answered
            index, data, _ = rest[0]
            if isinstance(exc, ClientError):
                return [(index, self._publish(t.WEAVE_FAILED, data, **StageFailed.fields_of(exc)))]
            return [(index, exc)]
        results: list[list[TryOnResult]] = [[] for _ in todo]
        for (position, _), result in zip(expanded, flat):
            if result is not None:  # None: the job was canceled and left the batch
                results[position].append(result)
        finished: list[tuple[int, BaseCloudEvent | BaseException]] = []
        for pos, ((index, data, _), samples) in enumerate(zip(todo, results)):
            if pos in canceled:
                finished.append((index, canceled[pos]))
                continue
            checked_s = self._checked_s.pop(data["job_id"], 0.0)
            for result in samples:
                # The whole model call: checks, image decoding, denoising, VAE (`seconds` is the batch alone).
                result.metadata["pipeline_seconds"] = round(elapsed + checked_s, 4)
            try:
                with tracing.attached(self._traces.get(data["job_id"])):
                    finished.append((index, self._finish(data, samples)))
            except Exception as exc:
                finished.append((index, exc))
        return finished

    def _finish(self, data: dict[str, Any], samples: list[TryOnResult]) -> BaseCloudEvent:
        """Store every sample and announce them (or fail the job when the safety checker flagged one)."""
        if any(result.nsfw for result in samples):
            return self._publish(
                t.WEAVE_FAILED, data, error=FLAGGED_MESSAGE, code="flagged_by_safety_checker", retryable=False
            )
        if self._is_canceled([data["job_id"]])[0]:
            return self._canceled(data)
        image_format = data.get("output_format") or "png"
        keys = sample_keys(data)
        for key, result in zip(keys, samples):  # in order: the last one written says all are there
            self.storage.put(
                key,
                encode_result(
                    result.image,
                    image_format,
                    model=str(result.metadata.get("model")),
                    smoke=bool(result.metadata.get("smoke")),
                    signer=self._signer,
                ),
                MEDIA_TYPES[image_format],
            )
        first = samples[0]
        return self._publish(
            t.WEAVE_COMPLETED,
            data,
            **result_fields(keys),
            seed=first.seed,
            model=first.metadata.get("model"),
            metadata=json_safe(first.metadata),
        )

    def _canceled(self, data: dict[str, Any]) -> BaseCloudEvent:
        """The job's owner canceled it: nothing is stored (the gateway marked the job already)."""
        return self._publish(t.WEAVE_FAILED, data, error=jobs.CANCELED_MESSAGE, code="canceled", retryable=False)

    def _is_canceled(self, job_ids: Sequence[str]) -> list[bool]:
        """Whether each of these jobs was canceled by its owner (POST /v1/cancel sets a key per job)."""
        prefix = self.settings.redis_key_prefix + jobs.CANCEL_FLAG
        return [flag is not None for flag in self.redis.mget([prefix + job_id for job_id in job_ids])]

    def _progress(
        self, todo: list[Todo], job_of_request: list[int], counted: list[int], canceled: dict[int, BaseCloudEvent]
    ) -> Callable[[int, int], set[int]]:
        """A callback run after each denoising step: it publishes step k of n for every job of
        the call (at most once per interval), and takes cancellation into account.

        A job canceled by its owner is answered at once (weave.failed, canceled, kept in
        `canceled` by its position in `todo`) and its requests (`job_of_request`: the job of
        each request of the call) are answered to stop: the pipeline drops them from their
        batch before the next step. When every job is canceled the call stops (JobCanceled).
        The last step is not reported: the completion follows at once, and a progress event
        ahead of it on the results stream would only delay it.
        """
        last = 0.0
        batch = [data for _, data, _ in todo]
        job_ids = [data["job_id"] for data in batch]

        def report(step: int, steps: int) -> set[int]:
            nonlocal last
            counted[0] = step
            for pos, flag in enumerate(self._is_canceled(job_ids)):
                if flag and pos not in canceled:
                    with tracing.attached(self._traces.get(job_ids[pos])):
                        canceled[pos] = self._canceled(batch[pos])
                    log.info("job %s was canceled at step %d of %d; it leaves its batch", job_ids[pos], step, steps)
            if len(canceled) == len(batch):
                raise JobCanceled(f"jobs {', '.join(job_ids)} were canceled by their owners")
            stop = {i for i, pos in enumerate(job_of_request) if pos in canceled}
            now = time.monotonic()
            if step >= steps or now - last < self.settings.progress_interval_s:
                return stop
            last = now
            for pos, data in enumerate(batch):
                if pos not in canceled:
                    with tracing.attached(self._traces.get(data["job_id"])):
                        self._publish(t.WEAVE_PROGRESS, data, step=step, steps=steps)
            return stop

        return report

    def _publish(self, event_type: str, data: dict[str, Any], **fields: Any) -> BaseCloudEvent:
        """Publish an event about the job of `data` with `fields`."""
        return self.publish(
            event_type, {"job_id": data["job_id"], "user_id": data["user_id"], "vton_id": data.get("vton_id"), **fields}
        )
