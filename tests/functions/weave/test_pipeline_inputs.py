"""CatVTONPipeline.check_inputs on the smoke model: every bad input is a typed client error
naming the value, before any model work; images in any format, EXIF applied."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from functions.weave.request import run_requests
from shared.errors import BadRequest, ClientError, ImageTooLarge, InvalidImage
from tests.functions.weave.support import (
    GARMENT,
    MASK,
    PERSON,
    H,
    W,
    box_mask,
    encode,
    noise_image,
    pixels,
    png_header,
    request,
)


@pytest.mark.parametrize(
    "field,value",
    [
        ("steps", 0),
        ("steps", 151),
        ("steps", 2.5),
        ("steps", True),
        ("guidance", -0.1),
        ("guidance", 20.5),
        ("guidance", math.nan),
        ("guidance", "2"),
        ("height", 100),
        ("width", 96),
        ("height", 0),
        ("width", 4096),
        ("category", "hat"),
        ("variant", "x"),
        ("seed", -1),
        ("seed", "7"),
    ],
)
def test_bad_parameters_are_typed_errors_naming_the_value(maskfree, field, value) -> None:
    with pytest.raises(BadRequest) as info:
        maskfree([request(**{field: value})])
    assert field in str(info.value) and repr(value) in str(info.value)
    assert info.value.status == 400 and info.value.field == field


def test_guidance_and_steps_bounds_are_inclusive(maskfree) -> None:
    for kwargs in ({"guidance": 0.0, "steps": 1}, {"guidance": 20.0, "steps": 1}):
        assert maskfree([request(**kwargs)])[0].image.size == (W, H)
    maskfree.check_inputs(request(steps=150))


def test_mask_variant_without_mask(pipelines) -> None:
    with pytest.raises(BadRequest, match="needs a person mask"):
        pipelines["mask"]([request(variant="mask")])
    with pytest.raises(BadRequest, match="needs a person mask"):
        run_requests(pipelines, [request(variant="mask")])


def test_variant_not_served_and_repaint_without_mask(maskfree) -> None:
    with pytest.raises(BadRequest, match="'mask' is not served"):
        maskfree([request(mask=MASK)])
    with pytest.raises(BadRequest, match="repaint needs a person mask"):
        maskfree([request(repaint=True)])


def test_mask_size_must_match_person(masked) -> None:
    with pytest.raises(BadRequest) as info:
        masked([request(mask=box_mask(90, 160, (10, 10, 50, 50)))])
    assert "90x160" in str(info.value) and "96x160" in str(info.value)


def test_bad_images_are_client_errors(maskfree) -> None:
    jpeg = encode(PERSON, "JPEG")
    cases = [
        (jpeg[: len(jpeg) // 2], InvalidImage, "person image"),
        (b"", InvalidImage, "0 bytes"),
        (b"not an image at all", InvalidImage, "not a readable image"),
        (encode(noise_image(32, 32)), InvalidImage, "32x32"),
        (png_header(50_000, 50_000), ImageTooLarge, "2500000000"),
        (png_header(8000, 6000), ImageTooLarge, "8000x6000"),
        (Image.new("RGB", (40, 200)), InvalidImage, "40x200"),
        (12345, InvalidImage, "int"),
    ]
    for data, error, text in cases:
        with pytest.raises(error) as info:
            maskfree([request(person=data)])
        assert text in str(info.value) and isinstance(info.value, ClientError)
    with pytest.raises(InvalidImage, match="garment image"):
        maskfree([request(garment=b"\xff\xd8\xff")])


def test_bad_request_in_a_batch_is_named_and_nothing_runs(maskfree, unet_batches) -> None:
    shapes = unet_batches(maskfree)
    with pytest.raises(BadRequest, match=r"^request 1: steps"):
        maskfree([request(), request(steps=0)])
    assert shapes == []


def test_image_bytes_in_any_format(maskfree) -> None:
    from shared.images import register_openers

    register_openers()  # HEIF via pillow-heif (load_image does this itself too)
    for data in (
        encode(PERSON, "JPEG"),
        encode(PERSON.convert("RGBA"), "PNG"),
        encode(PERSON, "HEIF"),
        encode(PERSON, "AVIF"),
        encode(PERSON, "WEBP"),
    ):
        result = maskfree([request(person=data, garment=encode(GARMENT), steps=1)])[0]
        assert result.image.size == (W, H)


def test_exif_rotated_person_is_upright_and_the_mask_must_match_it(masked) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 160 wide x 96 high, displayed 96 x 160
    stored = PERSON.transpose(Image.Transpose.ROTATE_90)
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    data = buffer.getvalue()
    checked = masked.check_inputs(request(person=data, mask=MASK))
    assert checked.person.size == (96, 160)
    assert np.abs(pixels(checked.person) - pixels(PERSON)).mean() < 8  # upright again
    with pytest.raises(BadRequest, match="mask is 160x96 but the person image is 96x160"):
        masked.check_inputs(request(person=data, mask=MASK.transpose(Image.Transpose.ROTATE_90)))
