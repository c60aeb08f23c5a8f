"""How many try-ons weave renders at once: measured on its own device at warm-up.

Batching pays while the device has idle capacity: a call on 2 images costs less than two
calls on 1. Past some size it costs as much per image, and a larger batch only makes each
of its jobs wait longer. `measure_throughput` times a one-step try-on call for every batch
size up to WEAVE_MAX_BATCH, and `choose_batch_limit` keeps the largest size that still
raises images per second. weave reports that limit in /readyz as
`max_batch`, and the stream runner delivers at most that many jobs in one batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Final

import torch
from PIL import Image

from functions.weave.fashn.pipeline import FashnRequest, FashnVTONPipeline
from functions.weave.models import Pipeline, Request
from functions.weave.request import TryOnRequest
from shared.contracts.tryon import DEFAULT_HEIGHT, DEFAULT_WIDTH

MIN_GAIN: Final = 0.05  # a larger batch must add at least 5% images/s to be worth its wait
REPEATS: Final = 2


def measure_throughput(
    pipe: Pipeline, max_batch: int, *, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH, repeats: int = REPEATS
) -> dict[int, float]:
    """Images per second of a one-step try-on call at each batch size 1..max_batch.

    A whole call (pre-processing, encoding, one guided denoising step, decoding, resizing)
    at the size weave serves by default: what a batch shares and what it does not. The best
    of `repeats` timings counts, after one untimed call per size (compiling, warm-up).
    """
    checked = pipe.check_inputs(probe_request(pipe, height, width))  # type: ignore[arg-type]
    throughput: dict[int, float] = {}
    for size in range(1, max(1, max_batch) + 1):
        best = float("inf")
        for attempt in range(repeats + 1):
            items = [replace(checked, index=i) for i in range(size)]
            _sync(pipe.device)
            started = time.perf_counter()
            pipe.run_checked(items)  # type: ignore[arg-type]
            _sync(pipe.device)
            if attempt:  # the first call warms up
                best = min(best, time.perf_counter() - started)
        throughput[size] = round(size / max(best, 1e-9), 3)
    return throughput


def probe_request(pipe: Pipeline, height: int, width: int) -> Request:
    """A plain one-step request of the pipeline's family, without a safety check."""
    person = Image.new("RGB", (width, height), (128, 128, 128))
    garment = Image.new("RGB", (width, height), (64, 96, 160))
    if isinstance(pipe, FashnVTONPipeline):
        return FashnRequest(
            person=person, garment=garment, garment_photo_type="flat-lay", steps=1, seed=0, safety_check=False
        )
    mask = None
    if pipe.catvton_variant == "mask":
        mask = Image.new("L", (width, height), 0)
        mask.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    return TryOnRequest(
        person=person, garment=garment, mask=mask, steps=1, seed=0, height=height, width=width, safety_check=False
    )


def choose_batch_limit(throughput: Mapping[int, float], min_gain: float = MIN_GAIN) -> int:
    """The largest batch size whose images/s beats every smaller size by at least `min_gain`."""
    limit, best = 1, throughput.get(1, 0.0)
    for size in sorted(throughput):
        if size > 1 and throughput[size] >= best * (1 + min_gain):
            limit, best = size, throughput[size]
    return limit


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
