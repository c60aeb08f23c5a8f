"""Masks, cut-outs, categories and checks on hand-drawn label maps (no model)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from functions.tailor import arrays, asset_key, content_hash
from functions.tailor import geometry as g
from functions.tailor import labels as lab
from functions.tailor.geometry import TailorInputError
from shared.errors import BadRequest

H, W = 400, 300
FACE_ROWS = (40, 95)  # face height 55 = the hand radius
LEFT_FINGERTIP = (259, 70)


def draw_person(labels: np.ndarray, dx: int = 0) -> np.ndarray:
    """One standing person, arms hanging beside the torso, shifted right by dx."""

    def box(label: int, top: int, bottom: int, left: int, right: int) -> None:
        labels[top:bottom, left + dx : right + dx] = label

    box(lab.HAIR, 20, 50, 120, 180)
    box(lab.FACE, *FACE_ROWS, 125, 175)
    box(lab.UPPER_CLOTHES, 95, 230, 100, 200)
    box(lab.LEFT_ARM, 100, 260, 70, 100)
    box(lab.RIGHT_ARM, 100, 260, 200, 230)
    box(lab.PANTS, 230, 360, 110, 190)
    box(lab.LEFT_LEG, 360, 390, 112, 145)
    box(lab.RIGHT_LEG, 360, 390, 155, 188)
    box(lab.LEFT_SHOE, 390, 398, 110, 147)
    box(lab.RIGHT_SHOE, 390, 398, 153, 190)
    return labels


@pytest.fixture
def person() -> np.ndarray:
    return draw_person(np.zeros((H, W), dtype=np.uint8))


def as_bool(mask: Image.Image) -> np.ndarray:
    assert mask.mode == "L"
    values = np.asarray(mask)
    assert set(np.unique(values)) <= {0, 255}
    return values == 255


def near(point: tuple[int, int], radius: float) -> np.ndarray:
    ys, xs = np.mgrid[:H, :W]
    return (ys - point[0]) ** 2 + (xs - point[1]) ** 2 <= radius**2


# --- tools -----------------------------------------------------------------------------


def test_dilate_is_a_disc_of_the_given_radius():
    mask = np.zeros((41, 41), dtype=bool)
    mask[20, 20] = True
    ys, xs = np.mgrid[:41, :41]
    disc = (ys - 20) ** 2 + (xs - 20) ** 2 <= 7**2
    assert np.array_equal(arrays.dilate(mask, 7), disc)
    assert np.array_equal(arrays.dilate(mask, 0), mask)


def test_components_counts_8_connected_blobs():
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:3, 1:3] = True
    mask[3, 3] = True  # touches the first blob diagonally
    mask[6:9, 6] = True
    mask[0, 9] = True
    comp, n = arrays.components(mask)
    assert n == 3
    assert comp[1, 1] == comp[3, 3] != comp[7, 6]
    assert np.array_equal(comp > 0, mask)


# --- person checks -------------------------------------------------------------------


def test_one_person_passes(person):
    g.check_person(person)
    assert len(g.face_blobs(person)) == 1


def test_face_split_by_sunglasses_is_one_person(person):
    person[60:70, 120:180] = lab.SUNGLASSES  # a band across the whole face
    g.check_person(person)


def test_tiny_face_speck_is_not_a_second_person(person):
    person[5:8, 10:13] = lab.FACE
    g.check_person(person)


def test_two_people_are_refused():
    labels = np.zeros((H, 2 * W), dtype=np.uint8)
    draw_person(labels)
    draw_person(labels, dx=W)
    with pytest.raises(TailorInputError) as info:
        g.check_person(labels)
    assert info.value.reason == "several_people"
    assert info.value.status == 400 and not info.value.retryable
    assert "one person" in info.value.message
    assert info.value.to_dict()["details"]["reason"] == "several_people"


def test_no_person_in_empty_photo():
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[10:20, 10:20] = lab.FACE
    with pytest.raises(TailorInputError) as info:
        g.check_person(labels)
    assert info.value.reason == "no_person"


def test_garment_without_body_is_not_a_person():
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[50:350, 50:250] = lab.UPPER_CLOTHES
    with pytest.raises(TailorInputError) as info:
        g.person_mask(labels, "upper")
    assert info.value.reason == "no_person"


# --- person masks --------------------------------------------------------------------


def test_hands_are_the_far_end_of_the_arms(person):
    hands = g.hand_mask(person)
    arm = person == lab.LEFT_ARM
    expected = arm & near(LEFT_FINGERTIP, FACE_ROWS[1] - FACE_ROWS[0])
    assert np.array_equal(hands & arm, expected)
    assert hands[255, 85] and hands[255, 215]
    assert not hands[120, 85] and not hands[120, 215]
    assert not (hands & ~np.isin(person, lab.ARMS)).any()


def test_upper_mask_covers_shirt_and_arms_but_not_face_hair_hands(person):
    mask = as_bool(g.person_mask(person, "upper"))
    assert mask.shape == (H, W)
    assert mask[person == lab.UPPER_CLOTHES].all()
    hands = g.hand_mask(person)
    arms = np.isin(person, lab.ARMS)
    assert mask[arms & ~hands].all()
    assert not mask[hands].any()
    assert not mask[person == lab.FACE].any()
    assert not mask[person == lab.HAIR].any()
    assert not mask[350:, :].any()  # far below the shirt: pants, legs, shoes stay


def test_upper_mask_is_dilated_by_the_documented_radius(person):
    radius = g.dilation_radius(person.shape)
    assert radius == round(g.DILATE_FRAC * max(H, W)) == 8
    mask = as_bool(g.person_mask(person, "upper"))
    # Above the left shoulder (shirt starts at row 95, col 110 is plain background).
    assert mask[95 - radius, 110] and mask[95 - radius + 3, 110]
    assert not mask[95 - radius - 1, 110]
    # Into the pants below the shirt (row 230 is the first pants row).
    assert mask[229 + radius, 150] and not mask[229 + radius + 1, 150]


def test_lower_mask_covers_pants_and_legs(person):
    mask = as_bool(g.person_mask(person, "lower"))
    assert mask[person == lab.PANTS].all()
    assert mask[np.isin(person, lab.LEGS)].all()
    assert not mask[:200].any()  # shirt, arms and head untouched
    assert not mask[person == lab.FACE].any()


def test_overall_mask_covers_upper_and_lower(person):
    overall = as_bool(g.person_mask(person, "overall"))
    upper = as_bool(g.person_mask(person, "upper"))
    lower = as_bool(g.person_mask(person, "lower"))
    assert (overall | ~(upper | lower)).all()  # overall contains both
    assert not overall[g.hand_mask(person) | np.isin(person, lab.PROTECTED)].any()


def test_mask_without_the_body_part_is_refused(person):
    person[230:] = lab.BACKGROUND  # photo cut at the waist
    with pytest.raises(TailorInputError) as info:
        g.person_mask(person, "lower")
    assert info.value.reason == "no_region"


def test_unknown_category_name_is_a_bad_request(person):
    with pytest.raises(BadRequest) as info:
        g.person_mask(person, "shoes")
    assert info.value.field == "category"


# --- garment category ----------------------------------------------------------------


def test_category_votes():
    labels = np.zeros((100, 100), dtype=np.uint8)
    labels[:70, :] = lab.UPPER_CLOTHES
    labels[70:, :] = lab.PANTS
    assert g.classify_garment(labels) == ("upper", pytest.approx(0.7))
    labels[:70, :] = lab.SKIRT
    assert g.classify_garment(labels) == ("lower", pytest.approx(1.0))
    labels[:, :60] = lab.DRESS
    assert g.classify_garment(labels) == ("overall", pytest.approx(0.6))


def test_worn_outfit_votes_by_pixels(person):
    category, confidence = g.classify_garment(person)
    shirt, pants = (person == lab.UPPER_CLOTHES).sum(), (person == lab.PANTS).sum()
    assert category == "upper"
    assert confidence == pytest.approx(shirt / (shirt + pants))


def test_accessories_only_is_unknown_category():
    labels = np.zeros((100, 100), dtype=np.uint8)
    labels[20:80, 20:80] = lab.BAG
    with pytest.raises(TailorInputError) as info:
        g.classify_garment(labels)
    assert info.value.reason == "unknown_category"


def test_too_few_clothing_pixels_is_no_garment():
    labels = np.zeros((100, 100), dtype=np.uint8)
    labels[0:5, 0:5] = lab.UPPER_CLOTHES  # 0.25 % < 1 %
    with pytest.raises(TailorInputError) as info:
        g.classify_garment(labels)
    assert info.value.reason == "no_garment"


# --- cut-outs ------------------------------------------------------------------------


def photo(labels: np.ndarray) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (*labels.shape, 3), dtype=np.uint8))


def shirt_on_plain_background() -> np.ndarray:
    labels = np.zeros((200, 300), dtype=np.uint8)
    labels[40:60, 60:240] = lab.UPPER_CLOTHES  # sleeves
    labels[40:180, 110:190] = lab.UPPER_CLOTHES  # body
    return labels


def check_cutout(cutout: g.Cutout, image: Image.Image, garment: np.ndarray) -> None:
    left, top, right, bottom = cutout.box
    canvas = cutout.image
    assert canvas.mode == "RGBA" and canvas.width * 4 == canvas.height * 3
    ox, oy = cutout.offset
    rgba = np.asarray(canvas)
    crop = rgba[oy : oy + bottom - top, ox : ox + right - left]
    assert np.array_equal(crop[..., 3] == 255, garment[top:bottom, left:right])
    source = np.asarray(image)[top:bottom, left:right]
    inside = garment[top:bottom, left:right]
    assert np.array_equal(crop[inside][:, :3], source[inside])
    assert (rgba[rgba[..., 3] == 0][:, :3] == 255).all()  # off-garment is white
    assert rgba[..., 3].sum() == garment.sum() * 255  # nothing else on the canvas


def test_cutout_of_a_product_shot():
    labels = shirt_on_plain_background()
    image = photo(labels)
    cutout = g.garment_cutout(image, labels)
    assert cutout.category == "upper" and cutout.confidence == 1.0
    margin = round(g.MARGIN_FRAC * 180)  # bbox is 180 wide, 140 high
    assert cutout.box == (60 - margin, 40 - margin, 240 + margin, 180 + margin)
    check_cutout(cutout, image, labels == lab.UPPER_CLOTHES)
    width = 180 + 2 * margin
    assert cutout.image.size == (width, width * 4 // 3)


def test_cutout_fills_small_holes_drops_specks_keeps_body_out():
    labels = shirt_on_plain_background()
    garment = labels == lab.UPPER_CLOTHES
    labels[100:110, 140:150] = lab.BAG  # a print the model took for a bag: filled
    labels[120:126, 120:126] = lab.BACKGROUND  # a small hole: filled
    labels[150:180, 145:155] = lab.LEFT_ARM  # an arm across the shirt: stays out
    labels[130:140, 170:180] = lab.RIGHT_ARM  # a hand on the belly: stays out
    labels[40:45, 140:160] = lab.BACKGROUND  # a notch at the edge (neckline): stays out
    labels[5:8, 5:8] = lab.UPPER_CLOTHES  # a far-away speck: dropped
    image = photo(labels)
    cutout = g.garment_cutout(image, labels)
    expected = garment.copy()
    expected[150:180, 145:155] = False
    expected[130:140, 170:180] = False
    expected[40:45, 140:160] = False
    check_cutout(cutout, image, expected)


def test_cutout_of_a_worn_garment_takes_the_clothes_not_the_person(person):
    image = photo(person)
    cutout = g.garment_cutout(image, person)
    assert cutout.category == "upper"
    check_cutout(cutout, image, person == lab.UPPER_CLOTHES)
    lower = g.garment_cutout(image, person, "lower")
    assert lower.category == "lower" and 0 < lower.confidence < 0.5
    check_cutout(lower, image, person == lab.PANTS)


def test_cutout_on_white_is_opaque():
    labels = shirt_on_plain_background()
    rgba = np.asarray(g.garment_cutout(photo(labels), labels, background="white").image)
    assert (rgba[..., 3] == 255).all()
    assert (rgba[0, 0] == 255).all()


def test_cutout_without_garment_is_refused():
    labels = np.zeros((100, 100), dtype=np.uint8)
    labels[40:60, 40:60] = lab.FACE
    with pytest.raises(TailorInputError) as info:
        g.garment_cutout(photo(labels), labels)
    assert info.value.reason == "no_garment"


# --- cache keys ----------------------------------------------------------------------


def test_content_hash_and_asset_keys():
    digest = content_hash(b"garment bytes")
    assert digest == hashlib.sha256(b"garment bytes").hexdigest()
    assert asset_key("user-1", digest, "cutout") == f"outputs/tailor/user-1/{digest}-cutout.png"
    assert asset_key("user-1", digest, "cutout", "upper") == f"outputs/tailor/user-1/{digest}-cutout-upper.png"
    assert asset_key("user-1", digest, "mask", "lower") == f"outputs/tailor/user-1/{digest}-mask-lower.png"
    for args in [
        ("../x", digest, "cutout"),
        ("u", "abc", "cutout"),
        ("u", digest, "mask"),
        ("u", digest, "mask", "hat"),
        ("u", digest, "cutout", "hat"),
        ("u", digest, "matte"),
    ]:
        with pytest.raises(BadRequest):
            asset_key(*args)
