"""Weave's models by name: each family loaded by its own loader, requests routed by model.

- `ModelSet(models, commercial)`: which models an instance loads (`shared.contracts.tryon.MODELS`).
- `load_models(config, models, commercial=False) -> {name: pipeline}`: CatVTON variants share
  one VAE and the safety checker; FASHN VTON gets the same checker. Under `commercial` the
  FASHN human parser is not loaded and CatVTON is refused.
- `model_of(request)`: the model a pipeline request is for.
- `run_models(pipelines, requests, callback)`: every request checked by its model's pipeline
  before any work, then each model's requests batched; results keep the input order and
  `callback(k, n)` counts steps over the whole call (it may raise to stop all, or answer the
  indices of requests to stop: None in their place).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from functions.weave.fashn.pipeline import FashnRequest, FashnVTONPipeline
from functions.weave.loading import (
    WeaveModelConfig,
    load_pipelines,
    load_safety,
    resolve_device,
    resolve_dtype,
)
from functions.weave.pipeline import CatVTONPipeline
from functions.weave.pipeline_common import Progress, StepCallback, TryOnResult
from functions.weave.request import TryOnRequest, sum_steps
from functions.weave.weights import local_paths
from shared.contracts.tryon import CATVTON_VARIANT_MODELS, FASHN_MODEL, MODELS
from shared.errors import ModelNotLoaded

logger = logging.getLogger(__name__)

Pipeline = CatVTONPipeline | FashnVTONPipeline
Request = TryOnRequest | FashnRequest


def model_of(request: Request) -> str:
    """The model name a pipeline request is for."""
    if isinstance(request, FashnRequest):
        return FASHN_MODEL
    return CATVTON_VARIANT_MODELS.get(request.resolved_variant(), f"catvton-{request.resolved_variant()}")


def fashn_root(config: WeaveModelConfig, parser: bool) -> tuple[Path, bool]:
    """(folder, smoke?) of the FASHN files: the real ones when complete, else the smoke family
    (written when missing) with a loud warning, unless the configuration says real."""
    from functions.weave.fashn.loading import FOLDER, FashnFiles
    from functions.weave.fashn.smoke import write_smoke_fashn

    real = FashnFiles(config.models_dir / FOLDER)
    missing = real.missing(parser)
    if config.model == "real" or (config.model == "auto" and not missing):
        return real.root, False
    reason = (
        "configured (model=smoke)"
        if config.model == "smoke"
        else (f"no real weights in {real.root} (missing {missing[0]}; run `make models`)")
    )
    logger.warning(
        "%s USES THE SMOKE MODEL: tiny random weights, results are NOT try-ons. Reason: %s", FASHN_MODEL, reason
    )
    return write_smoke_fashn(config.smoke_dir), True


def load_models(config: WeaveModelConfig, models: Sequence[str], *, commercial: bool = False) -> dict[str, Pipeline]:
    """Every named model as its pipeline, keyed by name, in the order given."""
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown weave models {unknown} (known: {', '.join(MODELS)})")
    refused = [m for m in models if commercial and not MODELS[m].commercial]
    if refused:
        raise ValueError(f"commercial deployments cannot load {refused}: {MODELS[refused[0]].licence}")
    pipes: dict[str, Pipeline] = {}
    variants = tuple(v for v, name in CATVTON_VARIANT_MODELS.items() if name in models)
    catvton: dict[str, CatVTONPipeline] = {}
    if variants:
        from dataclasses import replace

        catvton = load_pipelines(replace(config, variants=variants))
    if FASHN_MODEL in models:
        from functions.weave.fashn.loading import load_fashn_pipeline

        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        safety: tuple[Any, Any] = (None, None)
        if catvton:
            first = next(iter(catvton.values()))
            safety = (first.safety_checker, first.feature_extractor)
        elif config.safety_checker:
            safety = _fashn_safety(config, dtype)
        root, _smoke = fashn_root(config, parser=not commercial)
        pipe = load_fashn_pipeline(
            root, device=device, dtype=dtype, parser=not commercial, safety=safety, options=config.options
        )
        if safety[0] is not None:
            safety[0].to(device)  # type: ignore[attr-defined]
        fashn = pipe
    for name in models:
        if name == FASHN_MODEL:
            pipes[name] = fashn
        else:
            variant = next(v for v, n in CATVTON_VARIANT_MODELS.items() if n == name)
            pipes[name] = catvton[variant]
    return pipes


def _fashn_safety(config: WeaveModelConfig, dtype: Any) -> tuple[Any, Any]:
    """The SD safety checker for a FASHN-only instance, from the CatVTON layout when present."""
    from functions.weave.loading import resolve_model

    root = config.models_dir
    if resolve_model(config) == "smoke":
        from functions.weave.smoke import write_smoke_model

        root = write_smoke_model(config.smoke_dir)
    return load_safety(local_paths(root, "mask"), dtype)


def is_smoke(pipe: Pipeline) -> bool:
    return bool(getattr(pipe, "is_smoke", False)) or getattr(pipe, "model_name", "") == "smoke"


def run_models(
    pipelines: Mapping[str, Pipeline], requests: Sequence[Request], callback: StepCallback | None = None
) -> list[TryOnResult | None]:
    """Route each request to its model's pipeline; results keep the input order."""
    by_model: dict[str, list[Any]] = {}
    several = len(requests) > 1
    for i, request in enumerate(requests):  # validate everything before any work
        name = model_of(request)
        if name not in pipelines:
            raise ModelNotLoaded(
                f"{f'request {i}: ' if several else ''}model {name!r} is not loaded here "
                f"(loaded: {', '.join(pipelines) or 'none'})",
                field="model",
            )
        item = pipelines[name].check_inputs(request, i if several else None)  # type: ignore[arg-type]
        item.index = i
        by_model.setdefault(name, []).append(item)
    total = 0
    for name, items in by_model.items():
        pipe = pipelines[name]
        total += pipe.count_steps(items) if isinstance(pipe, FashnVTONPipeline) else sum_steps(items, pipe.options)
    progress = Progress(total, callback)
    results: list[TryOnResult | None] = [None] * len(requests)
    for name, items in by_model.items():
        for item, result in zip(items, pipelines[name].run_checked(items, progress)):
            if result is None:  # stopped by the callback (its job was canceled)
                continue
            results[item.index] = result
            result.metadata["model"] = name
            result.metadata["smoke"] = is_smoke(pipelines[name])
    return results
