"""Pre-processing facts of the spec: sizes, padding, pose drawing, DWPose decoding, masks."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from functions.weave.fashn.drawing import draw_pose
from functions.weave.fashn.parsing import L, agnostic_mask, garment_image
from functions.weave.fashn.pose import Pose, decode_detections, decode_simcc, nms, openpose_order, select_person
from functions.weave.fashn.preprocess import Padding, fit_and_pad, pre_resize, to_image, to_tensor


def test_pre_resize_truncates_and_never_upsamples() -> None:
    assert pre_resize(Image.new("RGB", (1000, 1500)), 864).size == (576, 863)
    assert pre_resize(Image.new("RGB", (300, 200)), 864).size == (300, 200)


def test_fit_and_pad_centres_black_and_upsamples_small_images() -> None:
    small = np.full((20, 10, 3), 200, dtype=np.uint8)
    out, pad = fit_and_pad(small, 48, 32)
    assert out.shape == (48, 32, 3) and pad == Padding(4, 0, 4, 0)
    assert out[:, :4].max() == 0 and out[:, 4:28].min() > 0
    pose, _ = fit_and_pad(np.eye(20, 10, dtype=np.uint8) * 255, 48, 32, pose=True)
    assert set(np.unique(pose)) == {0, 255}  # nearest-exact keeps the greys


def test_tensor_values_and_output_truncation() -> None:
    t = to_tensor(np.array([[0, 127, 255]], dtype=np.uint8))
    assert torch.allclose(t.flatten(), torch.tensor([-1.0, 127 / 127.5 - 1, 1.0]))
    x = torch.full((3, 4, 4), 0.999)
    x[:, 0, 0] = 2.0
    image = to_image(x, Padding(1, 1, 1, 1))
    assert image.size == (2, 2) and np.asarray(image).max() == 254  # truncated, not rounded


def test_pose_drawing_greys() -> None:
    pose = Pose.empty()
    assert draw_pose(pose, 48, 32).max() == 0  # flat-lay: all black
    pose.body[1], pose.body[2] = (0.5, 0.3), (0.3, 0.3)
    pose.visible[[1, 2]] = True
    canvas = draw_pose(pose, 100, 100)
    assert canvas[30, 40] == 12  # limb 1-2: grey 20 x 0.6
    assert canvas[30, 50] == 26 and canvas[30, 30] == 26  # neck and R shoulder points: int(1.3 x 20)
    pose.hands = np.full((2, 21, 2), -1.0)
    pose.face = np.full((68, 2), -1.0)
    pose.face[0] = (0.8, 0.8)
    assert draw_pose(pose, 100, 100)[80, 80] == 200


def test_simcc_decoding_and_openpose_order() -> None:
    x, y = np.zeros((133, 8)), np.zeros((133, 10))
    x[:, 5], y[:, 3] = 0.9, 0.8
    x[0] = -1  # point 0: score <= 0
    points, scores = decode_simcc(x, y)
    assert points[1].tolist() == [2.5, 1.5] and scores[1] == 0.8 and points[0].tolist() == [-1, -1]
    pts = np.arange(133 * 2, dtype=float).reshape(1, 133, 2)
    sc = np.ones((1, 133))
    new, new_scores = openpose_order(pts, sc)
    assert new.shape == (1, 134, 2)
    assert new[0, 1].tolist() == ((pts[0, 5] + pts[0, 6]) / 2).tolist()  # neck
    assert new[0, 2].tolist() == pts[0, 6].tolist() and new[0, 14].tolist() == pts[0, 2].tolist()
    assert new[0, 0].tolist() == pts[0, 0].tolist() and new_scores[0, 1] == 1


def test_detector_decoding_and_nms() -> None:
    out = np.zeros((8400, 85))
    out[:, 4:] = 0.0
    out[0, :4] = (0.5, 0.5, np.log(4), np.log(4))  # cell (0, 0) of stride 8: centre 4, size 32
    out[0, 4], out[0, 5] = 0.9, 0.9
    out[1, :4] = (0.5, 0.5, np.log(4), np.log(4))  # cell (1, 0): heavily overlapping, lower score
    out[1, 4], out[1, 5] = 0.8, 0.8
    boxes = decode_detections(out, ratio=0.5)
    assert boxes.shape == (1, 4) and np.allclose(boxes[0], [-24, -24, 40, 40])
    assert nms(np.array([[0, 0, 9, 9], [20, 20, 29, 29.0]]), np.array([0.5, 0.9]), 0.45) == [1, 0]


def test_one_person_is_chosen_by_score_times_extent() -> None:
    points = np.zeros((2, 134, 2))
    scores = np.zeros((2, 134))
    scores[:, 1:14] = 0.9
    points[0, 1:14] = np.linspace(1, 10, 13)[:, None]
    points[1, 1:14] = np.linspace(1, 100, 13)[:, None]
    assert select_person(points, scores) == 1


def test_masks_keep_identity_and_cover_the_garment_region() -> None:
    labels = np.zeros((96, 64), dtype=np.uint8)
    labels[10:20, 20:44] = L["face"]
    labels[30:60, 16:48] = L["top"]
    labels[60:90, 20:44] = L["pants"]
    upper = agnostic_mask(labels, "upper")
    assert upper[40, 30] and not upper[15, 30] and not upper[85, 30]
    lower = agnostic_mask(labels, "lower")
    assert lower[75, 30] and not lower[15, 30]
    rgb = np.full((96, 64, 3), 50, dtype=np.uint8)
    garment = garment_image(rgb, labels, "upper")
    assert garment[40, 30].tolist() == [50] * 3 and garment[75, 30].tolist() == [127] * 3
