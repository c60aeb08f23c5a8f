"""The weave function: a `weave.requested` event becomes a try-on image in storage.

It loads the pipelines in the background (readiness says when they are there), runs the
request, writes the result to the job's one result key, and publishes progress (at most
a few a second), then completed, or failed with a reason a person can read. Redelivery
is harmless: a finished job is skipped, and a result already written is announced again
rather than rendered twice (the seed, fixed by enqueue, makes a re-render identical too).
"""
from __future__ import annotations

import io
import json
import logging
import threading
import time
from dataclasses import replace
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from functions.weave.loading import WeaveModelConfig, load_pipelines, resolve_model
from functions.weave.pipeline import CatVTONPipeline, PipelineOptions, TryOnRequest, TryOnResult, run_requests
from shared import event_types as t
from shared import jobs
from shared.batching import MicroBatcher
from shared.config import Settings
from shared.db.models import Job
from shared.db.session import session_scope
from shared.errors import ClientError, DependencyUnavailable
from shared.stage import Dependencies, Stage
from shared.uploads import result_key

log = logging.getLogger(__name__)
Todo = tuple[int, dict[str, Any], TryOnRequest]  # (position in the call, event data, checked request)
MODELS_KEY = "proteus:models"
SMOKE_WARNING = "weave runs the SMOKE model: tiny random weights, results are noise"
LOAD_WAIT_S = 120.0
SPEED_SWITCHES = ("compile", "cuda_graphs", "channels_last", "sdpa_backend", "vae_slicing")  # in /readyz
FLAGGED_MESSAGE = (
    "The safety checker flagged this result, so it was not saved. It sometimes flags harmless "
    "images: try again with another seed or photo."
)


def model_config(settings: Settings) -> WeaveModelConfig:
    """The weave model configuration from the service settings."""
    return WeaveModelConfig(
        model=settings.weave_model,
        source=settings.weave_model_source,
        models_dir=settings.models_dir,
        device=settings.weave_device,
        dtype=settings.weave_dtype,
        options=PipelineOptions(
            max_batch_size=settings.weave_max_batch,
            compile=settings.weave_compile,
            cuda_graphs=settings.weave_cuda_graphs,
            channels_last=settings.weave_channels_last,
            sdpa_backend=settings.weave_sdpa_backend,
        ),
    )


class WeaveFunction(Stage):
    """Runs CatVTON for one weave request at a time (the pipeline is not thread-safe)."""

    source = "/proteus/functions/weave"

    def __init__(self, deps: Dependencies, load: Callable[[], Mapping[str, CatVTONPipeline]], *,
                 max_batch: int = 1, batch_wait_s: float = 0.0) -> None:
        super().__init__(deps)
        self._pipelines: Mapping[str, CatVTONPipeline] | None = None
        self._load_error: BaseException | None = None
        self._loaded = threading.Event()
        self._run_lock = threading.Lock()
        # Requests that arrive together (the runner keeps up to WEAVE_MAX_BATCH in flight)
        # are rendered as one batch; one that is still being checked is waited for.
        self._batcher: MicroBatcher[Todo, BaseCloudEvent | BaseException] = MicroBatcher(
            self._render_outcomes, max_size=max(1, max_batch), wait_s=batch_wait_s, name="weave-batcher")
        threading.Thread(target=self._load, args=(load,), name="weave-model-load", daemon=True).start()

    @classmethod
    def from_settings(cls, settings: Settings) -> WeaveFunction:
        config = model_config(settings)
        kind = resolve_model(config)
        if kind == "smoke":
            log.warning("%s (WEAVE_MODEL=%s, models in %s)", SMOKE_WARNING, settings.weave_model, settings.models_dir)
        return cls(Dependencies.from_settings(settings), lambda: load_pipelines(config),
                   max_batch=settings.weave_max_batch, batch_wait_s=settings.weave_batch_wait_ms / 1000)

    def close(self) -> None:
        """Finish the requests already submitted, then stop the batcher."""
        self._batcher.close(timeout=LOAD_WAIT_S)

    # -- model ------------------------------------------------------------------------

    def _load(self, load: Callable[[], Mapping[str, CatVTONPipeline]]) -> None:
        try:
            self._pipelines = load()
            info = self.model_info()
            self.redis.hset(self.settings.redis_key_prefix + MODELS_KEY, "weave", json.dumps(info))
            if info["smoke"]:
                log.warning("%s", SMOKE_WARNING)
        except BaseException as exc:  # noqa: BLE001 - reported by readiness and every request
            log.exception("loading the weave model failed")
            self._load_error = exc
        finally:
            self._loaded.set()

    def model_info(self) -> dict[str, Any]:
        """What runs: model name, variants, device, dtype, and a warning when it is the smoke model."""
        if not self._pipelines:
            return {"model": None, "smoke": None, "loaded": False}
        pipe = next(iter(self._pipelines.values()))
        smoke = pipe.model_name == "smoke"
        return {
            "model": pipe.model_name,
            "variants": sorted(self._pipelines),
            "device": str(pipe.device),
            "dtype": str(pipe.unet.dtype).removeprefix("torch."),
            "smoke": smoke,
            "speed": {name: getattr(pipe.options, name) for name in SPEED_SWITCHES},
            "warning": SMOKE_WARNING if smoke else None,
            "loaded": True,
        }

    def _ready_pipelines(self, timeout: float) -> Mapping[str, CatVTONPipeline]:
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
        """One request (HTTP): checked in this thread, rendered in a batch with the requests
        that arrive with it."""
        data: dict[str, Any] = dict(event.get_data() or {})
        with self._batcher.reserve() as slot:  # a batch being gathered waits for this one
            done, request = self._prepare(data)
            if request is None:
                return done
            outcome = slot.submit((0, data, request))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def handle_batch(self, events: Sequence[BaseCloudEvent]) -> list[BaseException | None]:
        """Several weave requests, rendered in as few batched pipeline calls as they allow.

        The stream runner calls this in pull mode; each outcome is None (handled: completed
        or failed with a reason) or the exception that makes that entry's delivery retry.
        """
        return [o if isinstance(o, BaseException) else None for o in self._handle_all(events)]

    def _handle_all(self, events: Sequence[BaseCloudEvent]) -> list[BaseCloudEvent | BaseException | None]:
        outcomes: list[BaseCloudEvent | BaseException | None] = [None] * len(events)
        todo: list[Todo] = []
        for index, event in enumerate(events):
            data: dict[str, Any] = dict(event.get_data() or {})
            try:
                done, request = self._prepare(data)
            except Exception as exc:  # noqa: BLE001 - this entry's delivery fails (and is retried)
                outcomes[index] = exc
                continue
            if request is None:
                outcomes[index] = done
            else:
                todo.append((index, data, request))
        for index, outcome in self._render(todo):
            outcomes[index] = outcome
        return outcomes

    def _prepare(self, data: dict[str, Any]) -> tuple[BaseCloudEvent | None, TryOnRequest | None]:
        """(the reply, None) when there is nothing to render, else (None, the checked request)."""
        job_id, user_id = data["job_id"], data["user_id"]
        with session_scope(self.sessions, write=True) as session:
            job = session.get(Job, job_id)
            if job is not None and job.status in ("succeeded", "failed"):
                log.info("job %s is already %s; nothing to do", job_id, job.status)
                return None, None
            jobs.mark_running(session, job_id)
        key = result_key(user_id, job_id)
        if self.storage.exists(key):
            # A previous delivery rendered it and died before announcing it.
            return self._publish(t.WEAVE_COMPLETED, data, result_key=key, seed=data.get("seed"),
                                 model=self.model_info()["model"], metadata={"recovered": True}), None
        pipelines = self._ready_pipelines(LOAD_WAIT_S)
        try:
            request = self._request(data)
            variant = request.resolved_variant()
            if variant not in pipelines:
                run_requests(pipelines, [request])  # refuses it, naming the variants that are loaded
            checked = pipelines[variant].check_inputs(request)
        except ClientError as exc:
            return self._publish(t.WEAVE_FAILED, data, error=exc.message, code=exc.code, retryable=False), None
        # Checked here so one bad request never fails a batch; decoded once.
        return None, replace(request, person=checked.person, garment=checked.garment, mask=checked.mask)

    def _render_outcomes(self, todo: Sequence[Todo]) -> list[BaseCloudEvent | BaseException]:
        """The batcher's call: `_render`'s outcomes, in the order of `todo`."""
        return [outcome for _, outcome in self._render(list(todo))]

    def _render(self, todo: list[Todo]) -> list[tuple[int, BaseCloudEvent | BaseException]]:
        """Run the checked requests as one pipeline call (batched where compatible).

        If a call of several fails, each request runs alone, so one request's trouble (or a
        batch too big for the GPU) never fails the others.
        """
        if not todo:
            return []
        try:
            with self._run_lock:
                started = time.perf_counter()
                results = run_requests(
                    self._ready_pipelines(LOAD_WAIT_S), [r for _, _, r in todo],
                    callback=self._progress([d for _, d, _ in todo]),
                )
                elapsed = round(time.perf_counter() - started, 4)
        except ClientError as exc:
            if len(todo) > 1:
                return [out for item in todo for out in self._render([item])]
            index, data, _ = todo[0]
            return [(index, self._publish(t.WEAVE_FAILED, data, error=exc.message, code=exc.code, retryable=False))]
        except Exception as exc:  # noqa: BLE001 - retried one by one, or this delivery fails
            if len(todo) > 1:
                log.warning("a batch of %d failed (%r); running them one at a time", len(todo), exc)
                return [out for item in todo for out in self._render([item])]
            return [(todo[0][0], exc)]
        finished: list[tuple[int, BaseCloudEvent | BaseException]] = []
        for (index, data, _), result in zip(todo, results):
            # The whole model call: checks, image decoding, denoising, VAE (`seconds` is the batch alone).
            result.metadata["pipeline_seconds"] = elapsed
            try:
                finished.append((index, self._finish(data, result)))
            except Exception as exc:  # noqa: BLE001 - storage or Redis trouble: this delivery retries
                finished.append((index, exc))
        return finished

    def _finish(self, data: dict[str, Any], result: TryOnResult) -> BaseCloudEvent:
        """Store the result and announce it (or fail the job when the safety checker flagged it)."""
        if result.nsfw:
            return self._publish(t.WEAVE_FAILED, data, error=FLAGGED_MESSAGE, code="flagged_by_safety_checker",
                                 retryable=False)
        key = result_key(data["user_id"], data["job_id"])
        buffer = io.BytesIO()
        result.image.save(buffer, "PNG")
        self.storage.put(key, buffer.getvalue(), "image/png")
        return self._publish(
            t.WEAVE_COMPLETED, data, result_key=key, seed=result.seed, model=result.metadata.get("model"),
            metadata=_json_safe(result.metadata),
        )

    def _request(self, data: dict[str, Any]) -> TryOnRequest:
        """The pipeline request: images from storage, settings from the event (defaults otherwise)."""
        person = self.storage.get(data["person_key"])
        garment = self.storage.get(data["garment_key"])
        mask = self.storage.get(data["mask_key"]) if data.get("mask_key") else None
        category = data.get("category") or "upper"
        options = {k: data[k] for k in ("steps", "guidance", "seed", "height", "width", "repaint") if k in data}
        return TryOnRequest(
            person=person,
            garment=garment,
            mask=mask,
            category=category if category != "auto" else "upper",
            variant=data.get("variant") or ("mask" if mask is not None else self.settings.weave_variant),
            safety_check=self.settings.weave_safety_check,
            **options,
        )

    def _progress(self, batch: list[dict[str, Any]]) -> Callable[[int, int], None]:
        """A callback publishing step k of n for every job of the call, at most once per interval.

        The last step is not reported: the completion follows at once, and a progress event
        ahead of it on the results stream would only delay it.
        """
        last = 0.0

        def report(step: int, steps: int) -> None:
            nonlocal last
            now = time.monotonic()
            if step >= steps or now - last < self.settings.progress_interval_s:
                return
            last = now
            for data in batch:
                self._publish(t.WEAVE_PROGRESS, data, step=step, steps=steps)

        return report

    def _publish(self, event_type: str, data: dict[str, Any], **fields: Any) -> BaseCloudEvent:
        """Publish an event about the job of `data` with `fields`."""
        return self.publish(
            event_type, {"job_id": data["job_id"], "user_id": data["user_id"], "vton_id": data.get("vton_id"), **fields}
        )


def _json_safe(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata with every value JSON can carry (others as strings)."""
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in metadata.items()}
