"""Seconds per try-on for CatVTON at the real size (random weights, no download).

    .venv/bin/python bench/weave.py [--dtypes bf16 fp16] [--batches 1 2 4] [--preset fast]
        [--compile] [--cuda-graphs] [--channels-last] [--sdpa flash] [--no-vae-slicing]
        [--no-baseline]
    .venv/bin/python bench/weave.py --grid grid.png [--models-dir models]
    .venv/bin/python bench/weave.py --model fashn-vton-1.5 [...]   (FASHN VTON: bench/weave_fashn.py)

Builds the SD-1.5 UNet (in_channels 8 mask-free / 9 mask-based) and the sd-vae-ft-mse VAE
from the configs below with random weights, wraps them in CatVTONPipeline and times whole
try-ons (pre-processing, VAE encode, guided DDIM loop, decode) per batch size and dtype.
GPU defaults: 1024 x 768, 50 steps, batches 1 2 4, bf16 and fp16. On a CPU it runs a
reduced size (256 x 192, 2 steps, batches 1 2, fp32) and says so. The baseline is a plain
loop written out here (fp32, TF32 off, eager, one request at a time); its image is also
compared with the pipeline's. Last line: one JSON object.

The random-weight model, the plain loop and the timing helpers are in bench/weave_model.py.

--grid renders the presets (default 50 steps, fast 20) from one seed side by side with the
configured model (real weights in --models-dir, else the smoke model, which it names).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image, ImageDraw

from bench.weave_model import DTYPES, build, inputs, plain_tryon, scheduler, sync, time_pipeline
from functions.weave.loading import WeaveModelConfig, load_pipeline
from functions.weave.pipeline import CatVTONPipeline
from functions.weave.pipeline_common import PipelineOptions
from functions.weave.preprocess import (
    center_crop_resize,
    letterbox,
)
from functions.weave.request import TryOnRequest
from shared.config import SDPA_BACKENDS
from shared.contracts.tryon import PRESETS, VARIANTS


def grid(args: argparse.Namespace, device: torch.device) -> None:
    """Side-by-side presets from one seed with the configured model."""
    config = WeaveModelConfig(models_dir=args.models_dir, device=str(device), variants=(args.variant,))
    pipe = load_pipeline(config, args.variant)
    person, garment = inputs(args.height, args.width, 0)
    for path, name in ((args.person, "person"), (args.garment, "garment")):
        if path:
            image = Image.open(path).convert("RGB")
            person, garment = (image, garment) if name == "person" else (person, image)
    mask = Image.new("L", person.size, 255) if args.variant == "mask" else None
    tiles = [
        ("person", center_crop_resize(person, args.height, args.width)),
        ("garment", letterbox(garment, args.height, args.width)),
    ]
    rows = {}
    for name, preset in PRESETS.items():
        start = time.perf_counter()
        result = pipe(
            [
                TryOnRequest(
                    person=person,
                    garment=garment,
                    mask=mask,
                    seed=args.seed,
                    height=args.height,
                    width=args.width,
                    **preset,
                )
            ]
        )[0]
        rows[name] = round(time.perf_counter() - start, 3)
        tiles.append((f"{name}: {preset['steps']} steps, {rows[name]:.1f} s", result.image))
    canvas = Image.new("RGB", (args.width * len(tiles), args.height + 24), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, tile) in enumerate(tiles):
        canvas.paste(tile, (i * args.width, 24))
        draw.text((i * args.width + 4, 4), label, fill="black")
    canvas.save(args.grid)
    print(
        f"grid of presets {list(PRESETS)} (seed {args.seed}, model {pipe.model_name!r}"
        f"{', tiny random weights: NOT a try-on' if pipe.model_name == 'smoke' else ''}) "
        f"-> {args.grid}"
    )
    print(
        json.dumps(
            {
                "grid": str(args.grid),
                "model": pipe.model_name,
                "seed": args.seed,
                "seconds": rows,
                "device": str(device),
            }
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES))
    parser.add_argument("--batches", nargs="+", type=int)
    parser.add_argument("--preset", choices=list(PRESETS), default="default")
    parser.add_argument("--steps", type=int, help="overrides the preset's steps")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--variant", choices=VARIANTS, default=VARIANTS[0])
    parser.add_argument(
        "--model",
        choices=["catvton", "fashn-vton-1.5"],
        default="catvton",
        help="fashn-vton-1.5: FASHN VTON v1.5 (bench/weave_fashn.py; prints FLOPs per image)",
    )
    parser.add_argument("--tiny", action="store_true", help="FASHN: the tiny test architecture")
    parser.add_argument("--warmup", type=int, default=1, help="untimed one-step runs per batch size first (default 1)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--cuda-graphs", action="store_true", help="compile mode reduce-overhead")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--sdpa", default="auto", choices=SDPA_BACKENDS)
    parser.add_argument("--no-tf32", action="store_true")
    parser.add_argument(
        "--no-vae-slicing", action="store_true", help="VAE-encode and decode a whole batch at once (more memory)"
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--grid", type=Path, help="save a side-by-side grid of the presets")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--person", type=Path)
    parser.add_argument("--garment", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if args.model == "fashn-vton-1.5":
        from bench.weave_fashn import run as run_fashn

        run_fashn(args, device)
        return
    gpu = device.type == "cuda"
    reduced = not gpu and args.height is None and args.steps is None
    args.height = args.height or (1024 if gpu else 256)
    args.width = args.width or (768 if gpu else 192)
    if args.grid:
        if not gpu and args.height == 256:  # the smoke model renders small anyway
            args.height, args.width = 1024, 768
        grid(args, device)
        return
    steps = args.steps or (PRESETS[args.preset]["steps"] if gpu else 2)
    batches = args.batches or ([1, 2, 4] if gpu else [1, 2])
    dtypes = args.dtypes or (["bf16", "fp16"] if gpu else ["fp32"])
    warmup = args.warmup

    in_channels = 9 if args.variant == "mask" else 8
    start = time.perf_counter()
    unet32, vae32 = build(in_channels, device)
    params = (sum(p.numel() for p in unet32.parameters()), sum(p.numel() for p in vae32.parameters()))
    print(
        f"built random SD-1.5 UNet ({params[0] / 1e6:.1f} M params, in_channels "
        f"{in_channels}) + sd-vae-ft-mse VAE ({params[1] / 1e6:.1f} M) on {device} in "
        f"{time.perf_counter() - start:.1f} s"
    )
    if reduced:
        print(
            f"CPU run: REDUCED size {args.height}x{args.width}, {steps} steps, batches "
            f"{batches} (the GPU run is 1024x768, 50 steps, batches 1 2 4)"
        )
    print(
        f"{args.variant}, {args.height}x{args.width}, {steps} steps, guidance 2.5, warmup "
        f"{warmup}, compile {args.compile}, cuda graphs {args.cuda_graphs}, channels_last "
        f"{args.channels_last}, sdpa {args.sdpa}, vae slicing {not args.no_vae_slicing}, "
        f"torch {torch.__version__}, "
        f"{os.cpu_count()} cpu cores, load {os.getloadavg()[0]:.1f}"
    )

    rows, first_images = [], {}
    for name in dtypes:
        dtype = DTYPES[name]
        unet = unet32 if dtype == torch.float32 else copy.deepcopy(unet32).to(dtype)
        vae = vae32 if dtype == torch.float32 else copy.deepcopy(vae32).to(dtype)
        options = PipelineOptions(
            max_batch_size=max(batches),
            compile=args.compile,
            cuda_graphs=args.cuda_graphs,
            channels_last=args.channels_last,
            sdpa_backend=args.sdpa,
            tf32=not args.no_tf32,
            vae_slicing=not args.no_vae_slicing,
        )
        pipe = CatVTONPipeline(
            vae=vae, unet=unet, scheduler=scheduler(), variant=args.variant, model_name="random-real", options=options
        )
        for batch in batches:
            seconds, peak, results = time_pipeline(pipe, device, batch, steps, args.height, args.width, warmup)
            first_images.setdefault(name, results[0].image)
            rows.append(
                {
                    "dtype": name,
                    "batch": batch,
                    "seconds": seconds,
                    "s_per_image": seconds / batch,
                    "images_per_s": batch / seconds,
                    "steps_per_s": steps / seconds,
                    "peak_mem_gb": peak,
                }
            )
            print(
                f"  {name:>5} batch {batch}: {seconds:8.2f} s, {seconds / batch:7.2f} s/image, "
                f"{batch / seconds:6.3f} images/s, {steps / seconds:6.2f} steps/s, peak "
                f"{peak:5.2f} GB{'' if gpu else ' (process RSS)'}",
                flush=True,
            )
        if unet is not unet32:
            del pipe, unet, vae
            if gpu:
                torch.cuda.empty_cache()

    baseline_s, diff = None, None
    if not args.no_baseline:
        tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        person, garment = inputs(args.height, args.width, 0)
        sync(device)
        start = time.perf_counter()
        image = plain_tryon(unet32, vae32, scheduler(), person, garment, 0, steps, 2.5, args.height, args.width)
        sync(device)
        baseline_s = time.perf_counter() - start
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        print(f"  baseline (plain loop, fp32, TF32 off, eager, one request at a time): {baseline_s:.2f} s/image")
        if "fp32" in first_images:
            diff = int(np.abs(np.asarray(image, np.int16) - np.asarray(first_images["fp32"], np.int16)).max())
            print(f"  pipeline fp32 vs plain loop, same seed: max pixel difference {diff}")

    main_rows = [r for r in rows if r["dtype"] == dtypes[0]]
    by_batch = {r["batch"]: r for r in main_rows}
    best = min(main_rows, key=lambda r: r["s_per_image"])
    speedup = round(baseline_s / best["s_per_image"], 3) if baseline_s else None
    if speedup:
        print(f"speedup vs baseline ({dtypes[0]}, batch {best['batch']}): {speedup:.2f}x")

    def pick(batch: int, key: str):
        return round(by_batch[batch][key], 4) if batch in by_batch else None

    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(device) if gpu else "cpu",
                "dtype": dtypes[0],
                "variant": args.variant,
                "height": args.height,
                "width": args.width,
                "steps": steps,
                "reduced": reduced,
                "s_per_image_b1": pick(1, "s_per_image"),
                "s_per_image_b2": pick(2, "s_per_image"),
                "s_per_image_b4": pick(4, "s_per_image"),
                "images_per_s_b1": pick(1, "images_per_s"),
                "images_per_s_b4": pick(4, "images_per_s"),
                "steps_per_s_b1": pick(1, "steps_per_s"),
                "peak_mem_gb": round(max(r["peak_mem_gb"] for r in main_rows), 3),
                "baseline_s_per_image": round(baseline_s, 4) if baseline_s else None,
                "speedup_vs_baseline": speedup,
                "baseline_max_pixel_diff": diff,
                "compile": args.compile,
                "cuda_graphs": args.cuda_graphs,
                "channels_last": args.channels_last,
                "sdpa": args.sdpa,
                "vae_slicing": not args.no_vae_slicing,
                "rows": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
            }
        )
    )


if __name__ == "__main__":
    main()
