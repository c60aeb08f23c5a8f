"""Peak memory and time of weave's VAE work for one batch, with and without VAE slicing.

    .venv/bin/python bench/weave_vae.py [--batch 4] [--height 512] [--width 384] [--dtype fp32]

A batch of B try-ons VAE-encodes 2 x B full-size images (person and garment of each) and
decodes B. This runs exactly that with the real sd-vae-ft-mse architecture (random weights,
no download), once with `vae.use_slicing` (weave's default: one image at a time) and once
without, each in a fresh process so the peak is its own (CUDA: max_memory_allocated; CPU:
the process's peak RSS above its level after loading). Last line: one JSON object.
On a CPU the default size is 512 x 384 (the GPU runs 1024 x 768) and it says so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def one_run(slicing: bool, batch: int, height: int, width: int, dtype: str, device: str) -> dict:
    """Encode 2 x batch images and decode batch latents; time and peak memory."""
    from diffusers import AutoencoderKL

    from bench.weave_model import SD_VAE_FT_MSE, peak_gb, reset_peak, sync

    torch.manual_seed(0)
    dev = torch.device(device)
    vae = AutoencoderKL(**SD_VAE_FT_MSE).to(dev, DTYPES[dtype]).eval().requires_grad_(False)
    vae.use_slicing = slicing
    images = (torch.rand(2 * batch, 3, height, width) * 2 - 1).to(dev, DTYPES[dtype])
    sync(dev)
    reset_peak(dev)
    base = peak_gb(dev)  # the model and the images, counted out
    start = time.perf_counter()
    with torch.inference_mode():
        latents = vae.encode(images).latent_dist.mean
        _ = vae.decode(latents[:batch]).sample
    sync(dev)
    return {
        "slicing": slicing,
        "seconds": round(time.perf_counter() - start, 3),
        "peak_gb": round(peak_gb(dev) - base, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--dtype", choices=list(DTYPES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--one", choices=["slicing", "whole"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    gpu = device.startswith("cuda")
    height, width = args.height or (1024 if gpu else 512), args.width or (768 if gpu else 384)
    dtype = args.dtype or ("bf16" if gpu else "fp32")
    if args.one:
        print(json.dumps(one_run(args.one == "slicing", args.batch, height, width, dtype, device)))
        return

    if not gpu and args.height is None:
        print(f"CPU run: REDUCED size {height}x{width} (the GPU run is 1024x768)")
    print(
        f"sd-vae-ft-mse (random weights), {dtype} on {device}: encode {2 * args.batch} images "
        f"and decode {args.batch} at {height}x{width}, torch {torch.__version__}"
    )
    rows = []
    for mode in ("whole", "slicing"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                mode,
                "--batch",
                str(args.batch),
                "--height",
                str(height),
                "--width",
                str(width),
                "--dtype",
                dtype,
                "--device",
                device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'vae':<18}{'seconds':>10}{'peak GB':>10}")
    for row in rows:
        name = "one at a time" if row["slicing"] else "whole batch"
        print(f"{name:<18}{row['seconds']:>10.2f}{row['peak_gb']:>10.2f}")
    whole, sliced = rows
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(device) if gpu else "cpu",
                "dtype": dtype,
                "batch": args.batch,
                "height": height,
                "width": width,
                "whole_peak_gb": whole["peak_gb"],
                "sliced_peak_gb": sliced["peak_gb"],
                "whole_s": whole["seconds"],
                "sliced_s": sliced["seconds"],
                "peak_ratio": round(whole["peak_gb"] / sliced["peak_gb"], 2) if sliced["peak_gb"] else None,
            }
        )
    )


if __name__ == "__main__":
    main()
