"""CatVTON at the real size with random weights, for bench/weave.py and bench/weave_vae.py:
the SD-1.5 UNet and sd-vae-ft-mse configs, the plain one-request baseline loop (fp32, eager),
and timing and memory helpers."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch
from PIL import Image

from functions.weave.attention import set_catvton_attention
from functions.weave.loading import DDIM_SETTINGS
from functions.weave.pipeline import ETA, LATENT_SCALE, CatVTONPipeline
from functions.weave.preprocess import (
    center_crop_resize,
    image_to_tensor,
    letterbox,
    tensor_to_image,
)
from functions.weave.request import TryOnRequest

# stable-diffusion-inpainting / instruct-pix2pix `unet/config.json` (SD-1.5 layout).
SD15_UNET = dict(
    sample_size=64,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8,
)
# stabilityai/sd-vae-ft-mse `config.json`.
SD_VAE_FT_MSE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=256,
)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def build(in_channels: int, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Real-size UNet and VAE, random weights, fp32 on `device`."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET, in_channels=in_channels)
        vae = AutoencoderKL(**SD_VAE_FT_MSE)
    set_catvton_attention(unet)
    return unet.eval().requires_grad_(False), vae.eval().requires_grad_(False)


def scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**DDIM_SETTINGS)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB, process peak


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def inputs(height: int, width: int, seed: int) -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(seed)
    person = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    garment = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    return (
        Image.fromarray(person).resize((width, height), Image.Resampling.BILINEAR),
        Image.fromarray(garment).resize((width, height), Image.Resampling.BILINEAR),
    )


@torch.no_grad()
def plain_tryon(
    unet,
    vae,
    sched,
    person: Image.Image,
    garment: Image.Image,
    seed: int,
    steps: int,
    guidance: float,
    height: int,
    width: int,
) -> Image.Image:
    """The mask-free algorithm written out plainly: one request, fp32, eager."""
    device = next(unet.parameters()).device
    g = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(seed)

    def sample(pixels: torch.Tensor) -> torch.Tensor:
        dist = vae.encode(pixels[None].to(device)).latent_dist
        noise = torch.randn(dist.mean.shape[1:], generator=g, device=g.device).to(device)
        return (dist.mean + dist.std * noise[None]) * LATENT_SCALE

    p = sample(image_to_tensor(center_crop_resize(person, height, width)))
    c = sample(image_to_tensor(letterbox(garment, height, width)))
    cond = torch.cat([p, c], dim=-1)
    uncond = torch.cat([p, torch.zeros_like(c)], dim=-1)
    sched.set_timesteps(steps, device=device)
    latents = torch.randn(cond.shape[1:], generator=g, device=g.device).to(device)[None]
    latents = latents * sched.init_noise_sigma
    for t in sched.timesteps:
        x = torch.cat([torch.cat([latents, cond], 1), torch.cat([latents, uncond], 1)])
        eps_c, eps_u = unet(x, t, encoder_hidden_states=None).sample.chunk(2)
        eps = eps_u + guidance * (eps_c - eps_u)
        noise = torch.randn(latents.shape[1:], generator=g, device=g.device).to(device)[None]
        latents = sched.step(eps, t, latents, eta=ETA, variance_noise=noise).prev_sample
    image = vae.decode(latents[..., : latents.shape[-1] // 2] / LATENT_SCALE).sample[0]
    return tensor_to_image((image / 2 + 0.5).clamp(0, 1).cpu())


def time_pipeline(
    pipe: CatVTONPipeline, device: torch.device, batch: int, steps: int, height: int, width: int, warmup: int
) -> tuple[float, float, list]:
    reqs = []
    for i in range(batch):
        person, garment = inputs(height, width, i)
        reqs.append(
            TryOnRequest(
                person=person, garment=garment, steps=steps, height=height, width=width, seed=i, safety_check=False
            )
        )
    for _ in range(warmup):  # same shapes, one step: kernels, caches, compile, graphs
        pipe([TryOnRequest(**{**vars(r), "steps": 1}) for r in reqs])
    sync(device)
    reset_peak(device)
    start = time.perf_counter()
    results = pipe(reqs)
    sync(device)
    return time.perf_counter() - start, peak_gb(device), results
