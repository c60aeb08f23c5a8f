"""What both weave pipelines share (CatVTON in pipeline.py, FASHN in fashn/pipeline.py).

- `TryOnResult(image, seed, metadata, nsfw)`: `image` is PIL RGB; `seed` the one used
  (drawn when the request had none); `metadata` describes the run (model, steps, seed,
  sizes, safety, device, dtype, batch_size, seconds and the model's own settings).
- `PipelineOptions`: speed switches (compile, CUDA graphs, channels_last, SDPA backend,
  TF32, VAE slicing; applied at construction), `max_batch_size`, `max_render_pixels` (the
  smoke model renders small and upscales) and `num_threads`.
- `Progress`: counts denoising steps over a call and reports (k, n) to a callback, which may
  answer requests to stop (their rows leave the batch at the next step).
- `as_image`, `is_int`, `request_prefix`, `check_steps`, `check_guidance`, `check_seed`:
  the checks both `check_inputs` share.
- `draw_missing_seeds`, `cpu_threads`: steps of a call both pipelines run the same way.
"""

from __future__ import annotations

import contextlib
import math
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from shared.contracts.tryon import MAX_SEED
from shared.errors import BadRequest, ImageTooLarge, InvalidImage
from shared.images import MAX_PIXELS, MIN_SIDE, flatten_to_rgb, load_image, load_mask, to_mask

ImageInput = bytes | bytearray | Image.Image


@dataclass
class TryOnResult:
    """The try-on image (RGB), the seed that reproduces it, and metadata.

    `nsfw` is None when no safety check ran, else the checker's verdict. A flagged image
    is returned unchanged (never blacked out) with metadata["safety"] == "flagged": the
    caller decides what to do with it.
    """

    image: Image.Image
    seed: int
    metadata: dict[str, Any] = field(default_factory=dict)
    nsfw: bool | None = None


@dataclass
class PipelineOptions:
    """Speed switches; each can be turned off. Defaults are safe on every device."""

    max_batch_size: int = 4
    max_render_pixels: int | None = None  # render at most this many pixels, then upscale
    compile: bool = False  # torch.compile the UNet
    cuda_graphs: bool = False  # compile in mode "reduce-overhead" (CUDA graphs); implies compile
    channels_last: bool = False
    sdpa_backend: str = "auto"  # auto | flash | efficient | cudnn | math
    # The VAE takes one image at a time: the same pixels, and the 2 x batch full-size images
    # of the encode no longer take memory together (README, Performance).
    vae_slicing: bool = True
    tf32: bool = True
    num_threads: int | None = None  # CPU threads during a call (the smoke model uses 1)


# callback(k, n) after step k of n; it may answer the indices of requests to stop (cancelled).
StepCallback = Callable[[int, int], Collection[int] | None]


class Progress:
    """Counts denoising steps over a whole call and reports (k, n) to the callback, which may
    answer the indices of requests to stop (`stopped`, kept over the call): they leave their
    batch before the next step, are not decoded, and get None in place of a result."""

    def __init__(self, total: int, callback: StepCallback | None) -> None:
        self.total, self.done, self.callback = total, 0, callback
        self.stopped: set[int] = set()

    def step(self) -> set[int]:
        """Count a step; the indices of every request stopped so far."""
        self.done += 1
        if self.callback is not None:
            self.stopped.update(self.callback(self.done, self.total) or ())
        return self.stopped

    def live(self, items: list[Any]) -> list[Any]:
        """The items (with an `index`) not stopped: a batch not yet started skips the others."""
        return [item for item in items if item.index not in self.stopped]


def request_prefix(index: int | None) -> str:
    """ "request 3: " for the fourth request of several; "" for a lone one."""
    return "" if index is None else f"request {index}: "


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def as_image(value: Any, what: str, index: int | None, *, mask: bool = False) -> Image.Image:
    """Decode bytes, or validate an already decoded PIL image the same way."""
    name = f"{request_prefix(index)}{what}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (load_mask if mask else load_image)(bytes(value), what=name)
    if isinstance(value, Image.Image):
        w, h = value.size
        if w < MIN_SIDE or h < MIN_SIDE:
            raise InvalidImage(f"{name} is {w}x{h}, smaller than the minimum of {MIN_SIDE} px per side", field=what)
        if w * h > MAX_PIXELS:
            raise ImageTooLarge(f"{name} is {w}x{h} = {w * h} pixels, over the limit of {MAX_PIXELS}", field=what)
        return to_mask(value) if mask else flatten_to_rgb(value)
    raise InvalidImage(f"{name} must be image bytes or a PIL image, got {type(value).__name__}", field=what)


def check_steps(steps: Any, bounds: tuple[int, int], index: int | None, model: str | None = None) -> None:
    """An integer in `bounds`; BadRequest naming the value (and the model, when given) otherwise."""
    if not is_int(steps) or not bounds[0] <= steps <= bounds[1]:
        raise BadRequest(
            f"{request_prefix(index)}steps must be an integer in {bounds[0]}..{bounds[1]}{_for(model)}, got {steps!r}",
            field="steps",
        )


def check_guidance(guidance: Any, bounds: tuple[float, float], index: int | None, model: str | None = None) -> None:
    """A finite number in `bounds`; BadRequest naming the value (and the model, when given) otherwise."""
    if (
        isinstance(guidance, bool)
        or not isinstance(guidance, (int, float))
        or not math.isfinite(guidance)
        or not bounds[0] <= guidance <= bounds[1]
    ):
        raise BadRequest(
            f"{request_prefix(index)}guidance must be a number in {bounds[0]:g}..{bounds[1]:g}{_for(model)}, "
            f"got {guidance!r}",
            field="guidance",
        )


def _for(model: str | None) -> str:
    return "" if model is None else f" for {model}"


def check_seed(seed: Any, index: int | None) -> None:
    """None (drawn later) or an integer in 0..MAX_SEED; BadRequest naming the value otherwise."""
    if seed is not None and (not is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise BadRequest(f"{request_prefix(index)}seed must be an integer in 0..{MAX_SEED}, got {seed!r}", field="seed")


class _Seeded(Protocol):
    seed: int

    @property
    def request(self) -> Any: ...


def draw_missing_seeds(items: Iterable[_Seeded]) -> None:
    """Give each checked request without a seed a random one (reported with the result)."""
    for item in items:
        if item.request.seed is None:
            item.seed = secrets.randbelow(MAX_SEED + 1)


@contextlib.contextmanager
def cpu_threads(wanted: int | None) -> Iterator[None]:
    """Use `wanted` CPU threads (None: leave the count alone) inside, then restore the count.

    Tiny models gain nothing from more threads and suffer badly (tens of times slower)
    when OpenMP threads compete with other processes on a busy machine."""
    previous = torch.get_num_threads()
    if wanted:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted:
            torch.set_num_threads(previous)
