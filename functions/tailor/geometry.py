"""Masks, cut-outs and checks computed from a human-parsing label map (pure numpy + PIL).

The label map is what `HumanParser.parse` returns: one SegFormer label per pixel
(`mattmdjaga/segformer_b2_clothes`, see labels.py; the array tools are in arrays.py).
Every size used here is relative to the image, so the same rules hold at any resolution.

Heuristics (documented once, here):

- Person check: at least MIN_PERSON_FRAC of the image is person (any non-background label)
  and at least MIN_BODY_FRAC is visible body (face, hair, arms, legs). A garment on a
  plain background has clothing but no body, so it is not a person photo.
- People count: faces (face + sunglasses) are grouped into blobs after a small dilation
  (HEAD_JOIN_FRAC of the longer side), so a face split by sunglasses stays one. A blob
  counts as a person when its face area is at least MIN_FACE_FRAC of the image and at
  least FACE_REL_MIN of the largest face.
- Hands: SegFormer's arm labels cover the bare arm including the hand. For each arm label,
  the fingertip is the arm pixel farthest from the torso's centre (upper clothes or dress,
  else the whole person); the hand is the arm pixels within one face height of it (a hand
  is about as long as a face; without a face, HAND_FRAC of the person's height). Fails for
  hands held against the chest or on the hip (the elbow is then farthest).
- Person mask: the category's labels (REGION_LABELS) minus the hands, dilated by a disc
  of radius DILATE_FRAC x the image's longer side, minus the protected labels (face,
  hair, hat, sunglasses) and the hands.
- Garment: the category with most clothing pixels wins (upper = upper-clothes; lower =
  pants + skirt; overall = dress); its confidence is its share of those pixels. The
  cut-out keeps the category's labels (CUTOUT_LABELS), drops specks, fills small holes
  that are not body (prints the model mislabels), and is cropped with a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from functions.tailor import CATEGORIES
from functions.tailor.arrays import as_labels, bbox, components, dilate, mask_centre
from functions.tailor.labels import (
    ACCESSORIES,
    ARMS,
    BACKGROUND,
    BODY,
    CUTOUT_LABELS,
    DRESS,
    FACE,
    PROTECTED,
    REGION_LABELS,
    SUNGLASSES,
    UPPER_CLOTHES,
    VOTE_LABELS,
)
from shared.contracts.fields import CategoryName
from shared.errors import BadRequest

Category = CategoryName

MIN_PERSON_FRAC = 0.05
MIN_BODY_FRAC = 0.005
MIN_FACE_FRAC = 0.001
FACE_REL_MIN = 0.25
HEAD_JOIN_FRAC = 0.01
HAND_FRAC = 0.1
MIN_ARM_PART_REL = 0.1
DILATE_FRAC = 0.02
MIN_REGION_FRAC = 0.005
MIN_GARMENT_FRAC = 0.01
SPECK_REL = 0.01
HOLE_REL = 0.05
MARGIN_FRAC = 0.05

Reason = Literal["no_person", "several_people", "no_garment", "unknown_category", "no_region"]


class TailorInputError(BadRequest):
    """HTTP 400: the photo cannot be used; `reason` says why in one stable word.

    Reasons: no_person, several_people, no_garment, unknown_category, no_region (the
    person photo does not show the part of the body the category needs).
    """

    code = "unusable_photo"

    def __init__(self, reason: Reason, message: str, *, field: str | None = "image") -> None:
        super().__init__(message, field=field, reason=reason)
        self.reason = reason


@dataclass(frozen=True)
class Cutout:
    """A garment cut-out: RGBA on a 3:4 canvas, the crop box in the source and where it sits."""

    image: Image.Image
    category: str
    confidence: float
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the source image
    offset: tuple[int, int]  # top-left of the crop on the canvas


def check_category(category: str) -> Category:
    """Return `category` if known, else raise BadRequest naming the allowed ones."""
    if category not in CATEGORIES:
        raise BadRequest(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}", field="category")
    return category  # type: ignore[return-value]


# --- person photos -----------------------------------------------------------------------


def face_blobs(labels: np.ndarray) -> list[np.ndarray]:
    """Boolean masks of the faces that count as people, largest first (see module doc)."""
    labels = as_labels(labels)
    face = labels == FACE
    head = face | (labels == SUNGLASSES)
    radius = max(1, round(HEAD_JOIN_FRAC * max(labels.shape)))
    comp, n = components(dilate(head, radius))
    if n == 0:
        return []
    areas = np.bincount(comp[face], minlength=n + 1)
    largest = int(areas.max())
    floor = max(MIN_FACE_FRAC * labels.size, FACE_REL_MIN * largest)
    keep = [i for i in np.argsort(-areas) if i > 0 and areas[i] > 0 and areas[i] >= floor]
    return [face & (comp == i) for i in keep]


def check_person(labels: np.ndarray) -> None:
    """Raise TailorInputError (no_person / several_people) unless one person is shown."""
    labels = as_labels(labels)
    person = float(np.mean(labels != BACKGROUND))
    body = float(np.mean(np.isin(labels, BODY)))
    if person < MIN_PERSON_FRAC or body < MIN_BODY_FRAC:
        raise TailorInputError(
            "no_person",
            "No person found in the photo: use a photo of one person, facing the camera, "
            f"filling most of the frame (person covers {person:.1%}, visible body {body:.1%}).",
        )
    faces = face_blobs(labels)
    if len(faces) > 1:
        raise TailorInputError(
            "several_people",
            f"The photo shows {len(faces)} people: use a photo of one person only.",
        )


def hand_mask(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of the hands: the far end of each arm label (see module doc)."""
    labels = as_labels(labels)
    hands = np.zeros(labels.shape, dtype=bool)
    torso = np.isin(labels, (UPPER_CLOTHES, DRESS))
    centre = mask_centre(torso) or mask_centre(labels != BACKGROUND)
    if centre is None:
        return hands
    faces = face_blobs(labels)
    if faces:
        box = bbox(faces[0])
        reach = float(box[3] - box[1]) if box else 0.0
    else:
        box = bbox(labels != BACKGROUND)
        reach = HAND_FRAC * (box[3] - box[1]) if box else 0.0
    reach = max(reach, 1.0)
    for arm in ARMS:
        comp, n = components(labels == arm)
        if n == 0:
            continue
        areas = np.bincount(comp.ravel(), minlength=n + 1)
        areas[0] = 0
        part = np.isin(comp, np.flatnonzero(areas >= MIN_ARM_PART_REL * areas.max()))
        ys, xs = np.nonzero(part)
        far = int(np.argmax((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2))
        near = (ys - ys[far]) ** 2 + (xs - xs[far]) ** 2 <= reach * reach
        hands[ys[near], xs[near]] = True
    return hands


def dilation_radius(shape: tuple[int, ...], frac: float = DILATE_FRAC) -> int:
    """The mask dilation radius in pixels: `frac` of the longer side, at least 1."""
    return max(1, round(frac * max(shape[:2])))


def person_mask(
    labels: np.ndarray, category: str, *, dilate_frac: float = DILATE_FRAC, check: bool = True
) -> Image.Image:
    """The try-on mask for `category` as an "L" image (255 = repaint), same size as labels.

    Raises TailorInputError: no_person / several_people (when `check`), or no_region when
    the photo does not show the body part the category needs.
    """
    category = check_category(category)
    labels = as_labels(labels)
    if check:
        check_person(labels)
    hands = hand_mask(labels)
    region = np.isin(labels, REGION_LABELS[category]) & ~hands
    if region.mean() < MIN_REGION_FRAC:
        raise TailorInputError(
            "no_region",
            f"The photo does not show the body part a {category} garment goes on "
            f"({region.mean():.1%} of the image): use a photo that shows it.",
        )
    mask = dilate(region, dilation_radius(labels.shape, dilate_frac))
    mask &= ~(np.isin(labels, PROTECTED) | hands)
    return Image.fromarray(mask.astype(np.uint8) * 255)


# --- garment photos ----------------------------------------------------------------------


def classify_garment(labels: np.ndarray) -> tuple[Category, float]:
    """(category, confidence): the category most clothing pixels vote for, and its share.

    Raises TailorInputError: no_garment (too few clothing pixels) or unknown_category
    (clothing found, but only accessories such as shoes, bags, hats or scarves).
    """
    labels = as_labels(labels)
    votes = {c: int(np.isin(labels, VOTE_LABELS[c]).sum()) for c in CATEGORIES}
    total = sum(votes.values())
    floor = MIN_GARMENT_FRAC * labels.size
    if total < floor:
        accessories = int(np.isin(labels, ACCESSORIES).sum())
        if accessories >= floor:
            raise TailorInputError(
                "unknown_category",
                "The garment is not a top, bottom or dress (it looks like shoes, a bag, a hat "
                "or a scarf): use a photo of an upper, lower or full-body garment.",
            )
        raise TailorInputError(
            "no_garment",
            f"No garment found in the photo (clothing covers {total / labels.size:.1%}): use a "
            "photo where the garment fills most of the frame.",
        )
    category = max(CATEGORIES, key=lambda c: votes[c])
    return category, votes[category] / total  # type: ignore[return-value]


def garment_alpha(labels: np.ndarray, category: str) -> np.ndarray:
    """Boolean garment matte: the category's labels, specks dropped, small holes filled."""
    labels = as_labels(labels)
    garment = np.isin(labels, CUTOUT_LABELS[check_category(category)])
    comp, n = components(garment)
    if n == 0:
        return garment
    areas = np.bincount(comp.ravel(), minlength=n + 1)
    areas[0] = 0
    garment = np.isin(comp, np.flatnonzero(areas >= SPECK_REL * areas.sum()))
    box = bbox(garment)
    if box is None:
        return garment
    left, top, right, bottom = box
    inner = garment[top:bottom, left:right]
    holes, m = components(~inner)
    if m:
        size = np.bincount(holes.ravel(), minlength=m + 1)
        is_body = np.isin(labels[top:bottom, left:right], BODY).ravel().astype(np.float64)
        body = np.bincount(holes.ravel(), weights=is_body, minlength=m + 1)
        edge = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        fill = (size <= HOLE_REL * inner.sum()) & (body == 0)
        fill[0] = False
        fill[edge] = False
        inner |= fill[holes]
    return garment


def garment_cutout(
    image: Image.Image,
    labels: np.ndarray,
    category: str | None = None,
    *,
    margin_frac: float = MARGIN_FRAC,
    background: Literal["transparent", "white"] = "transparent",
) -> Cutout:
    """Cut the garment out of `image`: RGBA, cropped with a margin, centred on a 3:4 canvas.

    `category` None means classify_garment decides (confidence is its vote share; with a
    given category it is that category's share). Pixels off the garment are white, with
    alpha 0 ("transparent") or 255 ("white"), so dropping alpha always leaves white.
    """
    labels = as_labels(labels)
    if image.size != (labels.shape[1], labels.shape[0]):
        raise ValueError(f"image size {image.size} does not match labels {labels.shape[::-1]}")
    found, confidence = classify_garment(labels)
    if category is None:
        category = found
    else:
        category = check_category(category)
        votes = np.isin(labels, VOTE_LABELS[category]).sum()
        confidence = float(votes / np.isin(labels, sum(VOTE_LABELS.values(), ())).sum())
    alpha = garment_alpha(labels, category)
    box = bbox(alpha)
    if box is None or alpha.sum() < MIN_GARMENT_FRAC * labels.size:
        raise TailorInputError(
            "no_garment", f"No {category} garment found in the photo: check the category or the photo."
        )
    left, top, right, bottom = box
    margin = round(margin_frac * max(right - left, bottom - top))
    h, w = labels.shape
    left, top = max(0, left - margin), max(0, top - margin)
    right, bottom = min(w, right + margin), min(h, bottom + margin)
    rgba = np.dstack(
        [np.asarray(image.convert("RGB"))[top:bottom, left:right], alpha[top:bottom, left:right].astype(np.uint8) * 255]
    )
    rgba[rgba[..., 3] == 0, :3] = 255
    if background == "white":
        rgba[..., 3] = 255
    crop = Image.fromarray(rgba)
    k = max(math.ceil(crop.width / 3), math.ceil(crop.height / 4))
    fill = (255, 255, 255, 255 if background == "white" else 0)
    canvas = Image.new("RGBA", (3 * k, 4 * k), fill)
    offset = ((canvas.width - crop.width) // 2, (canvas.height - crop.height) // 2)
    canvas.paste(crop, offset)
    return Cutout(canvas, category, float(confidence), (left, top, right, bottom), offset)


#: A garment photo whose visible body (hair, face, arms, legs) covers at least this share is
#: a garment worn by someone; less, a product shot (flat-lay, ghost mannequin, hanger).
WORN_BODY_FRAC = 0.02


def garment_photo_type(labels: np.ndarray) -> str:
    """ "model" when someone wears the garment in the photo, else "flat-lay" (FASHN VTON's terms)."""
    body = float(np.mean(np.isin(as_labels(labels), BODY)))
    return "model" if body >= WORN_BODY_FRAC else "flat-lay"
