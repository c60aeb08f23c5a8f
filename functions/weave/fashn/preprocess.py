"""Image geometry of FASHN VTON: pre-resize, fit-and-pad to the network size, tensors, output.

Sizes follow the network's input_shape (864 x 576 for the released model): pre-resize to a
long side of max(h, w) (never upsampling), fit into w x h (upsampling small images) and pad
black, centred. The person image's padding is kept to crop the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class Padding:
    left: int
    top: int
    right: int
    bottom: int


def pre_resize(image: Image.Image, long_side: int) -> Image.Image:
    """Scale by min(L / w, L / h) with Lanczos and truncated sizes; never upsample."""
    w, h = image.size
    s = min(long_side / w, long_side / h)
    if s >= 1:
        return image
    return image.resize((int(s * w), int(s * h)), Image.Resampling.LANCZOS)


def fit_and_pad(array: np.ndarray, height: int, width: int, *, pose: bool = False) -> tuple[np.ndarray, Padding]:
    """Fit into (height, width) keeping the aspect (area down, Lanczos-4 up, nearest-exact for
    pose drawings), then pad with 0 centred (left / top get the floor half)."""
    h, w = array.shape[:2]
    s = min(width / w, height / h)
    if s != 1:
        size = (int(s * w), int(s * h))
        if pose:
            interpolation = cv2.INTER_NEAREST_EXACT
        else:
            interpolation = cv2.INTER_AREA if s < 1 else cv2.INTER_LANCZOS4
        array = cv2.resize(array, size, interpolation=interpolation)
    h, w = array.shape[:2]
    left, top = (width - w) // 2, (height - h) // 2
    pad = Padding(left, top, width - w - left, height - h - top)
    array = cv2.copyMakeBorder(array, pad.top, pad.bottom, pad.left, pad.right, cv2.BORDER_CONSTANT, value=0)
    return array, pad


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 HWC (or HW) -> float32 CHW in [-1, 1]: value / 127.5 - 1."""
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float() / 127.5 - 1


def to_image(x: torch.Tensor, pad: Padding) -> Image.Image:
    """(3, H, W) state -> RGB: float32, clamp, truncate((x + 1) / 2 * 255), padding cropped."""
    pixels = ((x.float().clamp(-1, 1) + 1) * 0.5).mul(255).to(torch.uint8)
    h, w = pixels.shape[1:]
    crop = pixels[:, pad.top : h - pad.bottom, pad.left : w - pad.right]
    return Image.fromarray(crop.permute(1, 2, 0).cpu().numpy(), "RGB")
