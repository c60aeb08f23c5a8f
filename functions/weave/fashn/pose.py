"""DWPose on onnxruntime: a YOLOX person detector, then an RTMPose-style whole-body keypoint
model (SimCC head, 133 COCO-WholeBody points), reduced to one person in OpenPose order.

`DWPose(detector, pose_model)` takes two `onnxruntime.InferenceSession`s (input and output
names and the pose model's input size are read from the sessions); `DWPose.from_files`
opens them on the CPU or CUDA provider and checks their signatures. `dwpose(image_bgr)`
returns a `Pose` with coordinates normalised to 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

DETECTOR_SIZE = 640
DETECTOR_PAD = 114
DETECTOR_STRIDES = (8, 16, 32)
NMS_IOU = 0.45
NMS_SCORE = 0.1
PERSON_SCORE = 0.3
BOX_PADDING = 1.25
POSE_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)  # applied to B, G, R in that order
POSE_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
SIMCC_SPLIT = 2.0
N_KEYPOINTS = 133
VISIBLE = 0.3
# OpenPose slots that take the MMPose-with-neck points (slots 0, 5 and 11 keep theirs).
OPENPOSE_SLOTS = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]
MMPOSE_POINTS = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3]
FACE = slice(24, 92)
HANDS = (slice(92, 113), slice(113, 134))


class PoseModelError(ValueError):
    """An ONNX model whose inputs or outputs are not those of DWPose."""


@dataclass
class Pose:
    """One person: 18 body points (OpenPose order) with visibility, 2 x 21 hand and 68 face
    points; coordinates in 0..1 of the image, (-1, -1) for a dropped point. Flat-lay
    garments get `Pose.empty()`: nothing visible, no hands or face."""

    body: np.ndarray  # (18, 2)
    visible: np.ndarray  # (18,) bool
    hands: np.ndarray | None = None  # (2, 21, 2)
    face: np.ndarray | None = None  # (68, 2)

    @classmethod
    def empty(cls) -> Pose:
        return cls(body=np.full((18, 2), -1.0), visible=np.zeros(18, dtype=bool))


def _shape(node: Any) -> tuple:
    return tuple(d if isinstance(d, int) else -1 for d in node.shape)


class DWPose:
    """The two networks as onnxruntime sessions, checked for DWPose's signatures."""

    def __init__(self, detector: Any, pose_model: Any) -> None:
        self.detector, self.pose_model = detector, pose_model
        det_in, det_out = detector.get_inputs(), detector.get_outputs()
        if len(det_in) != 1 or _shape(det_in[0])[1:] not in ((3, DETECTOR_SIZE, DETECTOR_SIZE), (3, -1, -1)):
            raise PoseModelError(
                f"person detector: expected one input (1, 3, {DETECTOR_SIZE}, {DETECTOR_SIZE}), "
                f"got {[_shape(i) for i in det_in]}"
            )
        if len(det_out) != 1 or _shape(det_out[0])[-1] not in (85, -1):
            raise PoseModelError(
                f"person detector: expected one output (1, 8400, 85), got {[_shape(o) for o in det_out]}"
            )
        pose_in, pose_out = pose_model.get_inputs(), pose_model.get_outputs()
        shape = _shape(pose_in[0]) if len(pose_in) == 1 else ()
        if len(shape) != 4 or shape[1] != 3 or min(shape[2:]) <= 0:
            raise PoseModelError(
                f"pose model: expected one input (1, 3, H, W) with a fixed H, W, got {[_shape(i) for i in pose_in]}"
            )
        self.pose_h, self.pose_w = shape[2], shape[3]
        want = [(1, N_KEYPOINTS, int(self.pose_w * SIMCC_SPLIT)), (1, N_KEYPOINTS, int(self.pose_h * SIMCC_SPLIT))]
        got = [_shape(o) for o in pose_out]
        if len(got) != 2 or any(g[1:] != w[1:] and -1 not in g for g, w in zip(got, want)):
            raise PoseModelError(f"pose model: expected outputs simcc_x {want[0]} and simcc_y {want[1]}, got {got}")
        self._det_names = (det_in[0].name, det_out[0].name)
        self._pose_names = (pose_in[0].name, [o.name for o in pose_out])

    @classmethod
    def from_files(cls, detector: Path, pose_model: Path, device: str = "cpu") -> DWPose:
        """Open both ONNX files (CUDA provider on a CUDA device when onnxruntime has it)."""
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sessions = [
            ort.InferenceSession(str(path), sess_options=options, providers=providers)
            for path in (detector, pose_model)
        ]
        return cls(*sessions)

    # -- detection ----------------------------------------------------------------------

    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        """Person boxes (N, 4) x0, y0, x1, y1 in image pixels with score > 0.3."""
        h, w = image_bgr.shape[:2]
        canvas = np.full((DETECTOR_SIZE, DETECTOR_SIZE, 3), DETECTOR_PAD, dtype=np.uint8)
        r = min(DETECTOR_SIZE / h, DETECTOR_SIZE / w)
        resized = cv2.resize(image_bgr, (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        out = self.detector.run([self._det_names[1]], {self._det_names[0]: blob})[0][0]
        return decode_detections(out, r)

    # -- keypoints ----------------------------------------------------------------------

    def keypoints(self, image_bgr: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 133, 2) pixel coordinates and (N, 133) scores, one row per box."""
        all_points, all_scores = [], []
        for box in boxes:
            center, scale = box_center_scale(box, self.pose_w / self.pose_h)
            warp = warp_matrix(center, scale, (self.pose_w, self.pose_h))
            crop = cv2.warpAffine(image_bgr, warp, (self.pose_w, self.pose_h), flags=cv2.INTER_LINEAR)
            blob = ((crop.astype(np.float32) - POSE_MEAN) / POSE_STD).transpose(2, 0, 1)[None]
            name_in, names_out = self._pose_names
            simcc_x, simcc_y = self.pose_model.run(names_out, {name_in: np.ascontiguousarray(blob)})
            points, scores = decode_simcc(simcc_x[0], simcc_y[0])
            all_points.append(points / np.array([self.pose_w, self.pose_h]) * scale + center - scale / 2)
            all_scores.append(scores)
        return np.stack(all_points), np.stack(all_scores)

    def __call__(self, image_bgr: np.ndarray) -> Pose:
        """The pose of the one person in the image (the whole image is the box when no person is found)."""
        h, w = image_bgr.shape[:2]
        boxes = self.detect(image_bgr)
        if len(boxes) == 0:
            boxes = np.array([[0, 0, w, h]], dtype=np.float32)
        points, scores = openpose_order(*self.keypoints(image_bgr, boxes))
        best = select_person(points, scores)
        return to_pose(points[best] / np.array([w, h]), scores[best])


def decode_detections(out: np.ndarray, ratio: float) -> np.ndarray:
    """YOLOX rows (cx, cy, log w, log h, objectness, 80 classes) on the stride 8/16/32 grids ->
    person boxes after class-wise NMS (only the person class is kept, so only it is suppressed)."""
    grids, strides = [], []
    for stride in DETECTOR_STRIDES:
        size = DETECTOR_SIZE // stride
        xv, yv = np.meshgrid(np.arange(size), np.arange(size))
        grids.append(np.stack([xv, yv], axis=-1).reshape(-1, 2))
        strides.append(np.full((size * size, 1), stride))
    grid, stride_col = np.concatenate(grids), np.concatenate(strides)
    out = out.astype(np.float64)
    centers = (out[:, :2] + grid) * stride_col
    sizes = np.exp(out[:, 2:4]) * stride_col
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1) / ratio
    scores = out[:, 4] * out[:, 5]  # objectness x person score
    valid = scores > NMS_SCORE
    boxes, scores = boxes[valid], scores[valid]
    kept = nms(boxes, scores, NMS_IOU)
    boxes, scores = boxes[kept], scores[kept]
    return boxes[scores > PERSON_SCORE].astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS, best score first; IoU with the +1 pixel convention."""
    x0, y0, x1, y1 = boxes.T
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x1[i], x1[order[1:]]) - np.maximum(x0[i], x0[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y1[i], y1[order[1:]]) - np.maximum(y0[i], y0[order[1:]]) + 1)
        inter = w * h
        overlap = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(overlap <= iou)[0] + 1]
    return keep


def box_center_scale(box: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre and size (x 1.25) of a box, the short side grown to aspect w / h."""
    x0, y0, x1, y1 = box[:4]
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2], dtype=np.float32)
    w, h = (x1 - x0) * BOX_PADDING, (y1 - y0) * BOX_PADDING
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h], dtype=np.float32)


def warp_matrix(center: np.ndarray, scale: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The affine map (no rotation) of the box onto the (w, h) input, from three point pairs."""
    out_w, out_h = size
    src_dir = np.array([0.0, scale[0] * -0.5])
    dst_dir = np.array([0.0, out_w * -0.5])

    def third(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a - b
        return b + np.array([-d[1], d[0]])

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0], src[1] = center, center + src_dir
    dst[0], dst[1] = (out_w * 0.5, out_h * 0.5), np.array([out_w * 0.5, out_h * 0.5]) + dst_dir
    src[2], dst[2] = third(src[0], src[1]), third(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2W), (K, 2H) -> points (K, 2) in input pixels and scores (K,); -1 where score <= 0."""
    points = np.stack([simcc_x.argmax(1), simcc_y.argmax(1)], axis=-1).astype(np.float32) / SIMCC_SPLIT
    scores = np.minimum(simcc_x.max(1), simcc_y.max(1))
    points[scores <= 0] = -1
    return points, scores


def openpose_order(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert the neck at index 17 (134 points) and reorder the first 18 to OpenPose order."""
    neck = points[:, [5, 6]].mean(axis=1, keepdims=True)
    neck_score = ((scores[:, 5] > VISIBLE) & (scores[:, 6] > VISIBLE)).astype(scores.dtype)[:, None]
    points = np.concatenate([points[:, :17], neck, points[:, 17:]], axis=1)
    scores = np.concatenate([scores[:, :17], neck_score, scores[:, 17:]], axis=1)
    new_points, new_scores = points.copy(), scores.copy()
    new_points[:, OPENPOSE_SLOTS] = points[:, MMPOSE_POINTS]
    new_scores[:, OPENPOSE_SLOTS] = scores[:, MMPOSE_POINTS]
    return new_points, new_scores


def select_person(points: np.ndarray, scores: np.ndarray) -> int:
    """The candidate with the best (sum of body scores > 0.3) x (extent of its points), points 1-13.

    As upstream, the first candidate's visibility chooses the points of every candidate's area.
    """
    if len(points) == 1:
        return 0
    body_scores = scores[:, 1:14]
    sums = np.where(body_scores > VISIBLE, body_scores, 0).sum(axis=1)
    chosen = body_scores[0] > VISIBLE
    areas = []
    for candidate in points[:, 1:14]:
        selected = candidate[chosen]
        xs, ys = selected[:, 0][selected[:, 0] > 0], selected[:, 1][selected[:, 1] > 0]
        areas.append((np.ptp(xs) if xs.size else 0.0) * (np.ptp(ys) if ys.size else 0.0))
    products = sums * np.array(areas)
    return int(products.argmax() if products.max() > 0 else sums.argmax())


def to_pose(points: np.ndarray, scores: np.ndarray) -> Pose:
    """Normalised points of one person -> Pose (body visibility > 0.3; face / hands dropped below 0.3)."""
    body = points[:18].astype(np.float64)
    visible = scores[:18] > VISIBLE

    def kept(part: slice) -> np.ndarray:
        pts = points[part].astype(np.float64).copy()
        pts[scores[part] < VISIBLE] = -1
        return pts

    return Pose(body=body, visible=visible, hands=np.stack([kept(h) for h in HANDS]), face=kept(FACE))
