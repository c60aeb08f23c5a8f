"""Where CatVTON's weights are: the folder layout, and what to fetch from Hugging Face.

Folder layout (real under `models_dir`, smoke under `models_dir/smoke`):
`sd-vae-ft-mse/`, `stable-diffusion-inpainting/{unet,scheduler}/`,
`instruct-pix2pix/{unet,scheduler}/`, `CatVTON/mix-48k-1024/attention/model.safetensors`,
`CatVTON-MaskFree/mix-48k-1024/attention/model.safetensors`; optionally
`stable-diffusion-inpainting/{safety_checker,feature_extractor}/`. Each model folder holds
`config.json` and one weights file: `.safetensors`, `.fp16.safetensors` or `.bin` (best
first; `hub_fetches` / `fetch` pick the best a repo has, `download.py` uses them too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shared.errors import DependencyUnavailable, ProteusError

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


class ModelLoadError(ProteusError):
    """The model files are there but wrong (incomplete or mismatched): not retryable."""

    status = 500
    retryable = False
    code = "model_load_error"


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
