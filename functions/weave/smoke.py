"""The smoke model: tiny random weights in the real folder layout, for both variants.

    python -m functions.weave.smoke [--out models/smoke] [--force]

Loads through the same code as the real weights (`loading.load_pipeline`). Idempotent:
a complete smoke model (its files and `weave-smoke.json`) is kept; otherwise it is written
to a temporary folder and its folders renamed into place, the marker last. The tailor's
smoke model shares `models/smoke`; only this model's folders are ever replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file

from functions.weave.attention import attention_state_dict
from functions.weave.loading import DDIM_SETTINGS
from functions.weave.weights import (
    ATTENTION_DIRS,
    ATTENTION_SUBPATH,
    BASE_DIRS,
    SAFETY_BASE,
    SMOKE_MARKER,
    VAE_DIR,
    missing_files,
)

# The tiny architecture of the spec.
TINY_UNET = dict(
    sample_size=32,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=2,
    out_channels=4,
    norm_num_groups=32,
)
TINY_VAE = dict(
    block_out_channels=(8, 8, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=1,
    norm_num_groups=8,
    latent_channels=4,
    in_channels=3,
    out_channels=3,
)
# 1024 x 768 renders at 128 x 96 and is upscaled: 50 guided steps take well under a second.
SMOKE_MAX_RENDER_PIXELS = 128 * 96
IN_CHANNELS = {"mask": 9, "maskfree": 8}


def tiny_unet(in_channels: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(**TINY_UNET, in_channels=in_channels)


def tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(**TINY_VAE)


def _write_safety(base: Path) -> None:
    """A tiny SD safety checker (default concept weights: never flags) + its processor."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    vision = dict(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    text = dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=99,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    StableDiffusionSafetyChecker(config).save_pretrained(base / "safety_checker")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        base / "feature_extractor"
    )


def _write(root: Path, seed: int) -> None:
    from diffusers import DDIMScheduler

    torch.manual_seed(seed)
    tiny_vae().save_pretrained(root / VAE_DIR)
    for variant, base_dir in BASE_DIRS.items():
        unet = tiny_unet(IN_CHANNELS[variant])
        unet.save_pretrained(root / base_dir / "unet")
        DDIMScheduler(**DDIM_SETTINGS).save_pretrained(root / base_dir / "scheduler")
        trained = tiny_unet(IN_CHANNELS[variant])  # fresh draws: differ from the base attn1
        attention = root / ATTENTION_DIRS[variant] / ATTENTION_SUBPATH
        attention.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in attention_state_dict(trained).items()}, str(attention))
    _write_safety(root / SAFETY_BASE)
    (root / SMOKE_MARKER).write_text(
        json.dumps({"model": "smoke", "max_render_pixels": SMOKE_MAX_RENDER_PIXELS, "num_threads": 1, "seed": seed})
    )


def _entries() -> list[str]:
    """The top-level names this model owns in the (shared) smoke folder."""
    return sorted({VAE_DIR, SAFETY_BASE, *BASE_DIRS.values(), *ATTENTION_DIRS.values()})


def is_complete(root: Path) -> bool:
    root = Path(root)
    return (root / SMOKE_MARKER).is_file() and not missing_files(root, tuple(BASE_DIRS))


def write_smoke_model(out: Path | str = Path("models/smoke"), *, seed: int = 0, force: bool = False) -> Path:
    """Write the smoke model to `out` unless a complete one is there; returns `out`.

    Only this model's folders are touched (the tailor's smoke model lives there too).
    """
    out = Path(out)
    if is_complete(out) and not force:
        return out
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".weave-smoke-", dir=out))
    try:
        _write(tmp, seed)
        (out / SMOKE_MARKER).unlink(missing_ok=True)
        for name in _entries():
            shutil.rmtree(out / name, ignore_errors=True)
            try:
                os.rename(tmp / name, out / name)
            except OSError:  # a concurrent writer placed the same (seeded) files first
                if not (out / name).exists():
                    raise
        os.rename(tmp / SMOKE_MARKER, out / SMOKE_MARKER)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/smoke"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rewrite even if complete")
    args = parser.parse_args(argv)
    existed = is_complete(args.out)
    path = write_smoke_model(args.out, seed=args.seed, force=args.force)
    state = "kept" if existed and not args.force else "wrote"
    print(f"{state} smoke model (tiny random weights, both variants) in {path}")


if __name__ == "__main__":
    main()
