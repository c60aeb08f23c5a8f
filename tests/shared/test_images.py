"""shared.images: header-first size checks, EXIF, alpha, HEIC/AVIF, and every bad input."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image

from shared.errors import ImageTooLarge, InvalidImage
from shared.images import encode_png, flatten_to_rgb, load_image, load_mask, probe_image, register_openers


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A ~100-byte PNG claiming width x height: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    )


def two_colour(width: int = 120, height: int = 80) -> Image.Image:
    """Left half red, right half blue: orientation is visible."""
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    return image


def test_jpeg_png_webp_load_as_rgb() -> None:
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"):
        image = load_image(encode(two_colour(), fmt), what="person image")
        assert image.mode == "RGB" and image.size == (120, 80), fmt


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(two_colour(), "JPEG", exif=exif.tobytes())
    image = load_image(data)
    assert image.size == (80, 120)
    top, bottom = image.getpixel((40, 5)), image.getpixel((40, 114))
    assert top[0] > 200 and top[2] < 60  # red (the left) is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    assert probe_image(data) == ("JPEG", 80, 120)


def test_alpha_is_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    rgba.paste((10, 200, 30, 255), (0, 0, 50, 100))
    image = load_image(encode(rgba, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((75, 50)) == (255, 255, 255)
    assert image.getpixel((25, 50)) == (10, 200, 30)
    palette = Image.new("P", (100, 100), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 50, 100))
    loaded = load_image(encode(palette, "PNG", transparency=0))
    assert loaded.getpixel((75, 50)) == (255, 255, 255) and loaded.getpixel((25, 50)) == (255, 0, 0)
    la = Image.new("LA", (64, 64), (0, 0))
    assert flatten_to_rgb(la).getpixel((1, 1)) == (255, 255, 255)


def test_heic_and_avif() -> None:
    register_openers()
    for fmt in ("HEIF", "AVIF"):
        data = encode(two_colour(), fmt, quality=90)
        image = load_image(data, what="garment image")
        assert image.mode == "RGB" and image.size == (120, 80), fmt
        left = image.getpixel((10, 40))
        assert left[0] > 180 and left[2] < 80, fmt
        assert probe_image(data)[1:] == (120, 80)


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    image = Image.new("I;16", (70, 70), 40000)
    assert load_image(encode(image, "PNG")).getpixel((0, 0)) == (156, 156, 156)


def test_truncated_jpeg_is_invalid() -> None:
    data = encode(two_colour(400, 300), "JPEG", quality=95)
    with pytest.raises(InvalidImage, match="person image could not be decoded"):
        load_image(data[: len(data) // 2], what="person image")


@pytest.mark.parametrize(
    "data,text",
    [
        (b"", "empty (0 bytes)"),
        (b"GIF89a", "not a readable image"),
        (b"hello world, not an image", "not a readable image (25 bytes, unknown format)"),
    ],
)
def test_unreadable_bytes_are_invalid(data: bytes, text: str) -> None:
    with pytest.raises(InvalidImage, match=text.replace("(", r"\(").replace(")", r"\)")) as info:
        load_image(data, what="garment image")
    assert "garment image" in str(info.value) and info.value.status == 400


def test_not_bytes_is_invalid() -> None:
    with pytest.raises(InvalidImage, match="must be bytes, got str"):
        load_image("person.jpg")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(32, 32), (63, 500), (500, 10)])
def test_tiny_images_are_invalid(size: tuple[int, int]) -> None:
    with pytest.raises(InvalidImage, match=f"{size[0]}x{size[1]}, smaller than the minimum of 64"):
        load_image(encode(Image.new("RGB", size), "PNG"))


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png_header(50_000, 50_000)
    assert len(bomb) < 200
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="2500000000 pixels") as info:
        load_image(bomb, what="person image")
    assert time.perf_counter() - start < 0.5 and info.value.status == 413
    with pytest.raises(ImageTooLarge):
        probe_image(bomb)


def test_over_the_pixel_limit_is_refused_before_decoding() -> None:
    header = png_header(8000, 6000)  # 48 MP: over 40 MP, under Pillow's own bomb limit
    with pytest.raises(ImageTooLarge, match="8000x6000 = 48000000 pixels, over the limit of 40000000"):
        load_image(header)
    with pytest.raises(ImageTooLarge, match="limit of 1000"):
        load_image(encode(Image.new("RGB", (64, 64)), "PNG"), max_pixels=1000)


def test_probe_reads_only_the_header() -> None:
    assert probe_image(png_header(7000, 5000)) == ("PNG", 7000, 5000)  # no pixel data at all
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        load_image(png_header(7000, 5000))
    assert probe_image(encode(two_colour(), "WEBP")) == ("WEBP", 120, 80)
    with pytest.raises(InvalidImage):
        probe_image(b"")


def test_load_mask_is_grey_and_transparent_is_zero() -> None:
    mask = load_mask(encode(two_colour(), "PNG"))
    assert mask.mode == "L" and mask.size == (120, 80)
    rgba = Image.new("RGBA", (80, 80), (255, 255, 255, 0))
    rgba.paste((255, 255, 255, 255), (0, 0, 40, 80))
    loaded = load_mask(encode(rgba, "PNG"))
    assert loaded.getpixel((10, 10)) == 255 and loaded.getpixel((70, 10)) == 0
    with pytest.raises(InvalidImage, match="mask is 40x40"):
        load_mask(encode(Image.new("L", (40, 40)), "PNG"))


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_encode_png_is_lossless_and_keeps_text_chunks(mode: str) -> None:
    from PIL.PngImagePlugin import PngInfo

    image = Image.effect_noise((96, 64), 40).convert(mode)
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x/>")
    data = encode_png(image, pnginfo=info)
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.format == "PNG" and decoded.mode == mode
        assert decoded.tobytes() == image.tobytes()
        assert decoded.info["XML:com.adobe.xmp"] == "<x/>"
