"""The grey-level pose drawing FASHN VTON conditions on (one channel, black background).

Order: limbs (filled ellipses on their own layer, x 0.6), body points, hands, face; later
shapes overwrite earlier ones. Coordinates are int(x * W), int(y * H).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from functions.weave.fashn.pose import Pose

LIMBS = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)
LIMB_GREYS = np.linspace(20, 240, 18).astype(np.uint8)[: len(LIMBS)]
LIMB_LAYER_FACTOR = 0.6
LIMB_HALF_WIDTH = 4
POINT_RADIUS = 4
HAND_EDGES = tuple((0 if j % 4 == 0 else f * 4 + j % 4, f * 4 + j % 4 + 1) for f in range(5) for j in range(4))
HAND_GREYS = np.linspace(160, 220, len(HAND_EDGES)).astype(np.uint8)
HAND_POINT_GREY = 240
FACE_GREY = 200
FACE_RADIUS = 3


def point_greys() -> list[int]:
    """min(255, int(1.3 x the grey of the first limb that touches the point)) for points 0..17."""
    greys = []
    for point in range(18):
        limb = next(i for i, pair in enumerate(LIMBS) if point in pair)
        greys.append(min(255, int(1.3 * int(LIMB_GREYS[limb]))))
    return greys


POINT_GREYS = point_greys()


def draw_pose(pose: Pose, height: int, width: int) -> np.ndarray:
    """The (height, width) uint8 drawing of `pose` (all black for an empty pose)."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    pixels = [(int(x * width), int(y * height)) for x, y in pose.body]
    layer = np.zeros_like(canvas)
    for i, (a, b) in enumerate(LIMBS):
        if not (pose.visible[a] and pose.visible[b]):
            continue
        (xa, ya), (xb, yb) = pixels[a], pixels[b]
        length = math.hypot(xa - xb, ya - yb)
        angle = int(math.degrees(math.atan2(ya - yb, xa - xb)))
        polygon = cv2.ellipse2Poly(
            ((xa + xb) // 2, (ya + yb) // 2), (int(length) // 2, LIMB_HALF_WIDTH), angle, 0, 360, 1
        )
        cv2.fillConvexPoly(layer, polygon, int(LIMB_GREYS[i]))
    canvas = (layer * LIMB_LAYER_FACTOR).astype(np.uint8)
    for point, (x, y) in enumerate(pixels):
        if pose.visible[point]:
            cv2.circle(canvas, (x, y), POINT_RADIUS, POINT_GREYS[point], thickness=-1)
    for hand in pose.hands if pose.hands is not None else ():
        hand_px = [(int(x * width), int(y * height)) for x, y in hand]
        for e, (a, b) in enumerate(HAND_EDGES):
            (x1, y1), (x2, y2) = hand_px[a], hand_px[b]
            if min(x1, y1, x2, y2) > 0.01:
                cv2.line(canvas, (x1, y1), (x2, y2), int(HAND_GREYS[e]), thickness=2)
        for x, y in hand_px:
            if x >= 1 and y >= 1:
                cv2.circle(canvas, (x, y), POINT_RADIUS, HAND_POINT_GREY, thickness=-1)
    for x, y in pose.face if pose.face is not None else ():
        px, py = int(x * width), int(y * height)
        if px >= 1 and py >= 1:
            cv2.circle(canvas, (px, py), FACE_RADIUS, FACE_GREY, thickness=-1)
    return canvas
