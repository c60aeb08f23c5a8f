"""Seconds per try-on for FASHN VTON v1.5 (random weights of the real network), with its FLOPs.

    .venv/bin/python bench/weave.py --model fashn-vton-1.5 [--dtypes bf16 fp32] [--batches 1 2 4]
        [--steps 30] [--compile] [--cuda-graphs] [--sdpa flash] [--tiny]

Builds the released architecture (972M parameters, 864 x 576, random weights: no download)
and times whole try-ons through FashnVTONPipeline: pre-processing (DWPose and the parser are
the smoke family's tiny stand-ins, so their share is NOT measured), 30 guided Euler steps of
batch 2B, output. Beside each time it prints the network's FLOPs per image (792 TFLOP at 30
steps) and the rate that makes, so a GPU run shows how close it gets to the hardware. On a
CPU it runs the real widths at a REDUCED size (144 x 96, 2 steps, batches 1 2, fp32) and
says so; --tiny runs the test architecture. The baseline is the same pipeline, fp32, eager,
batch 1. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from functions.weave.fashn.network import TryOnConfig, TryOnModel, flops_per_row
from functions.weave.fashn.parsing import HumanParser
from functions.weave.fashn.pipeline import FashnRequest, FashnVTONPipeline
from functions.weave.fashn.pose import DWPose
from functions.weave.fashn.smoke import write_smoke_fashn
from functions.weave.pipeline_common import PipelineOptions

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _photos(seed: int) -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(seed)
    return (
        Image.fromarray(rng.integers(0, 255, (1200, 800, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 255, (1000, 1000, 3), dtype=np.uint8)),
    )


def run(args: argparse.Namespace, device: torch.device) -> None:
    gpu = device.type == "cuda"
    if args.tiny:
        config = TryOnConfig.tiny()
    elif gpu or args.height:
        config = dataclasses.replace(TryOnConfig(), input_shape=(args.height or 864, args.width or 576))
    else:
        config = dataclasses.replace(TryOnConfig(), input_shape=(144, 96))
    reduced = not gpu and not args.tiny and args.height is None
    steps = args.steps or (30 if gpu else 2)
    batches = args.batches or ([1, 2, 4] if gpu else [1, 2])
    dtypes = args.dtypes or (["bf16", "fp32"] if gpu else ["fp32"])
    if any(d not in DTYPES for d in dtypes):
        raise SystemExit(f"--dtypes for FASHN: {', '.join(DTYPES)}")
    start = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        model32 = TryOnModel(config).eval().requires_grad_(False)
    params = sum(p.numel() for p in model32.parameters())
    per_image = flops_per_row(config) * 2 * steps  # conditional + null row per step
    print(
        f"built random FASHN VTON network ({params / 1e6:.1f} M params, {config.input_shape[0]}x"
        f"{config.input_shape[1]}) on {device} in {time.perf_counter() - start:.1f} s"
    )
    if reduced:
        print(
            f"CPU run: REDUCED size {config.input_shape}, {steps} steps, batches {batches} (the GPU run is "
            f"864x576, 30 steps, batches 1 2 4)"
        )
    released = flops_per_row(TryOnConfig()) * 2 * 30 / 1e12
    print(
        f"network FLOPs: {per_image / 1e12:.3f} TFLOP per image here; released size at 30 steps: "
        f"{released:.0f} TFLOP per image"
    )
    print(
        f"{steps} steps, guidance 1.5, compile {args.compile}, cuda graphs {args.cuda_graphs}, sdpa {args.sdpa}, "
        f"torch {torch.__version__}, {os.cpu_count()} cpu cores, load {os.getloadavg()[0]:.1f}"
    )
    smoke = write_smoke_fashn(Path(tempfile.gettempdir()) / "proteus-bench-fashn")
    pose = DWPose.from_files(smoke / "dwpose/yolox_l.onnx", smoke / "dwpose/dw-ll_ucoco_384.onnx", str(device))
    parser = HumanParser.from_pretrained(smoke / "human-parser", str(device))
    person, garment = _photos(0)

    def request(seed: int, n_steps: int) -> FashnRequest:
        return FashnRequest(person, garment, garment_photo_type="model", steps=n_steps, seed=seed, safety_check=False)

    rows = []
    baseline_s = None
    for name in dtypes:
        model = model32 if name == "fp32" else TryOnModel(config).to(device=device, dtype=DTYPES[name])
        if model is not model32:
            model.load_state_dict(model32.state_dict())
            model.eval().requires_grad_(False)
        options = PipelineOptions(
            max_batch_size=max(batches), compile=args.compile, cuda_graphs=args.cuda_graphs, sdpa_backend=args.sdpa
        )
        pipe = FashnVTONPipeline(model, pose, parser, options=options)
        for batch in batches:
            for _ in range(args.warmup):
                pipe([request(i, 1) for i in range(batch)])
            _sync(device)
            if gpu:
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            pipe([request(i, steps) for i in range(batch)])
            _sync(device)
            seconds = time.perf_counter() - t0
            rate = per_image * batch / seconds / 1e12
            rows.append(
                {
                    "dtype": name,
                    "batch": batch,
                    "seconds": seconds,
                    "s_per_image": seconds / batch,
                    "tflop_per_s": rate,
                    "peak_mem_gb": _peak_gb(device),
                }
            )
            print(
                f"  {name:>5} batch {batch}: {seconds:8.2f} s, {seconds / batch:7.2f} s/image, "
                f"{per_image / 1e12:8.3f} TFLOP/image, {rate:7.2f} TFLOP/s, peak {rows[-1]['peak_mem_gb']:5.2f} GB"
                f"{'' if gpu else ' (process RSS)'}",
                flush=True,
            )
        if name == "fp32" and 1 in batches and not args.compile:
            baseline_s = next(r["s_per_image"] for r in rows if r["dtype"] == "fp32" and r["batch"] == 1)
        if model is not model32:
            del pipe, model
            if gpu:
                torch.cuda.empty_cache()
    best = min(rows, key=lambda r: r["s_per_image"])
    speedup = round(baseline_s / best["s_per_image"], 3) if baseline_s else None
    if speedup:
        print(f"best ({best['dtype']}, batch {best['batch']}) vs baseline (fp32, eager, batch 1): {speedup:.2f}x")
    print(
        json.dumps(
            {
                "model": "fashn-vton-1.5",
                "device": torch.cuda.get_device_name(device) if gpu else "cpu",
                "input_shape": list(config.input_shape),
                "params_m": round(params / 1e6, 1),
                "steps": steps,
                "reduced": reduced,
                "tiny": args.tiny,
                "tflop_per_image": round(per_image / 1e12, 4),
                "tflop_per_image_released_30_steps": round(released, 1),
                "best_s_per_image": round(best["s_per_image"], 4),
                "best_tflop_per_s": round(best["tflop_per_s"], 3),
                "baseline_s_per_image": round(baseline_s, 4) if baseline_s else None,
                "speedup_vs_baseline": speedup,
                "compile": args.compile,
                "cuda_graphs": args.cuda_graphs,
                "sdpa": args.sdpa,
                "rows": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
            }
        )
    )
