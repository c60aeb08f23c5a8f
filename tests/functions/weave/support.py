"""What the weave pipeline tests share: seeded noise images, masks, encoded bytes, a default
request at a size the smoke model renders as is, and pixel helpers."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from functions.weave.request import TryOnRequest

H, W = 128, 64  # renders as is (under the smoke model's render cap)


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


def box_mask(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, box)
    return mask


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG file that claims width x height (a decompression bomb's header)."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


PERSON = noise_image(96, 160, seed=1)
GARMENT = noise_image(80, 100, seed=2)
MASK = box_mask(96, 160, (24, 40, 72, 110))


def request(**kwargs) -> TryOnRequest:
    base = dict(person=PERSON, garment=GARMENT, height=H, width=W, steps=4, seed=7)
    base.update(kwargs)
    return TryOnRequest(**base)


def dilate(mask: np.ndarray, reach: int) -> np.ndarray:
    """Every pixel within `reach` (square) of a True pixel."""
    padded = np.pad(mask, reach)
    out = np.zeros_like(mask)
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            out |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)
