"""Prometheus metrics of every Proteus process, and their exposition.

The metric objects are module-level, as prometheus-client expects: in gunicorn's
multiprocess mode each worker writes its values to files under PROMETHEUS_MULTIPROC_DIR
(set by the gunicorn configs before any worker starts, see multiproc.py),
and `/metrics` adds up the files of every worker. Without that variable (tests, the
stream runner) they live in the process' default registry.

Naming follows Prometheus' conventions: base units (`_seconds`, `_bytes`), counters end in
`_total`, every name starts with `proteus_`. Labels only ever take values from small fixed
sets (function names, event types, route rules, outcomes, stream names): never a user id,
a job id, a key or a URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from shared.observability.multiproc import MULTIPROC_ENV

# From a 5 ms CPU hop to a 10-minute GPU batch.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
PUSH_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS: Final = (1, 2, 3, 4, 6, 8, 12, 16)
OUTCOMES: Final = ("ok", "rejected", "retry", "error")  # 2xx, 4xx (never retried), retryable 5xx, a bug

# -- every CloudEvents function (shared/runtime.py) ----------------------------------------------
EVENTS_HANDLED = Counter(
    "proteus_events_handled_total",
    "Events a function handled, by type and outcome (ok, rejected, retry, error).",
    ["function", "type", "outcome"],
)
EVENT_DURATION = Histogram(
    "proteus_event_handle_duration_seconds",
    "Time a function took to handle one event.",
    ["function", "type"],
    buckets=DURATION_BUCKETS,
)
FUNCTION_READY = Gauge(
    "proteus_function_ready",
    "1 while the function is ready (model loaded, dependencies answer), read at scrape time.",
    ["function"],
    multiprocess_mode="livemostrecent",
)
JOBS_FAILED = Counter(
    "proteus_jobs_failed_total",
    "Jobs that ended failed, by type and the failure's code (e.g. invalid_image).",
    ["job_type", "reason"],
)
JOB_DURATION = Histogram(
    "proteus_job_duration_seconds",
    "Whole jobs, from the request to the completion notify recorded.",
    ["job_type", "outcome"],
    buckets=DURATION_BUCKETS,
)
MODEL_LOAD_SECONDS = Gauge(
    "proteus_model_load_seconds",
    "How long the function took to load its model at start.",
    ["function"],
    multiprocess_mode="max",
)
GPU_MEMORY_BYTES = Gauge(
    "proteus_gpu_memory_allocated_bytes",
    "GPU memory in use by the model's process (CUDA only).",
    ["function"],
    multiprocess_mode="livemax",
)
GPU_MEMORY_PEAK_BYTES = Gauge(
    "proteus_gpu_memory_peak_bytes",
    "Peak GPU memory since the process started (CUDA only).",
    ["function"],
    multiprocess_mode="max",
)
# -- weave ---------------------------------------------------------------------------------------
WEAVE_BATCH_SIZE = Histogram("proteus_weave_batch_size", "Images weave rendered in one batch.", buckets=BATCH_BUCKETS)
WEAVE_STEPS = Counter("proteus_weave_denoising_steps_total", "Denoising steps weave ran (one per batch step).")
WEAVE_PIPELINE_SECONDS = Counter(
    "proteus_weave_pipeline_seconds_total", "Time in weave's pipeline calls (decoding, denoising, VAE) that ran steps."
)
WEAVE_STEPS_PER_SECOND = Gauge(
    "proteus_weave_steps_per_second",
    "Denoising steps per second of weave's latest pipeline call (batch steps).",
    multiprocess_mode="mostrecent",
)
# -- tailor --------------------------------------------------------------------------------------
TAILOR_CACHE = Counter(
    "proteus_tailor_cache_requests_total",
    "Tailor requests answered from stored assets (hit) or computed (miss).",
    ["result"],
)
# -- gateway -------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "proteus_http_requests_total", "Gateway requests by route rule, method and status.", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "proteus_http_request_duration_seconds",
    "Gateway request time by route rule.",
    ["route", "method"],
    buckets=DURATION_BUCKETS,
)
WEBSOCKETS_OPEN = Gauge("proteus_websockets_open", "WebSockets open now.", multiprocess_mode="livesum")
PUSH_LATENCY = Histogram(
    "proteus_websocket_push_latency_seconds",
    "From a notification reaching the gateway to its send on a socket.",
    buckets=PUSH_BUCKETS,
)
RATE_LIMITED = Counter("proteus_rate_limit_refusals_total", "Requests refused with 429, by route rule.", ["route"])
# -- stream runner -------------------------------------------------------------------------------
DELIVERIES = Counter(
    "proteus_runner_deliveries_total",
    "Stream entries the runner delivered, by consumer and outcome (ok, retry, dead_letter, unreachable).",
    ["consumer", "outcome"],
)
DELIVERY_DURATION = Histogram(
    "proteus_runner_delivery_duration_seconds",
    "Time from sending an entry to its function's answer.",
    ["consumer"],
    buckets=DURATION_BUCKETS,
)


def outcome_of(status: int) -> str:
    """ok / rejected / retry / error for an HTTP status a function answered."""
    if status < 400:
        return "ok"
    if status < 500:
        return "rejected"
    return "error" if status == 500 else "retry"


def bounded(value: str | None, allowed: Iterable[str], other: str = "other") -> str:
    """`value` when it is one of `allowed`, else `other` (keeps a label's values a fixed set)."""
    return value if value is not None and value in set(allowed) else other


def reason_label(code: object) -> str:
    """A failure code as a label: our codes are short snake_case words; anything else is "other"."""
    text = str(code or "unknown")
    return text if len(text) <= 40 and text.replace("_", "").isalpha() and text.islower() else "other"


def registry() -> CollectorRegistry:
    """What /metrics shows: every worker's files in multiprocess mode, else this process."""
    if os.environ.get(MULTIPROC_ENV):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def gauge_total(gauge: Gauge) -> float | None:
    """A live gauge added up over every worker of this server (multiprocess mode: each
    worker's file), or None outside multiprocess mode (the caller counts its own)."""
    if not os.environ.get(MULTIPROC_ENV):
        return None
    (name,) = {family.name for family in gauge.describe()}
    return sum(sample.value for metric in registry().collect() if metric.name == name for sample in metric.samples)


def exposition(extra: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """(body, content type) of a scrape; `extra` adds collectors read at scrape time."""
    body = generate_latest(registry())
    if extra is not None:
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST
