"""Safe image decoding for every stage.

- `probe_image(data)`: format and size from the header only (no pixel decoding).
- `load_image(data)`: an RGB image, size-checked from the header before decoding,
  EXIF orientation applied, alpha flattened onto white.
- `load_mask(data)`: the same checks, returned in "L" mode (transparent = 0).

Any format Pillow reads is accepted; HEIF/HEIC (pillow-heif) and AVIF (Pillow's own
plugin, or pillow-heif's where that Pillow lacks it) are registered once on first use.
Every failure is an `InvalidImage` or `ImageTooLarge` naming what and the value.

`encode_png(image)`: how results (weave's try-ons, tailor's masks and cut-outs) are written.
PNG filters each row and deflates the result; zlib's run-length strategy (Z_RLE, "designed to
be almost as fast as Z_HUFFMAN_ONLY, but give better compression for PNG image data", zlib's
manual) at level 1 encodes a photo-like 768x1024 result in a fifth to two thirds of the time
of Pillow's default (level 6, default strategy), at the same size or smaller (bench/png.py).
"""

from __future__ import annotations

import io
import re
import threading
import warnings
import zlib
from typing import Any, Final

from PIL import Image, ImageOps, UnidentifiedImageError, features

from shared.errors import ImageTooLarge, InvalidImage

MAX_PIXELS = 40_000_000
PNG_OPTIONS: Final = {"compress_level": 1, "compress_type": zlib.Z_RLE}
MIN_SIDE = 64
# Enough of a file for its header in nearly every photo (JPEG's EXIF and ICC segments
# included); a header that runs past it needs the whole file (shown by probe_image failing).
HEADER_BYTES = 256 * 1024

_EXIF_ORIENTATION = 0x0112
_registered = False
_register_lock = threading.Lock()


def register_openers() -> None:
    """Register the pillow-heif HEIF (and, if Pillow lacks it, AVIF) openers once."""
    global _registered
    if _registered:
        return
    with _register_lock:
        if _registered:
            return
        try:
            import pillow_heif
        except ImportError:  # pragma: no cover - pillow_heif is a base requirement
            pillow_heif = None  # type: ignore[assignment]
        if pillow_heif is not None:
            pillow_heif.register_heif_opener()
            register_avif = getattr(pillow_heif, "register_avif_opener", None)
            if register_avif is not None and not features.check("avif"):
                register_avif()
        _registered = True


def _open(data: bytes, what: str, max_pixels: int | None) -> Image.Image:
    """Open lazily (header only) and refuse anything over `max_pixels` before decoding."""
    register_openers()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImage(f"{what} must be bytes, got {type(data).__name__}", field=what)
    if len(data) == 0:
        raise InvalidImage(f"{what} is empty (0 bytes)", field=what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(data)))
    except Image.DecompressionBombError as exc:
        match = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = match.group(1) if match else "too many"
        raise ImageTooLarge(
            f"{what} has {pixels} pixels, over the limit of {max_pixels or MAX_PIXELS}",
            field=what,
        ) from None
    except UnidentifiedImageError:
        raise InvalidImage(f"{what} is not a readable image ({len(data)} bytes, unknown format)", field=what) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"{what} is not a readable image ({len(data)} bytes): {exc}", field=what) from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(
            f"{what} is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
            field=what,
        )
    return image


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) after EXIF rotation, read from the header's EXIF only."""
    width, height = image.size
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # broken EXIF is treated as "no rotation"
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def probe_image(data: bytes, *, max_pixels: int | None = MAX_PIXELS, what: str = "image") -> tuple[str, int, int]:
    """(format, width, height) from the header alone; size after EXIF rotation.

    Raises InvalidImage for unreadable bytes and ImageTooLarge over `max_pixels`.
    """
    image = _open(data, what, max_pixels)
    width, height = _oriented_size(image)
    return (image.format or "UNKNOWN"), width, height


def _decode(data: bytes, what: str, max_pixels: int | None, min_side: int) -> Image.Image:
    image = _open(data, what, max_pixels)
    width, height = image.size
    if width < min_side or height < min_side:
        raise InvalidImage(
            f"{what} is {width}x{height}, smaller than the minimum of {min_side} px per side",
            field=what,
        )
    try:
        image.load()  # first frame only for multi-frame formats
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"{what} could not be decoded (truncated or corrupt): {exc}", field=what) from None
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info)


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale scaled to 8 bits (Pillow would clip them)."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    wide = image if image.mode == "F" else image.convert("I")
    high = wide.getextrema()[1]
    if isinstance(high, (int, float)) and high > 255:
        wide = wide.point(lambda v: v * (1 / 256))
    return wide.convert("L")


def flatten_to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB copy of an already decoded image, any alpha composited onto `background`."""
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return _to_8bit(image).convert("RGB")


def to_mask(image: Image.Image) -> Image.Image:
    """ "L" copy of an already decoded mask; transparent pixels count as 0."""
    if _has_alpha(image):
        return flatten_to_rgb(image, (0, 0, 0)).convert("L")
    return _to_8bit(image).convert("L")


def load_image(
    data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE, what: str = "image"
) -> Image.Image:
    """Decode `data` to an RGB image: header size check, EXIF transpose, alpha onto white."""
    return flatten_to_rgb(_decode(data, what, max_pixels, min_side))


def load_mask(
    data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE, what: str = "mask"
) -> Image.Image:
    """Decode a mask to "L" mode (grey level; transparent pixels count as 0)."""
    return to_mask(_decode(data, what, max_pixels, min_side))


def encode_png(image: Image.Image, **options: Any) -> bytes:
    """`image` as PNG with PNG_OPTIONS (and Pillow's other PNG options, e.g. `pnginfo`)."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **PNG_OPTIONS, **options)
    return buffer.getvalue()
