"""tailor tells a worn garment from a product shot by the body it can see in the photo."""

from __future__ import annotations

import numpy as np

from functions.tailor.geometry import garment_photo_type
from functions.tailor.labels import FACE, LEFT_ARM, UPPER_CLOTHES


def test_visible_body_means_worn_else_product_shot() -> None:
    labels = np.zeros((100, 100), dtype=np.uint8)
    labels[20:80, 20:80] = UPPER_CLOTHES
    assert garment_photo_type(labels) == "flat-lay"
    labels[5:15, 40:60] = FACE
    labels[30:60, 10:20] = LEFT_ARM
    assert garment_photo_type(labels) == "model"
