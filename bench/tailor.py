"""Seconds per image for human parsing with the real-size SegFormer-B2 on the CPU.

    .venv/bin/python bench/tailor.py [--size 512] [--repeats 5] [--threads N]

Builds the mit-b2 architecture of mattmdjaga/segformer_b2_clothes in code (random
weights, no download) and times HumanParser.parse on one image of --size x --size
(pre-processing, network, upsampling to the image size, argmax), for several settings.
`agree` is the share of pixels whose label matches the plain float32 transformers
forward (random weights have small logit margins, so bf16's figure is a pessimistic one).
Prints a table (median and fastest of --repeats), then one JSON line whose s_per_image is
the median for the service's default setting (HumanParser's defaults: folded decoder,
channels_last, float32).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image

from functions.tailor.parsing import HumanParser

VARIANTS = (  # (name, fold_decoder, channels_last, dtype, threads); the first is the service default
    ("folded+channels_last", True, True, torch.float32, None),
    ("folded", True, False, torch.float32, None),
    ("folded+channels_last+bf16", True, True, torch.bfloat16, None),
    ("folded+channels_last 1 thread", True, True, torch.float32, 1),
    ("transformers", False, False, torch.float32, None),
    ("transformers+channels_last", False, True, torch.float32, None),
)


def b2_model() -> torch.nn.Module:
    """SegFormer-B2 (mit-b2 encoder, 768-wide decoder, 18 labels), random weights."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(
        depths=[3, 4, 6, 3],
        hidden_sizes=[64, 128, 320, 512],
        num_attention_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1],
        mlp_ratios=[4, 4, 4, 4],
        decoder_hidden_size=768,
        num_labels=18,
    )
    torch.manual_seed(0)
    return SegformerForSemanticSegmentation(config).eval()


def main(argv: list[str] | None = None) -> None:
    args_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args_parser.add_argument("--size", type=int, default=512)
    args_parser.add_argument("--repeats", type=int, default=5)
    args_parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = args_parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8))
    state = b2_model().state_dict()

    parsers = {}
    for name, fold, channels_last, dtype, _ in VARIANTS:
        model = b2_model()
        model.load_state_dict(state)
        parsers[name] = HumanParser(model, name="bench", dtype=dtype, channels_last=channels_last, fold_decoder=fold)
    # Round robin (one run of every variant per round), so load from other processes on a
    # shared machine hits every variant alike; the first round is the warm-up.
    times: dict[str, list[float]] = {name: [] for name in parsers}
    labels: dict[str, np.ndarray] = {}
    load_before = os.getloadavg()[0]
    for round_ in range(args.repeats + 1):
        for name, *_, threads in VARIANTS:
            torch.set_num_threads(threads or args.threads)
            start = time.perf_counter()
            labels[name] = parsers[name].parse(image)
            if round_:
                times[name].append(time.perf_counter() - start)
    torch.set_num_threads(args.threads)
    load_after = os.getloadavg()[0]
    reference = labels["transformers"]
    rows = [
        {
            "variant": name,
            "threads": threads or args.threads,
            "s_per_image": round(statistics.median(times[name]), 4),
            "s_min": round(min(times[name]), 4),
            "agree": round(float(np.mean(labels[name] == reference)), 4),
        }
        for name, *_, threads in VARIANTS
    ]

    print(
        f"SegFormer-B2 parse, {args.size}x{args.size}, cpu, {args.threads} threads, "
        f"median of {args.repeats} (torch {torch.__version__}); 1-min load average "
        f"{load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'variant':<32}{'s/image':>9}{'min s':>9}{'agree':>9}")
    for row in rows:
        print(f"{row['variant']:<32}{row['s_per_image']:>9.3f}{row['s_min']:>9.3f}{row['agree']:>9.4f}")
    print(
        json.dumps(
            {
                "s_per_image": rows[0]["s_per_image"],
                "variant": rows[0]["variant"],
                "device": "cpu",
                "size": f"{args.size}x{args.size}",
                "threads": args.threads,
                "repeats": args.repeats,
                "load_avg": [round(load_before, 2), round(load_after, 2)],
                "variants": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
