"""Image preparation for CatVTON: person crop, garment letterbox, mask, repaint.

All functions are pure (PIL / tensors in, new objects out) and size-exact.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

MASK_BLUR_RADIUS = 9  # the reference app's Gaussian radius before re-binarising


def center_crop_resize(
    image: Image.Image, height: int, width: int, resample: Image.Resampling = Image.Resampling.LANCZOS
) -> Image.Image:
    """Centre-crop `image` to the height:width aspect ratio, then resize to exactly that size."""
    src_w, src_h = image.size
    target = width / height
    if src_w / src_h > target:  # too wide: trim the sides
        crop_w, crop_h = max(1, round(src_h * target)), src_h
    else:  # too tall: trim top and bottom
        crop_w, crop_h = src_w, max(1, round(src_w / target))
    left, top = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    cropped = image.crop((left, top, left + crop_w, top + crop_h))
    return cropped.resize((width, height), resample)


def letterbox(image: Image.Image, height: int, width: int, fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Fit `image` inside height x width keeping its aspect ratio, centred on `fill` (white)."""
    src_w, src_h = image.size
    scale = min(width / src_w, height / src_h)
    new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    resized = image.convert("RGB").resize((new_w, new_h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height), fill)
    canvas.paste(resized, ((width - new_w) // 2, (height - new_h) // 2))
    return canvas


def binarize(mask: Image.Image, threshold: float = 0.5) -> Image.Image:
    """0/255 "L" mask: grey / 255 >= threshold is 255 (the region to repaint)."""
    cut = threshold * 255
    return mask.convert("L").point(lambda v: 255 if v >= cut else 0)


def prepare_mask(mask: Image.Image, height: int, width: int, blur_radius: float = MASK_BLUR_RADIUS) -> Image.Image:
    """Person-aligned binary mask: same crop/resize as the person, blur, re-binarise."""
    resized = binarize(center_crop_resize(mask.convert("L"), height, width))
    if blur_radius > 0:
        resized = binarize(resized.filter(ImageFilter.GaussianBlur(blur_radius)))
    return resized


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float32 tensor (3, H, W) in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).div(127.5).sub(1.0)


def mask_to_tensor(mask: Image.Image) -> torch.Tensor:
    """Binary "L" mask -> float32 tensor (1, H, W) of 0/1 (1 = repaint)."""
    array = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy((array >= 0.5).astype(np.float32))[None]


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [0, 1] -> 8-bit RGB image."""
    array = tensor.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), "RGB")


def repaint_kernel_size(height: int) -> int:
    """Odd Gaussian kernel size of about height / 50 (at least 3)."""
    size = max(3, height // 50)
    return size if size % 2 else size + 1


def _gaussian_blur(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Separable Gaussian of finite support size // 2 (torchvision's default sigma)."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = mask[None, None]
    x = F.conv2d(x, kernel.view(1, 1, 1, size), padding=(0, size // 2))
    x = F.conv2d(x, kernel.view(1, 1, size, 1), padding=(size // 2, 0))
    return x[0, 0]


def _erode(mask: torch.Tensor, reach: int) -> torch.Tensor:
    """The mask shrunk by `reach` pixels (a min-filter of width 2 * reach + 1)."""
    inverted = 1.0 - mask[None, None]
    grown = F.max_pool2d(inverted, kernel_size=2 * reach + 1, stride=1, padding=reach)
    return 1.0 - grown[0, 0]


def repaint(result: Image.Image, person: Image.Image, mask: Image.Image) -> Image.Image:
    """result * m + person * (1 - m) with m = the mask, eroded then blurred (kernel ~ height / 50).

    The erosion by the blur's reach keeps the soft edge inside the mask, so every pixel
    outside the mask gets m == 0 and stays exactly the person's.
    """
    size = repaint_kernel_size(mask.height)
    m = _erode(mask_to_tensor(mask)[0], size // 2)
    m = _gaussian_blur(m, size).clamp(0, 1).numpy()[..., None]
    res = np.asarray(result.convert("RGB"), dtype=np.float32)
    per = np.asarray(person.convert("RGB"), dtype=np.float32)
    out = np.rint(res * m + per * (1.0 - m)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def render_size(height: int, width: int, max_pixels: int | None, multiple: int) -> tuple[int, int]:
    """The size actually denoised: the request's, or scaled down to fit `max_pixels`,
    each side a multiple of `multiple` (and at least one multiple)."""
    if not max_pixels or height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    h = max(multiple, int(height * scale + 1e-6) // multiple * multiple)
    w = max(multiple, int(width * scale + 1e-6) // multiple * multiple)
    return h, w
