"""The FASHN human parser (SegFormer, 18 labels) and the masks built from its label map.

`HumanParser(model)` wraps any module mapping a normalised (B, 3, 576, 384) batch to
(B, 18, h, w) logits (transformers' SegformerForSemanticSegmentation or a plain module);
`parse(rgb)` returns the (H, W) uint8 label map at the image's own size.
`garment_image` and `clothing_agnostic` build the two conditioning images (spec steps 5-7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

LABELS = (
    "background",
    "face",
    "hair",
    "top",
    "dress",
    "skirt",
    "pants",
    "belt",
    "bag",
    "hat",
    "scarf",
    "glasses",
    "arms",
    "hands",
    "legs",
    "feet",
    "torso",
    "jewelry",
)
L = {name: i for i, name in enumerate(LABELS)}
PARSER_SIZE = (576, 384)  # height, width the parser sees (stretched)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
GREY = 127
REFERENCE_HEIGHT = 864  # mask sizes are for a pre-resized person this tall

COVERAGE = {"tops": "upper", "bottoms": "lower", "one-pieces": "full"}
GARMENT_LABELS = {
    "upper": (L["top"], L["dress"], L["scarf"]),
    "lower": (L["skirt"], L["pants"], L["belt"]),
    "full": (L["top"], L["dress"], L["scarf"], L["skirt"], L["pants"], L["belt"]),
}
IDENTITY_LABELS = (L["face"], L["hair"], L["jewelry"], L["bag"], L["glasses"], L["hat"])


class ParserModelError(ValueError):
    """A parser that does not produce the 18 FASHN labels."""


class HumanParser:
    """Label maps from a SegFormer-style module (fp32, on its own device)."""

    def __init__(self, model: torch.nn.Module) -> None:
        config = getattr(model, "config", None)
        labels = getattr(config, "num_labels", None)
        if labels is not None and labels != len(LABELS):
            raise ParserModelError(f"the human parser must have {len(LABELS)} labels, got {labels}")
        self.model = model.eval()

    @classmethod
    def from_pretrained(cls, folder: Path, device: str = "cpu") -> HumanParser:
        from transformers import SegformerForSemanticSegmentation

        model = SegformerForSemanticSegmentation.from_pretrained(str(folder), dtype=torch.float32)
        return cls(model.to(device))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def parse(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) uint8 labels 0..17."""
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (PARSER_SIZE[1], PARSER_SIZE[0]), interpolation=cv2.INTER_AREA)
        x = ((small.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]
        out: Any = self.model(torch.from_numpy(np.ascontiguousarray(x)).to(self.device))
        logits = out.logits if hasattr(out, "logits") else out
        if logits.shape[1] != len(LABELS):
            raise ParserModelError(
                f"the human parser returned {logits.shape[1]} label channels, expected {len(LABELS)}"
            )
        logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
        return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def garment_image(rgb: np.ndarray, labels: np.ndarray, coverage: str) -> np.ndarray:
    """A worn garment: every pixel outside the coverage's garment labels becomes grey 127."""
    out = rgb.copy()
    out[~np.isin(labels, GARMENT_LABELS[coverage])] = GREY
    return out


def _dilate(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def _distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each True pixel to the nearest False one (OpenCV L2, mask size 5)."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Everything not reachable from pixel (0, 0) through the background (4-connected) is filled."""
    flood = mask.astype(np.uint8) * 255
    border = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
    cv2.floodFill(flood, border, (0, 0), 255, flags=4)
    return mask | (flood == 0)


def _box(mask: np.ndarray) -> np.ndarray:
    """The filled bounding rectangle of the True pixels (empty when there are none)."""
    box = np.zeros_like(mask)
    rows, cols = np.where(mask)
    if rows.size:
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    return box


def agnostic_mask(labels: np.ndarray, coverage: str) -> np.ndarray:
    """The (H, W) bool mask painted grey in the clothing-agnostic image (spec step 7)."""
    k = labels.shape[0] / REFERENCE_HEIGHT
    region = list(GARMENT_LABELS[coverage])
    if coverage in ("upper", "full"):
        region += [L["arms"], L["torso"]]
    if coverage in ("lower", "full"):
        region += [L["legs"]]
    garment = np.isin(labels, region)
    side = max(1, int(4 * k))
    buffer = _dilate(garment, np.ones((side, side), dtype=np.uint8))
    box = _box(garment)
    # Contour: a smoothed outline around the dilated region, holes filled.
    brush = max(1, int(18 * k))
    grown = _dilate(garment, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * brush + 1, 2 * brush + 1)))
    signed = _distance(~grown) - _distance(grown)
    blurred = cv2.GaussianBlur(signed, (0, 0), sigmaX=brush / 2.5, borderType=cv2.BORDER_REPLICATE)
    contour = _fill_holes(blurred <= 0) | garment
    # Hybrid: the box, less what lies far outside the contour.
    far = ~contour & (_distance(~contour) > 100 * k)
    hybrid = box & ~far if (box & ~contour).any() else box
    dx, dy = int(33 * k), int(16 * k)
    hybrid = _dilate(hybrid, np.ones((2 * dy + 1, 2 * dx + 1), dtype=np.uint8))
    exclude = list(IDENTITY_LABELS)
    if coverage == "upper":
        exclude += [L["legs"]]
    if coverage == "lower":
        exclude += [L["arms"]]
    if coverage in ("upper", "full"):
        exclude += [L["hands"]]
    if coverage in ("lower", "full"):
        exclude += [L["feet"]]
    return buffer | (hybrid & ~np.isin(labels, exclude))


def clothing_agnostic(rgb: np.ndarray, labels: np.ndarray, coverage: str) -> np.ndarray:
    """The person photo with the mask of `agnostic_mask` painted grey 127."""
    out = rgb.copy()
    out[agnostic_mask(labels, coverage)] = GREY
    return out
