"""What weave reports about itself: the loaded models (readiness, the models registry in
Redis) and the metrics of each pipeline call."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from functions.weave.fashn.pipeline import FashnVTONPipeline
from functions.weave.models import Pipeline, is_smoke
from shared.contracts.tryon import CATVTON_VARIANT_MODELS, MODELS
from shared.observability.metrics import (
    GPU_MEMORY_BYTES,
    GPU_MEMORY_PEAK_BYTES,
    WEAVE_BATCH_SIZE,
    WEAVE_PIPELINE_SECONDS,
    WEAVE_STEPS,
    WEAVE_STEPS_PER_SECOND,
)

SMOKE_WARNING = "weave runs the SMOKE model: tiny random weights, results are noise"
SPEED_SWITCHES = ("compile", "cuda_graphs", "channels_last", "sdpa_backend", "vae_slicing")  # in /readyz


def describe_models(
    pipelines: Mapping[str, Pipeline] | None,
    default_model: str,
    *,
    commercial: bool,
    batch_limit: int,
    batch_throughput: dict[int, float] | None,
) -> dict[str, Any]:
    """What runs: every loaded model with its licence, the default, device, dtype, and a
    warning when any of them is a smoke model."""
    if not pipelines:
        return {"model": None, "smoke": None, "loaded": False, "models": []}
    first = next(iter(pipelines.values()))
    smoke = any(is_smoke(p) for p in pipelines.values())
    catvton = [p for p in pipelines.values() if not isinstance(p, FashnVTONPipeline)]
    models = [
        {
            "name": name,
            "family": MODELS[name].family,
            "licence": MODELS[name].licence,
            "commercial": MODELS[name].commercial,
            "smoke": is_smoke(pipe),
            "default": name == default_model,
            **({"human_parser": pipe.human_parser is not None} if isinstance(pipe, FashnVTONPipeline) else {}),
        }
        for name, pipe in pipelines.items()
    ]
    return {
        "model": "smoke" if smoke else default_model,
        "default_model": default_model,
        "models": models,
        "commercial": commercial,
        "variants": sorted(v for v, n in CATVTON_VARIANT_MODELS.items() if n in pipelines),
        "device": str(first.device),
        "dtype": str(first.dtype if isinstance(first, FashnVTONPipeline) else first.unet.dtype).removeprefix("torch."),
        "smoke": smoke,
        "speed": {name: getattr((catvton[0] if catvton else first).options, name) for name in SPEED_SWITCHES},
        "max_batch": batch_limit,
        "batch_images_per_s": batch_throughput,
        "warning": SMOKE_WARNING if smoke else None,
        "loaded": True,
    }


def record_batch(size: int, steps: int, seconds: float) -> None:
    """Batch size, denoising steps and (on CUDA) GPU memory after one pipeline call."""
    WEAVE_BATCH_SIZE.observe(size)
    if steps:
        WEAVE_STEPS.inc(steps)
        WEAVE_PIPELINE_SECONDS.inc(seconds)
        if seconds > 0:
            WEAVE_STEPS_PER_SECOND.set(steps / seconds)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        GPU_MEMORY_BYTES.labels("weave").set(torch.cuda.memory_allocated())
        GPU_MEMORY_PEAK_BYTES.labels("weave").set(torch.cuda.max_memory_allocated())
