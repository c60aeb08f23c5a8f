"""Loading the human-parsing model: real weights or the smoke model, chosen by configuration.

Layout (same for both; `python -m functions.tailor.download` / `.smoke` write it):

    <models_dir>/segformer_b2_clothes/          real weights (mattmdjaga/segformer_b2_clothes)
    <models_dir>/smoke/segformer_b2_clothes/    tiny random model for tests and smoke runs
        config.json  model.safetensors  preprocessor_config.json

`model`: "real" loads the real weights or fails; "smoke" loads the smoke model or fails;
"auto" loads the real weights when present, else the smoke model with a WARNING.
`source`: "local" reads the folder above; "hub" reads HUB_ID through the Hugging Face
cache (downloading if the hub is reachable; HF_TOKEN honoured by huggingface_hub).
Every failure is a DependencyUnavailable naming what is missing and the command to fix it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from functions.tailor.parsing import IMAGENET_MEAN, IMAGENET_STD, HumanParser
from shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)

MODEL_NAME = "segformer_b2_clothes"
SMOKE_NAME = "smoke"
HUB_ID = "mattmdjaga/segformer_b2_clothes"
REQUIRED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
SMOKE_MARKER = "proteus_smoke"  # set in the smoke model's config.json
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class TailorModelConfig:
    """Where the parsing model comes from and how it runs (CPU)."""

    models_dir: Path = Path("models")
    model: Literal["auto", "real", "smoke"] = "auto"
    source: Literal["local", "hub"] = "local"
    hub_id: str = HUB_ID
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default
    dtype: str = "float32"  # float32 | bfloat16

    @property
    def real_dir(self) -> Path:
        return Path(self.models_dir) / MODEL_NAME

    @property
    def smoke_dir(self) -> Path:
        return Path(self.models_dir) / SMOKE_NAME / MODEL_NAME

    @classmethod
    def from_settings(cls, settings: Any) -> TailorModelConfig:
        """From shared.config.Settings (models_dir, tailor_model; tailor_model_source if any)."""
        return cls(
            models_dir=Path(settings.models_dir),
            model=settings.tailor_model,
            source=getattr(settings, "tailor_model_source", "local"),
        )


def missing_files(folder: Path) -> list[str]:
    """The required files absent from `folder` (all of them when it does not exist)."""
    return [name for name in REQUIRED_FILES if not (Path(folder) / name).is_file()]


def _fetch_from_hub(config: TailorModelConfig) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(config.hub_id, allow_patterns=list(REQUIRED_FILES)))
    except Exception as exc:  # offline, gated, unknown repo: all mean "unavailable"
        raise DependencyUnavailable(
            f"cannot fetch the parsing model {config.hub_id!r} from the Hugging Face hub "
            f"({exc.__class__.__name__}: {exc}); run `python -m functions.tailor.download "
            f"--models-dir {config.models_dir}` where the hub is reachable and use source=local"
        ) from exc


def _read_preprocessing(folder: Path) -> dict[str, Any]:
    raw = json.loads((folder / "preprocessor_config.json").read_text())
    size = raw.get("size", 512)
    if isinstance(size, dict):
        size = (int(size.get("height", 512)), int(size.get("width", 512)))
    else:
        size = (int(size), int(size))
    return {
        "size": size,
        "mean": tuple(raw.get("image_mean", IMAGENET_MEAN)),
        "std": tuple(raw.get("image_std", IMAGENET_STD)),
    }


def load_folder(folder: Path, *, name: str | None = None, dtype: str = "float32") -> HumanParser:
    """Load a HumanParser from a folder in the layout above; fail clearly if incomplete."""
    from transformers import SegformerForSemanticSegmentation

    folder = Path(folder)
    missing = missing_files(folder)
    if missing:
        raise DependencyUnavailable(
            f"parsing model folder {folder} is incomplete (missing {', '.join(missing)}); fill it "
            f"with `python -m functions.tailor.download --models-dir {folder.parent}` (real weights) "
            f"or `python -m functions.tailor.smoke --out {folder.parent}` (random test model)"
        )
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    try:
        model = SegformerForSemanticSegmentation.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        preprocessing = _read_preprocessing(folder)
        if name is None:
            name = SMOKE_NAME if getattr(model.config, SMOKE_MARKER, False) else MODEL_NAME
        return HumanParser(model, name=name, dtype=DTYPES[dtype], **preprocessing)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise DependencyUnavailable(f"cannot load the parsing model from {folder}: {exc}") from exc


def load_parser(config: TailorModelConfig) -> HumanParser:
    """The configured HumanParser (see module doc for auto | real | smoke)."""
    if config.model not in ("auto", "real", "smoke"):
        raise ValueError(f"model must be auto, real or smoke, got {config.model!r}")
    if config.source not in ("local", "hub"):
        raise ValueError(f"source must be local or hub, got {config.source!r}")
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.model != "smoke":
        folder = _real_folder(config)
        if folder is not None:
            return load_folder(folder, dtype=config.dtype)
        log.warning(
            "tailor: real parsing weights not found (%s); using the SMOKE test model, so "
            "masks and cut-outs are from a random test model, not real results",
            config.hub_id if config.source == "hub" else config.real_dir,
        )
    return load_folder(config.smoke_dir, name=SMOKE_NAME, dtype=config.dtype)


def _real_folder(config: TailorModelConfig) -> Path | None:
    """The real model's folder; None in auto mode when it is absent (real mode raises)."""
    if config.source == "hub":
        try:
            return _fetch_from_hub(config)
        except DependencyUnavailable:
            if config.model == "real":
                raise
            return None
    if config.model == "real" or not missing_files(config.real_dir):
        return config.real_dir
    return None
