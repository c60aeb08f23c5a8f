"""Loading CatVTON pipelines: real weights (local folder or Hugging Face) or the smoke model.

- `WeaveModelConfig`: what to load (model auto|real|smoke, source local|hub, models_dir,
  device, dtype, variants, safety checker, pipeline options).
- `resolve_model(config) -> "real" | "smoke"`: smoke when configured, or ("auto") when the
  local real weights are missing; using smoke is logged loudly at WARNING.
- `load_pipeline(config, variant) -> CatVTONPipeline`; `load_pipelines(config)` loads every
  configured variant sharing one VAE.
- `model_config(settings)`: the WeaveModelConfig of the service settings.
- `load_safety(paths, dtype)`: the safety checker and its feature extractor, when present.

The folder layout and the Hugging Face fetches are in weights.py; the attention weights
are loaded by attention.py.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from functions.weave.attention import load_attention_weights
from functions.weave.pipeline import CatVTONPipeline
from functions.weave.pipeline_common import PipelineOptions
from functions.weave.weights import (
    CHECKER_WEIGHTS,
    SMOKE_MARKER,
    ModelPaths,
    find_weights,
    hub_paths,
    local_paths,
    missing_files,
    weights_variant,
)
from shared.config import Settings
from shared.contracts.tryon import VARIANTS
from shared.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

# SD-1.5 DDIM settings (spec): set explicitly, whatever the base repo's scheduler says.
DDIM_SETTINGS = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)
DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


@dataclass
class WeaveModelConfig:
    """What the weave stage loads. `model`: auto | real | smoke; `source`: local | hub."""

    model: str = "auto"
    source: str = "local"
    models_dir: Path = Path("models")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp16 | fp32
    variants: tuple[str, ...] = VARIANTS
    safety_checker: bool = True  # load it when its files exist
    options: PipelineOptions = field(default_factory=PipelineOptions)

    def __post_init__(self) -> None:
        self.models_dir = Path(self.models_dir)
        self.variants = tuple(self.variants)
        if self.model not in ("auto", "real", "smoke"):
            raise ValueError(f"model must be auto, real or smoke, got {self.model!r}")
        if self.source not in ("local", "hub"):
            raise ValueError(f"source must be local or hub, got {self.source!r}")
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad or not self.variants:
            raise ValueError(f"variants must be among {VARIANTS}, got {self.variants!r}")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"dtype must be auto, bf16, fp16 or fp32, got {self.dtype!r}")

    @property
    def smoke_dir(self) -> Path:
        return self.models_dir / "smoke"


def resolve_model(config: WeaveModelConfig) -> str:
    """ "real" or "smoke". Smoke when configured, or when ("auto", local) real weights are
    missing; every smoke choice is logged at WARNING so nobody mistakes it for the model."""
    if config.model == "real":
        return "real"
    if config.model == "auto":
        if config.source == "hub":
            return "real"
        missing = missing_files(config.models_dir, config.variants)
        if not missing:
            return "real"
        reason = (
            f"no real weights in {config.models_dir} (missing {missing[0]}"
            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}; "
            f"run `make models`)"
        )
    else:
        reason = "configured (model=smoke)"
    logger.warning(
        "WEAVE USES THE SMOKE MODEL: tiny random weights, results are NOT try-ons. Reason: %s. Smoke weights: %s",
        reason,
        config.smoke_dir,
    )
    return "smoke"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def build_scheduler(scheduler_dir: Path | None) -> DDIMScheduler:
    """DDIM from the base repo's scheduler config, with the SD-1.5 settings forced."""
    config = {}
    if scheduler_dir is not None and (Path(scheduler_dir) / "scheduler_config.json").is_file():
        config = DDIMScheduler.load_config(str(scheduler_dir))
    return DDIMScheduler.from_config(config, **DDIM_SETTINGS)


def _smoke_meta(root: Path) -> dict | None:
    marker = Path(root) / SMOKE_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def load_safety(paths: ModelPaths, dtype: torch.dtype) -> tuple[object | None, object | None]:
    """The safety checker and its feature extractor under `paths.safety_base`, or (None, None)."""
    checker_dir = paths.safety_base / "safety_checker"
    extractor_dir = paths.safety_base / "feature_extractor"
    weights = find_weights(checker_dir, CHECKER_WEIGHTS)
    if (
        weights is None
        or not (checker_dir / "config.json").is_file()
        or not (extractor_dir / "preprocessor_config.json").is_file()
    ):
        logger.warning("no safety checker in %s: safety checks will report 'unavailable'", paths.safety_base)
        return None, None
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    checker = StableDiffusionSafetyChecker.from_pretrained(
        str(checker_dir), dtype=dtype, variant=weights_variant(weights)
    )
    return checker, CLIPImageProcessor.from_pretrained(str(extractor_dir))


def load_pipeline(
    config: WeaveModelConfig,
    variant: str,
    *,
    vae: AutoencoderKL | None = None,
    safety: tuple[object | None, object | None] | None = None,
) -> CatVTONPipeline:
    """Load one variant ("maskfree" or "mask") as configured; `vae` and `safety`
    (checker, feature extractor) may be shared with another pipeline."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    kind = resolve_model(config)
    if kind == "smoke":
        from functions.weave.smoke import write_smoke_model

        root = write_smoke_model(config.smoke_dir)
        paths = local_paths(root, variant)
    elif config.source == "hub":
        paths = hub_paths(variant, safety_checker=config.safety_checker)
    else:
        paths = local_paths(config.models_dir, variant)
    absent = [str(p) for p in paths.missing()]
    if absent:
        raise DependencyUnavailable(f"{variant} weights incomplete, missing: {', '.join(absent)} (run `make models`)")
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    meta = None if kind == "real" and config.source == "hub" else _smoke_meta(paths.base.parent)
    options = PipelineOptions(**vars(config.options))
    if meta is not None:  # the smoke model's own settings, unless configured otherwise
        if options.max_render_pixels is None:
            options.max_render_pixels = meta.get("max_render_pixels")
        if options.num_threads is None:
            options.num_threads = meta.get("num_threads")

    if vae is None:
        vae = AutoencoderKL.from_pretrained(
            str(paths.vae), torch_dtype=dtype, variant=weights_variant(find_weights(paths.vae))
        )
    unet = UNet2DConditionModel.from_pretrained(
        str(paths.base), subfolder="unet", torch_dtype=dtype, variant=weights_variant(find_weights(paths.base / "unet"))
    )
    load_attention_weights(unet, paths.attention)
    if safety is None:
        safety = load_safety(paths, dtype) if config.safety_checker else (None, None)
    checker, extractor = safety
    pipe = CatVTONPipeline(
        vae=vae,
        unet=unet,
        scheduler=build_scheduler(paths.base / "scheduler"),
        variant=variant,
        safety_checker=checker,
        feature_extractor=extractor,
        model_name="smoke" if meta is not None else "catvton",
        options=options,
    )
    for module in (vae, unet, checker):
        if module is not None:
            module.eval().requires_grad_(False)
    pipe.to(device)
    logger.info("loaded weave %s pipeline (%s) on %s as %s", variant, pipe.model_name, device, dtype)
    return pipe


def load_pipelines(config: WeaveModelConfig) -> dict[str, CatVTONPipeline]:
    """Every configured variant, sharing one VAE: {"maskfree": ..., "mask": ...}. With
    compile on, each is warmed up (compiled) before it is returned, so readiness waits."""
    pipes: dict[str, CatVTONPipeline] = {}
    for variant in config.variants:
        first = next(iter(pipes.values()), None)
        pipes[variant] = load_pipeline(
            config,
            variant,
            vae=first.vae if first else None,
            safety=(first.safety_checker, first.feature_extractor) if first else None,
        )
    if config.options.compile or config.options.cuda_graphs:
        for variant, pipe in pipes.items():
            started = time.perf_counter()
            shapes = pipe.warm_up()
            logger.info(
                "compiled the weave %s UNet for batches %s in %.1f s", variant, shapes, time.perf_counter() - started
            )
    return pipes


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
