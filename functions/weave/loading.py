"""Loading CatVTON pipelines: real weights (local folder or Hugging Face) or the smoke model.

- `WeaveModelConfig`: what to load (model auto|real|smoke, source local|hub, models_dir,
  device, dtype, variants, safety checker, pipeline options).
- `resolve_model(config) -> "real" | "smoke"`: smoke when configured, or ("auto") when the
  local real weights are missing; using smoke is logged loudly at WARNING.
- `load_pipeline(config, variant) -> CatVTONPipeline`; `load_pipelines(config)` loads every
  configured variant sharing one VAE.
- `load_attention_weights(unet, path)`: the CatVTON attn1 checkpoint, checked complete.

Folder layout (real under `models_dir`, smoke under `models_dir/smoke`):
`sd-vae-ft-mse/`, `stable-diffusion-inpainting/{unet,scheduler}/`,
`instruct-pix2pix/{unet,scheduler}/`, `CatVTON/mix-48k-1024/attention/model.safetensors`,
`CatVTON-MaskFree/mix-48k-1024/attention/model.safetensors`; optionally
`stable-diffusion-inpainting/{safety_checker,feature_extractor}/`. Each model folder holds
`config.json` and one weights file: `.safetensors`, `.fp16.safetensors` or `.bin` (best
first; `hub_fetches` / `fetch` pick the best a repo has, `download.py` uses them too).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

from functions.weave.pipeline import VARIANTS, CatVTONPipeline, PipelineOptions
from shared.errors import DependencyUnavailable, ProteusError

logger = logging.getLogger(__name__)

VAE_DIR = "sd-vae-ft-mse"
BASE_DIRS = {"mask": "stable-diffusion-inpainting", "maskfree": "instruct-pix2pix"}
ATTENTION_SUBPATH = "mix-48k-1024/attention/model.safetensors"
ATTENTION_DIRS = {"mask": "CatVTON", "maskfree": "CatVTON-MaskFree"}
SAFETY_BASE = "stable-diffusion-inpainting"
SMOKE_MARKER = "weave-smoke.json"  # models/smoke is shared with the tailor's smoke model

HUB_IDS = {
    "vae": "stabilityai/sd-vae-ft-mse",
    "mask": "booksforcharlie/stable-diffusion-inpainting",
    "maskfree": "timbrooks/instruct-pix2pix",
    "attention-mask": "zhengchong/CatVTON",
    "attention-maskfree": "zhengchong/CatVTON-MaskFree",  # gated: needs HF_TOKEN
}
# Weight files accepted per folder, best first. Not every base repo ships fp32 safetensors
# (booksforcharlie/stable-diffusion-inpainting has only the .bin), so the best one there
# is fetched and loaded.
MODEL_WEIGHTS = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
)
CHECKER_WEIGHTS = ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin")
ATTENTION_PATTERNS = ("mix-48k-1024/attention/*",)

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
ATTENTION_SUFFIXES = ("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias")
ATTENTION_KEY_STRIDE = 8  # upstream counted 8 module names per attn1; released keys 0, 8, ...
DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


class ModelLoadError(ProteusError):
    """The model files are there but wrong (incomplete or mismatched): not retryable."""

    status = 500
    retryable = False
    code = "model_load_error"


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


@dataclass(frozen=True)
class ModelPaths:
    """Where one variant's files are."""

    vae: Path
    base: Path
    attention: Path
    safety_base: Path

    def missing(self) -> list[Path]:
        """Required files that are absent (a weights file: the preferred name)."""
        absent = [
            folder / name
            for folder in (self.vae, self.base / "unet")
            for name in ("config.json",)
            if not (folder / name).is_file()
        ]
        absent += [
            folder / MODEL_WEIGHTS[0] for folder in (self.vae, self.base / "unet") if find_weights(folder) is None
        ]
        absent += [p for p in (self.base / "scheduler" / "scheduler_config.json", self.attention) if not p.is_file()]
        return absent


def find_weights(folder: Path, names: tuple[str, ...] = MODEL_WEIGHTS) -> Path | None:
    """The best weights file present in `folder`, or None."""
    return next((Path(folder) / n for n in names if (Path(folder) / n).is_file()), None)


def weights_variant(path: Path | None) -> str | None:
    """The diffusers/transformers `variant` of a weights file ("fp16" or None)."""
    return "fp16" if path is not None and ".fp16." in path.name else None


def local_paths(root: Path, variant: str) -> ModelPaths:
    """The layout above, for one variant."""
    root = Path(root)
    return ModelPaths(
        vae=root / VAE_DIR,
        base=root / BASE_DIRS[variant],
        attention=root / ATTENTION_DIRS[variant] / ATTENTION_SUBPATH,
        safety_base=root / SAFETY_BASE,
    )


def missing_files(root: Path, variants: tuple[str, ...]) -> list[Path]:
    """Required local files that do not exist."""
    missing: list[Path] = []
    for variant in variants:
        missing += [p for p in local_paths(root, variant).missing() if p not in missing]
    return missing


@dataclass(frozen=True)
class HubFetch:
    """One Hugging Face repo to fetch: fixed patterns plus, per folder, its best weights."""

    repo_id: str
    folder: str  # where it goes under models_dir
    files: tuple[str, ...] = ()
    weights: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (folder prefix, candidates)


def hub_fetches(variants: tuple[str, ...], safety_checker: bool = True) -> list[HubFetch]:
    """Every repo the given variants need, in order (VAE, then base + attention each)."""
    fetches = [HubFetch(HUB_IDS["vae"], VAE_DIR, ("config.json",), (("", MODEL_WEIGHTS),))]
    safety = (
        ("safety_checker/config.json", "feature_extractor/preprocessor_config.json"),
        (("safety_checker/", CHECKER_WEIGHTS),),
    )
    for variant in variants:
        files: tuple[str, ...] = ("unet/config.json", "scheduler/scheduler_config.json")
        weights: tuple[tuple[str, tuple[str, ...]], ...] = (("unet/", MODEL_WEIGHTS),)
        if safety_checker and BASE_DIRS[variant] == SAFETY_BASE:
            files, weights = files + safety[0], weights + safety[1]
        fetches.append(HubFetch(HUB_IDS[variant], BASE_DIRS[variant], files, weights))
        fetches.append(HubFetch(HUB_IDS[f"attention-{variant}"], ATTENTION_DIRS[variant], ATTENTION_PATTERNS))
    if safety_checker and "mask" not in variants:
        fetches.append(HubFetch(HUB_IDS["mask"], SAFETY_BASE, *safety))
    return fetches


def fetch(item: HubFetch, *, local_dir: Path | None = None, token: str | None = None) -> Path:
    """Download one repo's needed files (into `local_dir`, else the HF cache); its folder.

    Lists the repo once to pick the best weights file of each folder, so a repo shipping
    only .bin or only fp16 safetensors still works."""
    import huggingface_hub

    patterns = list(item.files)
    if item.weights:
        present = set(huggingface_hub.list_repo_files(item.repo_id, token=token))
        for prefix, candidates in item.weights:
            best = next((prefix + n for n in candidates if prefix + n in present), None)
            if best is None:
                raise DependencyUnavailable(
                    f"{item.repo_id} has no weights in '{prefix or '/'}' (looked for {', '.join(candidates)})"
                )
            patterns.append(best)
    path = huggingface_hub.snapshot_download(
        item.repo_id,
        allow_patterns=patterns,
        token=token,
        **({"local_dir": str(local_dir)} if local_dir is not None else {}),
    )
    return Path(path)


def hub_paths(variant: str, *, safety_checker: bool = True) -> ModelPaths:
    """Download (or reuse the cache of) one variant's files from Hugging Face."""
    token = os.environ.get("HF_TOKEN") or None
    try:
        folders = {f.folder: fetch(f, token=token) for f in hub_fetches((variant,), safety_checker)}
    except Exception as exc:  # network, auth (gated repo), missing files
        raise DependencyUnavailable(
            f"could not fetch the {variant} weights from Hugging Face (HF_TOKEN {'set' if token else 'not set'}): {exc}"
        ) from exc
    base = folders[BASE_DIRS[variant]]
    return ModelPaths(
        vae=folders[VAE_DIR],
        base=base,
        attention=folders[ATTENTION_DIRS[variant]] / ATTENTION_SUBPATH,
        safety_base=folders.get(SAFETY_BASE, base),
    )


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


def attn1_modules(unet: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Every self-attention module, in `named_modules()` order."""
    return [(name, module) for name, module in unet.named_modules() if name.rsplit(".", 1)[-1] == "attn1"]


def attention_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The attn1 weights in the released key scheme (`{8k}.to_q.weight`, ...)."""
    state = {}
    for k, (_, module) in enumerate(attn1_modules(unet)):
        own = module.state_dict()
        for suffix in ATTENTION_SUFFIXES:
            state[f"{k * ATTENTION_KEY_STRIDE}.{suffix}"] = own[suffix].detach().clone()
    return state


def load_attention_weights(unet: torch.nn.Module, path: Path | str) -> None:
    """Copy the CatVTON attn1 weights into `unet`; the sorted distinct key indices map onto
    the attn1 modules in order. Fails naming what is missing, extra or mis-shaped."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise DependencyUnavailable(f"attention weights not found: {path}")
    state = load_file(str(path))
    modules = attn1_modules(unet)
    want = len(modules)
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    extra = []
    for key, tensor in state.items():
        match = re.fullmatch(r"(\d+)\.(.+)", key)
        if not match or match.group(2) not in ATTENTION_SUFFIXES:
            extra.append(key)
            continue
        by_index.setdefault(int(match.group(1)), {})[match.group(2)] = tensor
    indices = sorted(by_index)
    expected = [k * ATTENTION_KEY_STRIDE for k in range(want)]
    if set(indices) <= set(expected):
        indices = expected  # so a module missing entirely is named too
    missing = [f"{i}.{s}" for i in indices for s in ATTENTION_SUFFIXES if s not in by_index.get(i, {})]
    found = sum(len(v) for v in by_index.values())
    if missing or extra or len(indices) != want:
        parts = [
            f"{path}: expected {want} attn1 modules x {len(ATTENTION_SUFFIXES)} = "
            f"{want * len(ATTENTION_SUFFIXES)} tensors, found {found}"
        ]
        if len(indices) != want:
            parts.append(f"{len(indices)} module indices ({indices[:4]}...) for {want} modules")
        if missing:
            parts.append(
                f"missing: {', '.join(missing[:10])}{f' (+{len(missing) - 10} more)' if len(missing) > 10 else ''}"
            )
        if extra:
            parts.append(f"unexpected keys: {', '.join(sorted(extra)[:10])}")
        raise ModelLoadError("; ".join(parts))
    with torch.no_grad():
        for index, (name, module) in zip(indices, modules):
            params = dict(module.named_parameters())
            for suffix in ATTENTION_SUFFIXES:
                source, target = by_index[index][suffix], params[suffix]
                if source.shape != target.shape:
                    raise ModelLoadError(
                        f"{path}: {index}.{suffix} has shape "
                        f"{tuple(source.shape)}, {name}.{suffix} needs "
                        f"{tuple(target.shape)}"
                    )
                target.copy_(source.to(target.dtype))


def _smoke_meta(root: Path) -> dict | None:
    marker = Path(root) / SMOKE_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def _load_safety(paths: ModelPaths, dtype: torch.dtype) -> tuple[object | None, object | None]:
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
        safety = _load_safety(paths, dtype) if config.safety_checker else (None, None)
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
