"""PNG encoding of a try-on result: time and size with each way of deflating it.

    .venv/bin/python bench/png.py [--rounds 5] [--size 768x1024]

weave and tailor write every result as PNG (shared/images.encode_png). This bench encodes
three seeded photo-like images of `--size`: "noisy" (gradients and soft shapes with
sensor-like Gaussian noise, sigma 6), "white background" (the noisy one inside an ellipse
on white, as a product shot) and "smooth" (upscaled, little fine detail). Each is encoded
`--rounds` times by Pillow's default (level 6, zlib's default strategy: the baseline of the
same run), level 1, and what encode_png uses (shared/images.PNG_OPTIONS), and the table
prints the median encode time (min-max), the size, and both against the baseline. Also a
64x64 image, the smoke model's result in bench/pipeline.py. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.images import PNG_OPTIONS

WAYS: dict[str, dict[str, int]] = {
    "default (level 6)": {},
    "level 1": {"compress_level": 1},
    "used: " + ", ".join(f"{k}={v}" for k, v in PNG_OPTIONS.items()): dict(PNG_OPTIONS),
}
BASELINE = "default (level 6)"


def noisy(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 180 + 40, y / height * 160 + 50, (x + y) / (width + height) * 120 + 80], -1)
    shapes = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(shapes)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(width // 12, width // 4))
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    soft = np.asarray(shapes.filter(ImageFilter.GaussianBlur(width / 40)), dtype=np.float32)
    pixels = 0.5 * base + 0.5 * soft + rng.normal(0, 6, base.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def on_white(width: int, height: int) -> Image.Image:
    figure = Image.new("L", (width, height), 0)
    ImageDraw.Draw(figure).ellipse((width // 5, height // 20, width * 4 // 5, height * 19 // 20), fill=255)
    return Image.composite(noisy(width, height), Image.new("RGB", (width, height), "white"), figure)


def smooth(width: int, height: int) -> Image.Image:
    small = noisy(max(8, width // 8), max(8, height // 8), seed=1)
    return small.resize((width, height), Image.Resampling.BICUBIC)


def encode(image: Image.Image, options: dict[str, int]) -> tuple[float, int]:
    buffer = io.BytesIO()
    started = time.perf_counter()
    image.save(buffer, "PNG", **options)
    return (time.perf_counter() - started) * 1000, buffer.tell()


def measure(image: Image.Image, rounds: int) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for way, options in WAYS.items():
        encode(image, options)  # warm
        times, size = [], 0
        for _ in range(rounds):
            elapsed, size = encode(image, options)
            times.append(elapsed)
        figures[way] = {
            "encode_ms": round(statistics.median(times), 3),
            "min_ms": round(min(times), 3),
            "max_ms": round(max(times), 3),
            "size_kb": round(size / 1024, 1),
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="768x1024", help="WIDTHxHEIGHT of the result")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    result: dict[str, object] = {"png_options": PNG_OPTIONS, "rounds": args.rounds}
    print(f"PNG encode (median (min-max) of {args.rounds} runs; baseline: Pillow's default, level 6)")
    print(f"{'image':<26} {'way':<40} {'encode ms':>24} {'KB':>8} {'time':>6} {'size':>6}")
    cases = [(f"noisy {width}x{height}", noisy(width, height), args.rounds)]
    cases += [(f"white background {width}x{height}", on_white(width, height), args.rounds)]
    cases += [(f"smooth {width}x{height}", smooth(width, height), args.rounds), ("noisy 64x64", noisy(64, 64), 200)]
    for label, image, rounds in cases:
        figures = measure(image, rounds)
        base = figures[BASELINE]
        for way, f in figures.items():
            print(
                f"{label:<26} {way:<40} {f['encode_ms']:>9.3f} ({f['min_ms']:.3f}-{f['max_ms']:.3f}) "
                f"{f['size_kb']:>8.1f} {f['encode_ms'] / base['encode_ms']:>5.2f}x {f['size_kb'] / base['size_kb']:>5.2f}x"
            )
        result[label.replace(" ", "_")] = {
            way.split(":")[0].replace(" ", "_").replace("(", "").replace(")", ""): {
                "encode_ms": f["encode_ms"],
                "size_kb": f["size_kb"],
            }
            for way, f in figures.items()
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
