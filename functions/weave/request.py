"""CatVTON's request types and how checked requests share batches.

- `TryOnRequest(person, garment, mask=None, category="upper", steps=50, guidance=2.5,
  seed=None, height=1024, width=768, repaint=False, safety_check=True, variant="auto")`
  Images are bytes (any Pillow/HEIC/AVIF format) or PIL images. `variant="auto"` means
  mask-based when a mask is given, else mask-free. Guidance > 1 runs classifier-free
  guidance (a pair per image); guidance <= 1 runs the conditional pass alone.
- `check_variant(request, index)`, `check_settings(request, index)`: the checks of a
  request's own fields (`CatVTONPipeline.check_inputs` runs them, then decodes the images).
- `CheckedInputs`: what `CatVTONPipeline.check_inputs` returns (decoded images, variant, seed).
- `group_requests(items, max_batch_size)`, `sum_steps(items, options)`: the batches a call
  runs and the denoising steps it counts.
- `run_requests(pipelines, requests, callback=None)`: routes mixed requests to the
  pipeline of their variant (`{"maskfree": pipe, "mask": pipe}`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from functions.weave.pipeline_common import (
    ImageInput,
    PipelineOptions,
    Progress,
    StepCallback,
    TryOnResult,
    check_guidance,
    check_seed,
    check_steps,
    is_int,
    request_prefix,
)
from shared.contracts.fields import CATEGORIES
from shared.contracts.tryon import (
    DEFAULT_GUIDANCE,
    DEFAULT_HEIGHT,
    DEFAULT_STEPS,
    DEFAULT_WIDTH,
    GUIDANCE_RANGE,
    MAX_SIDE,
    SIZE_MULTIPLE,
    STEPS_RANGE,
    VARIANTS,
)
from shared.errors import BadRequest

if TYPE_CHECKING:
    from functions.weave.pipeline import CatVTONPipeline


@dataclass
class TryOnRequest:
    """One try-on. Defaults follow the published settings (1024 x 768, 50 steps, 2.5)."""

    person: ImageInput
    garment: ImageInput
    mask: ImageInput | None = None
    category: str = "upper"
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    seed: int | None = None
    height: int = DEFAULT_HEIGHT
    width: int = DEFAULT_WIDTH
    repaint: bool = False
    safety_check: bool = True
    variant: str = "auto"

    def resolved_variant(self) -> str:
        """ "mask" or "maskfree"; "auto" picks mask-based exactly when a mask is given."""
        if self.variant == "auto":
            return "mask" if self.mask is not None else "maskfree"
        return self.variant


@dataclass
class CheckedInputs:
    """A validated request with its decoded images (original size, EXIF applied)."""

    request: TryOnRequest
    index: int
    variant: str
    person: Image.Image
    garment: Image.Image
    mask: Image.Image | None
    seed: int = 0


def check_variant(r: TryOnRequest, index: int | None) -> str:
    """The resolved variant ("mask" or "maskfree"); BadRequest when unknown or a mask is missing."""
    p = request_prefix(index)
    if r.variant not in ("auto", *VARIANTS):
        raise BadRequest(f"{p}variant must be auto, mask or maskfree, got {r.variant!r}", field="variant")
    variant = r.resolved_variant()
    if variant == "mask" and r.mask is None:
        raise BadRequest(f"{p}the mask-based variant needs a person mask, got none", field="mask")
    return variant


def check_settings(r: TryOnRequest, index: int | None) -> None:
    """Category, steps, guidance, size, seed and repaint, in that order; BadRequest naming the value."""
    p = request_prefix(index)
    if r.category not in CATEGORIES:
        raise BadRequest(f"{p}category must be one of {', '.join(CATEGORIES)}, got {r.category!r}", field="category")
    check_steps(r.steps, STEPS_RANGE, index)
    check_guidance(r.guidance, GUIDANCE_RANGE, index)
    for name in ("height", "width"):
        value = getattr(r, name)
        if not is_int(value) or value < SIZE_MULTIPLE or value > MAX_SIDE or value % SIZE_MULTIPLE:
            raise BadRequest(
                f"{p}{name} must be a multiple of {SIZE_MULTIPLE} in {SIZE_MULTIPLE}..{MAX_SIDE}, got {value!r}",
                field=name,
            )
    check_seed(r.seed, index)
    if r.repaint and r.mask is None:
        raise BadRequest(f"{p}repaint needs a person mask, got none", field="repaint")


def sum_steps(items: list[CheckedInputs], options: PipelineOptions) -> int:
    """Denoising steps a call will run (one per step per batch)."""
    return sum(chunk[0].request.steps for chunk in group_requests(items, options.max_batch_size))


def group_requests(items: list[CheckedInputs], max_batch_size: int = 4) -> list[list[CheckedInputs]]:
    """Split into batches that can share UNet calls: same variant, size, steps and
    guidance on/off; never more than `max_batch_size` each. Input order is kept within."""
    groups: dict[tuple, list[CheckedInputs]] = {}
    for item in items:
        r = item.request
        key = (item.variant, r.height, r.width, r.steps, r.guidance > 1.0)
        groups.setdefault(key, []).append(item)
    size = max(1, max_batch_size)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def run_requests(
    pipelines: Mapping[str, CatVTONPipeline],
    requests: Sequence[TryOnRequest],
    callback: StepCallback | None = None,
) -> list[TryOnResult | None]:
    """Send each request to the pipeline of its variant; results keep the input order."""
    by_variant: dict[str, list[CheckedInputs]] = {}
    for i, request in enumerate(requests):  # validate everything before any work
        variant = request.resolved_variant()
        if variant not in pipelines:
            if request.variant not in ("auto", *VARIANTS):
                raise BadRequest(
                    f"request {i}: variant must be auto, mask or maskfree, got {request.variant!r}", field="variant"
                )
            raise BadRequest(
                f"request {i}: variant {variant!r} is not loaded (loaded: {', '.join(sorted(pipelines)) or 'none'})",
                field="variant",
            )
        item = pipelines[variant].check_inputs(request, i if len(requests) > 1 else None)
        item.index = i
        by_variant.setdefault(variant, []).append(item)
    total = sum(sum_steps(items, pipelines[v].options) for v, items in by_variant.items())
    progress = Progress(total, callback)
    results: list[TryOnResult | None] = [None] * len(requests)
    for variant, items in by_variant.items():
        for item, result in zip(items, pipelines[variant].run_checked(items, progress)):
            results[item.index] = result
    return results
