"""FASHN VTON v1.5 as a diffusers-style pipeline (docs/architecture.md, "FASHN VTON").

- `FashnRequest(person, garment, category="upper", garment_photo_type="model",
  segmentation_free=True, steps=30, guidance=1.5, seed=None, skip_cfg_last_n=1,
  safety_check=True)`; categories are Proteus's (upper, lower, overall) or FASHN's (tops,
  bottoms, one-pieces).
- `FashnVTONPipeline(transformer, pose_estimator, human_parser=None, safety_checker=None,
  feature_extractor=None, model_name="fashn-vton-1.5", options=None)`: without a human
  parser (the `commercial` setting) only segmentation-free requests with a flat-lay
  garment are served; the others are refused by `check_inputs` with a 403 saying why.
- `pipe(requests, callback=None) -> list[TryOnResult | None]`; `callback(k, n)` after every
  denoising step (it may raise to stop the call). Results have the fitted person size
  (at most 576 x 864 for the released model), every pixel generated.

The only random draw is each request's initial noise, from its own generator seeded with
its seed, in the working dtype on the working device: a seed fixes the image, and a
request gives the same image alone or in a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from functions.weave.fashn.drawing import draw_pose
from functions.weave.fashn.network import TryOnModel
from functions.weave.fashn.parsing import COVERAGE, HumanParser, clothing_agnostic, garment_image
from functions.weave.fashn.pose import DWPose, Pose
from functions.weave.fashn.preprocess import Padding, fit_and_pad, pre_resize, to_image, to_tensor
from functions.weave.fashn.sampling import euler_sample
from functions.weave.pipeline_common import (
    PipelineOptions,
    Progress,
    StepCallback,
    TryOnResult,
    as_image,
    check_guidance,
    check_seed,
    check_steps,
    cpu_threads,
    draw_missing_seeds,
    is_int,
    request_prefix,
)
from functions.weave.safety import safety_verdicts
from shared.contracts.fields import CATEGORIES
from shared.contracts.tryon import FASHN_MODEL, GARMENT_PHOTO_TYPES, MODELS
from shared.errors import BadRequest, LicenceRestricted
from shared.observability import tracing

MODEL_NAME = FASHN_MODEL
_SPEC = MODELS[FASHN_MODEL]  # its defaults and bounds, defined once in shared/contracts/tryon.py
FASHN_CATEGORIES = {
    "upper": "tops",
    "lower": "bottoms",
    "overall": "one-pieces",
    "tops": "tops",
    "bottoms": "bottoms",
    "one-pieces": "one-pieces",
}
assert set(CATEGORIES) <= set(FASHN_CATEGORIES), "every garment category of the contract maps to FASHN's"
CLASS_IDS = {"tops": 1, "bottoms": 2, "one-pieces": 3}
PHOTO_TYPES = tuple(t for t in GARMENT_PHOTO_TYPES if t != "auto")  # "auto" is decided before weave
DEFAULT_STEPS = _SPEC.steps
DEFAULT_GUIDANCE = _SPEC.guidance
STEPS_RANGE = _SPEC.steps_range
GUIDANCE_RANGE = _SPEC.guidance_range
PARSER_LICENCE = "the FASHN human parser (NVIDIA Source Code License for SegFormer: non-commercial use only)"


@dataclass
class FashnRequest:
    """One FASHN try-on (upstream defaults: 30 steps, guidance 1.5, segmentation-free)."""

    person: Any
    garment: Any
    category: str = "upper"
    garment_photo_type: str = "model"
    segmentation_free: bool = True
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    seed: int | None = None
    skip_cfg_last_n: int = 1
    safety_check: bool = True

    def needs_parser(self) -> bool:
        """Whether the human parser's output is used (a worn garment, or a masked person)."""
        return self.garment_photo_type == "model" or not self.segmentation_free


@dataclass
class FashnChecked:
    """A validated request: decoded images, FASHN category, seed."""

    request: FashnRequest
    index: int
    category: str
    person: Image.Image
    garment: Image.Image
    seed: int = 0


@dataclass
class Conditioning:
    """One request's network inputs (float32, [-1, 1]) and the person padding to crop."""

    ca: torch.Tensor
    person_pose: torch.Tensor
    garment: torch.Tensor
    garment_pose: torch.Tensor
    padding: Padding
    extras: dict = field(default_factory=dict)


class FashnVTONPipeline:
    """Pose + parsing pre-processing, the MMDiT with guided Euler sampling, output crop."""

    def __init__(
        self,
        transformer: TryOnModel,
        pose_estimator: DWPose,
        human_parser: HumanParser | None = None,
        safety_checker: Any = None,
        feature_extractor: Any = None,
        model_name: str = MODEL_NAME,
        options: PipelineOptions | None = None,
        is_smoke: bool = False,
    ) -> None:
        self.transformer = transformer
        self.is_smoke = is_smoke  # tiny random weights: results are noise
        self.pose_estimator = pose_estimator
        self.human_parser = human_parser
        self.safety_checker = safety_checker
        self.feature_extractor = feature_extractor
        self.model_name = model_name
        self.options = options or PipelineOptions()
        self._network: Callable[..., torch.Tensor] = transformer
        if self.options.compile or self.options.cuda_graphs:
            mode = "reduce-overhead" if self.options.cuda_graphs else "default"
            self._network = torch.compile(transformer, mode=mode, fullgraph=False)

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    @property
    def commercial_only(self) -> bool:
        """True when no human parser is loaded: only parser-free combinations run."""
        return self.human_parser is None

    # -- validation ----------------------------------------------------------------------

    def check_inputs(self, request: FashnRequest, index: int | None = None) -> FashnChecked:
        """Validate one request and decode its images; typed errors name the value."""
        p, r = request_prefix(index), request
        if r.category not in FASHN_CATEGORIES:
            raise BadRequest(
                f"{p}category must be one of {', '.join(FASHN_CATEGORIES)}, got {r.category!r}", field="category"
            )
        if r.garment_photo_type not in PHOTO_TYPES:
            raise BadRequest(
                f"{p}garment_photo_type must be model or flat-lay, got {r.garment_photo_type!r}",
                field="garment_photo_type",
            )
        if not isinstance(r.segmentation_free, bool):
            raise BadRequest(
                f"{p}segmentation_free must be true or false, got {r.segmentation_free!r}", field="segmentation_free"
            )
        check_steps(r.steps, STEPS_RANGE, index, self.model_name)
        check_guidance(r.guidance, GUIDANCE_RANGE, index, self.model_name)
        if not is_int(r.skip_cfg_last_n) or not 0 <= r.skip_cfg_last_n <= r.steps:
            raise BadRequest(
                f"{p}skip_cfg_last_n must be an integer in 0..steps ({r.steps}), got {r.skip_cfg_last_n!r}",
                field="skip_cfg_last_n",
            )
        check_seed(r.seed, index)
        if self.human_parser is None and r.needs_parser():
            needs = [
                what
                for what, used in (
                    ("garment_photo_type 'model' (the worn garment is cut out)", r.garment_photo_type == "model"),
                    ("segmentation_free false (the person is masked)", not r.segmentation_free),
                )
                if used
            ]
            raise LicenceRestricted(
                f"{p}{' and '.join(needs)} needs {PARSER_LICENCE}, which this commercial deployment does not "
                f"run; send a product-shot garment with garment_photo_type 'flat-lay' and segmentation_free true",
                field="garment_photo_type" if r.garment_photo_type == "model" else "segmentation_free",
            )
        person = as_image(r.person, "person image", index)
        garment = as_image(r.garment, "garment image", index)
        return FashnChecked(
            r,
            -1 if index is None else index,
            FASHN_CATEGORIES[r.category],
            person,
            garment,
            seed=0 if r.seed is None else int(r.seed),
        )

    # -- the call ------------------------------------------------------------------------

    def __call__(
        self, requests: Sequence[FashnRequest] | FashnRequest, callback: StepCallback | None = None
    ) -> list[TryOnResult | None]:
        """Run try-ons; requests with the same steps share network calls. Results keep order."""
        # 1. Check every request before any heavy work.
        if isinstance(requests, FashnRequest):
            requests = [requests]
        several = len(requests) > 1
        checked = []
        for i, request in enumerate(requests):
            item = self.check_inputs(request, i if several else None)
            item.index = i
            checked.append(item)
        return self.run_checked(checked, Progress(self.count_steps(checked), callback))

    def count_steps(self, items: Sequence[FashnChecked]) -> int:
        """Denoising steps a call of these runs (one per step per batch)."""
        return sum(chunk[0].request.steps for chunk in self.group(items))

    def group(self, items: Sequence[FashnChecked]) -> list[list[FashnChecked]]:
        """Batches that can share network calls: same steps and unguided tail, at most max_batch_size."""
        groups: dict[tuple, list[FashnChecked]] = {}
        for item in items:
            groups.setdefault((item.request.steps, item.request.skip_cfg_last_n), []).append(item)
        size = max(1, self.options.max_batch_size)
        return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]

    @torch.inference_mode()
    def run_checked(self, checked: list[FashnChecked], progress: Progress | None = None) -> list[TryOnResult | None]:
        """Run already checked inputs; results in the given order (None: stopped by the callback)."""
        progress = progress or Progress(self.count_steps(checked), None)
        # 2. Draw the missing seeds (reported with the result).
        draw_missing_seeds(checked)
        results: dict[int, TryOnResult] = {}
        with cpu_threads(self.options.num_threads):
            for chunk in self.group(checked):
                chunk = progress.live(chunk)
                for item, result in zip(chunk, self._run_batch(chunk, progress.step)):
                    if result is not None:
                        results[id(item)] = result
        return [results.get(id(item)) for item in checked]

    def _run_batch(self, items: list[FashnChecked], step_done: Callable[[], set[int]]) -> list[TryOnResult | None]:
        """One batch (None for a request stopped meanwhile: it leaves the batch at the next step)."""
        if not items:
            return []
        start = time.perf_counter()
        asked = items
        device, dtype = self.device, self.dtype
        # 3. Pre-process: pose, parsing, clothing-agnostic and garment images, fit and pad.
        with tracing.span("weave preprocess", attributes={"proteus.batch_size": len(items)}):
            conds = [self.prepare(item) for item in items]
        batch = {
            name: torch.stack([getattr(c, name) for c in conds]).to(device=device, dtype=dtype)
            for name in ("ca", "person_pose", "garment", "garment_pose")
        }
        category = torch.tensor([CLASS_IDS[it.category] for it in items], dtype=torch.int64, device=device)
        # 4. Initial noise: each request's first draw from its own generator, in the working dtype.
        h, w = self.transformer.config.input_shape
        gen_device = device if device.type == "cuda" else torch.device("cpu")
        noise = torch.cat(
            [
                torch.randn(
                    (1, 3, h, w),
                    generator=torch.Generator(gen_device).manual_seed(it.seed),
                    device=gen_device,
                    dtype=dtype,
                )
                for it in items
            ]
        ).to(device)
        guidance = torch.tensor([float(it.request.guidance) for it in items], dtype=dtype, device=device).view(
            -1, 1, 1, 1
        )

        # 5. Guided Euler steps over [conditional; null] rows.
        def velocity(x: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            doubled = {k: torch.cat([v, v]) for k, v in batch.items()}
            if self.options.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            return self._network(
                x,
                t,
                doubled["ca"],
                doubled["person_pose"],
                doubled["garment"],
                doubled["garment_pose"],
                torch.cat([category, category]),
                keep,
            )

        def still_running(_k: int, _n: int) -> list[int] | None:
            """After a step: drop the stopped requests' conditioning; the rows that go on."""
            nonlocal items, conds, batch, category
            stopped = step_done()
            rows = [i for i, it in enumerate(items) if it.index not in stopped]
            if len(rows) == len(items):
                return None
            index = torch.tensor(rows, dtype=torch.long, device=device)
            batch = {name: value[index] for name, value in batch.items()}
            category = category[index]
            items, conds = [items[i] for i in rows], [conds[i] for i in rows]
            return rows

        first = items[0].request
        with tracing.span("weave denoise", attributes={"proteus.steps": first.steps, "proteus.batch_size": len(items)}):
            x = euler_sample(
                velocity,
                noise,
                first.steps,
                guidance,
                skip_cfg_last_n=first.skip_cfg_last_n,
                step_done=still_running,
            )
        if not items:
            return [None] * len(asked)
        # 6. Output: float32, clamp, truncate to 8 bits, crop the person's padding.
        images = [to_image(x[i], c.padding) for i, c in enumerate(conds)]
        # 7. Safety check.
        verdicts = safety_verdicts(
            self.safety_checker,
            self.feature_extractor,
            device,
            images,
            [it.request.safety_check for it in items],
            [f"request {it.index} (seed {it.seed})" for it in items],
        )
        seconds = round(time.perf_counter() - start, 4)
        done = {
            id(it): TryOnResult(
                image=image,
                seed=it.seed,
                nsfw=nsfw,
                metadata={
                    "model": self.model_name,
                    "category": it.request.category,
                    "fashn_category": it.category,
                    "garment_photo_type": it.request.garment_photo_type,
                    "segmentation_free": it.request.segmentation_free,
                    "steps": it.request.steps,
                    "guidance": it.request.guidance,
                    "skip_cfg_last_n": it.request.skip_cfg_last_n,
                    "seed": it.seed,
                    "height": image.height,
                    "width": image.width,
                    "safety": safety,
                    "device": str(device),
                    "dtype": str(dtype).removeprefix("torch."),
                    "batch_size": len(items),
                    "seconds": seconds,
                },
            )
            for it, image, c, (nsfw, safety) in zip(items, images, conds, verdicts)
        }
        return [done.get(id(it)) for it in asked]

    def prepare(self, item: FashnChecked) -> Conditioning:
        """Spec steps 1-9 for one request: the four conditioning tensors and the person padding."""
        h, w = self.transformer.config.input_shape
        coverage = COVERAGE[item.category]
        request = item.request
        person = np.asarray(pre_resize(item.person, max(h, w)).convert("RGB"))
        garment = np.asarray(pre_resize(item.garment, max(h, w)).convert("RGB"))
        person_pose = draw_pose(self.pose_estimator(np.ascontiguousarray(person[:, :, ::-1])), *person.shape[:2])
        if request.garment_photo_type == "model":
            garment_pose = draw_pose(self.pose_estimator(np.ascontiguousarray(garment[:, :, ::-1])), *garment.shape[:2])
        else:
            garment_pose = draw_pose(Pose.empty(), *garment.shape[:2])
        ca = person
        if request.needs_parser():
            assert self.human_parser is not None  # check_inputs refused it otherwise
            if request.garment_photo_type == "model":
                garment = garment_image(garment, self.human_parser.parse(garment), coverage)
            if not request.segmentation_free:
                ca = clothing_agnostic(person, self.human_parser.parse(person), coverage)
        ca_fit, padding = fit_and_pad(ca, h, w)
        return Conditioning(
            ca=to_tensor(ca_fit),
            person_pose=to_tensor(fit_and_pad(person_pose, h, w, pose=True)[0]),
            garment=to_tensor(fit_and_pad(garment, h, w)[0]),
            garment_pose=to_tensor(fit_and_pad(garment_pose, h, w, pose=True)[0]),
            padding=padding,
        )
