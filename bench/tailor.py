"""Seconds per image for human parsing with the real-size SegFormer-B2 on the CPU.

    .venv/bin/python bench/tailor.py [--size 512] [--repeats 5] [--threads N]

Builds the mit-b2 architecture of mattmdjaga/segformer_b2_clothes in code (random
weights, no download) and times HumanParser.parse on one image of --size x --size
(pre-processing, network, upsampling to the image size, argmax), for several settings.
`agree` is the share of pixels whose label matches the plain float32 transformers
forward. Prints a table, then one JSON line (the service's default setting first).
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from functions.tailor.parsing import HumanParser  # noqa: E402

VARIANTS = (  # (name, fold_decoder, channels_last, dtype); the first is the service default
    ("folded", True, False, torch.float32),
    ("folded+channels_last", True, True, torch.float32),
    ("folded+bf16", True, False, torch.bfloat16),
    ("transformers", False, False, torch.float32),
    ("transformers+channels_last", False, True, torch.float32),
)


def b2_model() -> torch.nn.Module:
    """SegFormer-B2 (mit-b2 encoder, 768-wide decoder, 18 labels), random weights."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(
        depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 320, 512], num_attention_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1], mlp_ratios=[4, 4, 4, 4], decoder_hidden_size=768, num_labels=18,
    )
    torch.manual_seed(0)
    return SegformerForSemanticSegmentation(config).eval()


def time_parse(parser: HumanParser, image: Image.Image, repeats: int) -> tuple[float, np.ndarray]:
    labels = parser.parse(image)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        labels = parser.parse(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times), labels


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

    rows, reference = [], None
    for name, fold, channels_last, dtype in sorted(VARIANTS, key=lambda v: v[0] != "transformers"):
        model = b2_model()
        model.load_state_dict(state)
        parser = HumanParser(model, name="bench", dtype=dtype, channels_last=channels_last, fold_decoder=fold)
        seconds, labels = time_parse(parser, image, args.repeats)
        if reference is None:
            reference = labels
        rows.append({"variant": name, "s_per_image": round(seconds, 4),
                     "agree": round(float(np.mean(labels == reference)), 4)})
    rows.sort(key=lambda r: [v[0] for v in VARIANTS].index(r["variant"]))

    print(f"SegFormer-B2 parse, {args.size}x{args.size}, cpu, {args.threads} threads, "
          f"median of {args.repeats} (torch {torch.__version__})")
    print(f"{'variant':<28}{'s/image':>10}{'agree':>9}")
    for row in rows:
        print(f"{row['variant']:<28}{row['s_per_image']:>10.3f}{row['agree']:>9.4f}")
    print(json.dumps({
        "s_per_image": rows[0]["s_per_image"], "variant": rows[0]["variant"], "device": "cpu",
        "size": f"{args.size}x{args.size}", "threads": args.threads, "repeats": args.repeats,
        "variants": rows,
    }))


if __name__ == "__main__":
    main()
