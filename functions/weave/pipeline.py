"""CatVTON virtual try-on as a diffusers-style pipeline.

Public API (the method is described in docs/architecture.md, "The weave pipeline"):

- `CatVTONPipeline(vae, unet, scheduler, variant, safety_checker=None,
  feature_extractor=None, model_name="catvton", options=None)`;
  `pipe.check_inputs(request, index=None) -> CheckedInputs` validates one request and
  decodes its images (typed errors naming the value, before any model work);
  `pipe(requests, callback=None) -> list[TryOnResult]` (same order as `requests`);
  `callback(k, n)` is called after every denoising step (k of n, counted over the call);
  it may answer the indices of requests to stop (cancelled): None in their place.
  Results are PIL RGB at the requested size; metadata holds at least model, variant,
  category, steps, guidance, seed, height, width, rendered_height, rendered_width,
  upscaled, repaint, safety, device, dtype, batch_size, seconds.

The request types and `run_requests` (mixed variants, routed to their pipelines) are in
request.py, the attention processors in attention.py, and what the FASHN pipeline shares
(`TryOnResult`, `PipelineOptions`, the input checks) in pipeline_common.py. Randomness comes only from one `torch.Generator` per request, seeded
with its seed and drawn in a fixed order (VAE person sample, VAE garment sample, initial
noise, one DDIM noise per step), so batched results equal single ones. Not thread-safe:
one call at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from PIL import Image

from functions.weave.attention import sdpa_backend, set_catvton_attention
from functions.weave.pipeline_common import (
    PipelineOptions,
    Progress,
    StepCallback,
    TryOnResult,
    as_image,
    cpu_threads,
    draw_missing_seeds,
    request_prefix,
)
from functions.weave.preprocess import (
    MASK_BLUR_RADIUS,
    center_crop_resize,
    image_to_tensor,
    letterbox,
    mask_to_tensor,
    prepare_mask,
    render_size,
    repaint,
    tensor_to_image,
)
from functions.weave.request import (
    CheckedInputs,
    TryOnRequest,
    check_settings,
    check_variant,
    group_requests,
    sum_steps,
)
from functions.weave.safety import safety_verdicts
from shared.config import SDPA_BACKENDS
from shared.contracts.tryon import (
    DEFAULT_GUIDANCE,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    VARIANTS,
)
from shared.errors import BadRequest
from shared.observability import tracing

LATENT_SCALE = 0.18215
ETA = 1.0


class CatVTONPipeline(DiffusionPipeline):
    """CatVTON try-on for one variant ("maskfree": 8 input channels, person | garment
    side by side; "mask": 9 channels, person over garment). No text encoder."""

    _optional_components = ["safety_checker", "feature_extractor"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        scheduler: DDIMScheduler,
        variant: str = "maskfree",
        safety_checker: Any = None,
        feature_extractor: Any = None,
        model_name: str = "catvton",
        options: PipelineOptions | None = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        expected = 9 if variant == "mask" else 8
        if unet.config.in_channels != expected:
            raise ValueError(
                f"variant {variant!r} needs a UNet with {expected} input channels, got {unet.config.in_channels}"
            )
        self.register_modules(
            vae=vae, unet=unet, scheduler=scheduler, safety_checker=safety_checker, feature_extractor=feature_extractor
        )
        self.catvton_variant = variant
        self.model_name = model_name
        self.options = options or PipelineOptions()
        if self.options.sdpa_backend not in SDPA_BACKENDS:
            raise ValueError(f"sdpa_backend must be one of {SDPA_BACKENDS}, got {self.options.sdpa_backend!r}")
        self.size_multiple = 8 * 2 ** (len(unet.config.block_out_channels) - 1)
        set_catvton_attention(unet)
        self._apply_options()

    # -- setup ---------------------------------------------------------------------------

    def _apply_options(self) -> None:
        opts = self.options
        if opts.tf32 and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if opts.channels_last:
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        self.vae.use_slicing = opts.vae_slicing
        self._unet_fn: Callable[..., Any] = self.unet
        if opts.compile or opts.cuda_graphs:
            mode = "reduce-overhead" if opts.cuda_graphs else "default"
            self._unet_fn = torch.compile(self.unet, mode=mode, fullgraph=False)

    def warm_up(self, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> list[int]:
        """Run one denoising step for each UNet batch shape a call at this size meets
        (guided single, guided full batch, unguided single), so that compiling and CUDA-graph
        recording happen now instead of inside a user's request. Returns those batch sizes.

        A compiled UNet specialises batch 1 and turns dynamic at the second batch size it
        sees, so these three cover every batch; another output size compiles on first use.
        """
        person = Image.new("RGB", (width, height), (128, 128, 128))
        garment = Image.new("RGB", (width, height), (64, 96, 160))
        mask = None
        if self.catvton_variant == "mask":
            mask = Image.new("L", (width, height), 0)
            mask.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))

        def request(guidance: float) -> TryOnRequest:
            return TryOnRequest(
                person=person,
                garment=garment,
                mask=mask,
                steps=1,
                seed=0,
                guidance=guidance,
                height=height,
                width=width,
                safety_check=False,
            )

        runs = [[request(DEFAULT_GUIDANCE)], [request(1.0)]]
        if self.options.max_batch_size > 1:
            runs.insert(1, [request(DEFAULT_GUIDANCE)] * self.options.max_batch_size)
        batch_sizes = []
        for requests in runs:
            self(requests)
            guided = requests[0].guidance > 1.0
            batch_sizes.append(len(requests) * (2 if guided else 1))
        return batch_sizes

    # -- validation ----------------------------------------------------------------------

    def check_inputs(self, request: TryOnRequest, index: int | None = None) -> CheckedInputs:
        """Validate one request and decode its images; raises BadRequest / InvalidImage /
        ImageTooLarge naming the value. Cheap checks run before any decoding."""
        p, r = request_prefix(index), request
        variant = check_variant(r, index)
        if variant != self.catvton_variant:
            raise BadRequest(
                f"{p}variant {variant!r} is not served by this pipeline (variant {self.catvton_variant!r})",
                field="variant",
            )
        check_settings(r, index)
        person = as_image(r.person, "person image", index)
        garment = as_image(r.garment, "garment image", index)
        mask = None if r.mask is None else as_image(r.mask, "mask", index, mask=True)
        if mask is not None and mask.size != person.size:
            raise BadRequest(
                f"{p}mask is {mask.width}x{mask.height} but the person image is {person.width}x{person.height}",
                field="mask",
            )
        return CheckedInputs(
            r, -1 if index is None else index, variant, person, garment, mask, seed=0 if r.seed is None else int(r.seed)
        )

    # -- the call ------------------------------------------------------------------------

    def __call__(
        self, requests: Sequence[TryOnRequest], callback: StepCallback | None = None
    ) -> list[TryOnResult | None]:
        """Run try-ons; compatible requests share batched UNet calls. Results keep order."""
        # 1. Check every request before any heavy work.
        if isinstance(requests, TryOnRequest):
            requests = [requests]
        several = len(requests) > 1
        checked = []
        for i, request in enumerate(requests):
            item = self.check_inputs(request, i if several else None)
            item.index = i
            checked.append(item)
        return self.run_checked(checked, Progress(sum_steps(checked, self.options), callback))

    @torch.inference_mode()
    def run_checked(self, checked: list[CheckedInputs], progress: Progress | None = None) -> list[TryOnResult | None]:
        """Run already checked inputs (from `check_inputs`); results in the given order (None:
        stopped by the progress callback)."""
        progress = progress or Progress(sum_steps(checked, self.options), None)
        # 2. Draw the missing seeds (reported with the result).
        draw_missing_seeds(checked)
        # 3. Group compatible requests (size, steps, guidance on/off) into batches.
        results: dict[int, TryOnResult] = {}
        with cpu_threads(self.options.num_threads):
            for chunk in group_requests(checked, self.options.max_batch_size):
                chunk = progress.live(chunk)
                for item, result in zip(chunk, self._run_batch(chunk, progress.step)):
                    if result is not None:
                        results[id(item)] = result
        return [results.get(id(item)) for item in checked]

    @staticmethod
    def _noise(gens: list[torch.Generator], shape: Sequence[int], device: torch.device) -> torch.Tensor:
        """One draw per request from its own generator, stacked (float32, on device)."""
        return torch.stack(
            [torch.randn(tuple(shape), generator=g, device=g.device, dtype=torch.float32) for g in gens]
        ).to(device)

    def _run_batch(self, items: list[CheckedInputs], step_done: Callable[[], set[int]]) -> list[TryOnResult | None]:
        """One batch of compatible requests, steps 4 to 10 (None for a request stopped meanwhile)."""
        if not items:
            return []
        start = time.perf_counter()
        asked = items
        first = items[0].request
        height, width = first.height, first.width
        device, dtype = self.device, self.unet.dtype
        rh, rw = render_size(height, width, self.options.max_render_pixels, self.size_multiple)
        gen_device = device if device.type == "cuda" else torch.device("cpu")
        gens = [torch.Generator(device=gen_device).manual_seed(it.seed) for it in items]
        # 4.-5. Pre-process and VAE-encode (seeded samples).
        with tracing.span("weave vae encode", attributes={"proteus.batch_size": len(items)}):
            person_lat, garment_lat, mask = self._encode(items, gens, rh, rw, device, dtype)
        # 6.-8. Conditioning, initial noise, guided stochastic DDIM.
        with tracing.span("weave denoise", attributes={"proteus.steps": first.steps, "proteus.batch_size": len(items)}):
            latents, items = self._denoise(items, gens, person_lat, garment_lat, mask, step_done)
        if not items:
            return [None] * len(asked)
        # 9. Keep the person half and decode.
        join = -2 if self.catvton_variant == "mask" else -1
        person_part = latents.split(latents.shape[join] // 2, dim=join)[0]
        with tracing.span("weave vae decode", attributes={"proteus.batch_size": len(items)}):
            decoded = self.vae.decode((person_part / LATENT_SCALE).to(dtype)).sample
            decoded = (decoded.float() / 2 + 0.5).clamp(0, 1).cpu()
        # 10. Post-process: upscale to the requested size, repaint, safety check.
        images = []
        for it, tensor in zip(items, decoded):
            image = tensor_to_image(tensor)
            if (rh, rw) != (height, width):
                image = image.resize((width, height), Image.Resampling.LANCZOS)
            if it.request.repaint:
                person_full = center_crop_resize(it.person, height, width)
                image = repaint(image, person_full, prepare_mask(it.mask, height, width))
            images.append(image)
        verdicts = safety_verdicts(  # (nsfw, label) per image; label: off / unavailable / passed / flagged
            self.safety_checker,
            self.feature_extractor,
            self.device,
            images,
            [it.request.safety_check for it in items],
            [f"request {it.index} (seed {it.seed})" for it in items],
        )
        seconds = round(time.perf_counter() - start, 4)
        done = {
            id(it): TryOnResult(
                image=img,
                seed=it.seed,
                nsfw=nsfw,
                metadata={
                    "model": self.model_name,
                    "variant": self.catvton_variant,
                    "category": it.request.category,
                    "steps": it.request.steps,
                    "guidance": it.request.guidance,
                    "seed": it.seed,
                    "height": height,
                    "width": width,
                    "rendered_height": rh,
                    "rendered_width": rw,
                    "upscaled": (rh, rw) != (height, width),
                    "repaint": bool(it.request.repaint),
                    "safety": safety,
                    "device": str(device),
                    "dtype": str(dtype).removeprefix("torch."),
                    "batch_size": len(items),
                    "seconds": seconds,
                },
            )
            for it, img, (nsfw, safety) in zip(items, images, verdicts)
        }
        return [done.get(id(it)) for it in asked]

    def _encode(
        self,
        items: list[CheckedInputs],
        gens: list[torch.Generator],
        rh: int,
        rw: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Person / garment latents (float32, scaled) and the render-size mask (or None)."""
        # 4. Pre-process: person crop, garment letterbox, mask (same crop, blurred, binary).
        person = torch.stack([image_to_tensor(center_crop_resize(it.person, rh, rw)) for it in items])
        garment = torch.stack([image_to_tensor(letterbox(it.garment, rh, rw)) for it in items])
        mask = None
        if self.catvton_variant == "mask":
            blur = MASK_BLUR_RADIUS * rh / items[0].request.height
            mask = torch.stack([mask_to_tensor(prepare_mask(it.mask, rh, rw, blur)) for it in items]).to(device)
            person = person * (mask.cpu() < 0.5)
        # 5. VAE-encode; sample = mean + std * noise, the noise from each request's generator
        # in a fixed order (person, then garment).
        dist = self.vae.encode(torch.cat([person, garment]).to(device=device, dtype=dtype)).latent_dist
        shape = tuple(dist.mean.shape[1:])
        draws = [
            [torch.randn(shape, generator=g, device=g.device, dtype=torch.float32) for _ in range(2)] for g in gens
        ]
        noise = torch.stack([d[0] for d in draws] + [d[1] for d in draws]).to(device)
        latents = (dist.mean.float() + dist.std.float() * noise) * LATENT_SCALE
        person_lat, garment_lat = latents.chunk(2)
        return person_lat, garment_lat, mask

    def _denoise(
        self,
        items: list[CheckedInputs],
        gens: list[torch.Generator],
        person_lat: torch.Tensor,
        garment_lat: torch.Tensor,
        mask: torch.Tensor | None,
        step_done: Callable[[], set[int]],
    ) -> tuple[torch.Tensor, list[CheckedInputs]]:
        """The joined latent after the guided stochastic DDIM loop (float32), and the requests
        it holds: one stopped by `step_done` (its index answered) leaves after that step."""
        device, dtype = person_lat.device, self.unet.dtype
        steps = items[0].request.steps
        do_cfg = items[0].request.guidance > 1.0
        # 6. Conditioning X: person and garment joined (height for mask, width for mask-free);
        # the unconditional member has the garment zeroed; mask-based adds M before X.
        join = -2 if mask is not None else -1
        x = torch.cat([person_lat, garment_lat], dim=join)
        if do_cfg:
            x = torch.cat([x, torch.cat([person_lat, torch.zeros_like(garment_lat)], dim=join)])
        if mask is not None:
            m = F.interpolate(mask, size=tuple(person_lat.shape[-2:]), mode="nearest")
            m = torch.cat([m, torch.zeros_like(m)], dim=-2)
            x = torch.cat([torch.cat([m, m]) if do_cfg else m, x], dim=1)
        x = x.to(dtype)
        # 7. Initial noise, shaped like the joined latent, scaled by the init sigma.
        self.scheduler.set_timesteps(steps, device=device)
        latents = self._noise(gens, person_lat.shape[1:2] + x.shape[2:], device)
        latents = latents * self.scheduler.init_noise_sigma
        scale = torch.tensor([it.request.guidance for it in items], device=device, dtype=torch.float32).view(
            -1, 1, 1, 1
        )
        # 8. Denoise: stochastic DDIM (eta = 1), eps = u + g * (c - u) when guidance > 1.
        with sdpa_backend(self.options.sdpa_backend):
            for t in self.scheduler.timesteps:
                model_in = torch.cat([latents, latents]) if do_cfg else latents
                model_in = self.scheduler.scale_model_input(model_in, t)
                unet_in = torch.cat([model_in.to(dtype), x], dim=1)
                if self.options.channels_last:
                    unet_in = unet_in.contiguous(memory_format=torch.channels_last)
                if self.options.cuda_graphs:  # each step is a new graph replay
                    torch.compiler.cudagraph_mark_step_begin()
                eps = self._unet_fn(unet_in, t, encoder_hidden_states=None, return_dict=False)[0].float()
                if do_cfg:
                    cond, uncond = eps.chunk(2)
                    eps = uncond + scale * (cond - uncond)
                step_noise = self._noise(gens, latents.shape[1:], device)
                latents = self.scheduler.step(eps, t, latents, eta=ETA, variance_noise=step_noise).prev_sample
                stopped = step_done()
                live = [i for i, it in enumerate(items) if it.index not in stopped]
                if len(live) < len(items):  # each row draws from its own generator: the others stay the same
                    rows = torch.tensor(live, dtype=torch.long, device=device)
                    latents, scale = latents[rows], scale[rows]
                    x = x[torch.cat([rows, rows + len(items)])] if do_cfg else x[rows]
                    gens, items = [gens[i] for i in live], [items[i] for i in live]
                    if not items:
                        break
        return latents, items
