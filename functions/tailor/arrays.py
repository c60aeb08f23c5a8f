"""Small array tools for label maps and masks (numpy only): a label-map check, disc
dilation, 8-connected components, bounding box and centre."""

from __future__ import annotations

import math

import numpy as np


def as_labels(labels: np.ndarray) -> np.ndarray:
    """`labels` as an array; ValueError unless it is a non-empty 2-D integer map."""
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be a non-empty 2-D integer array, got {arr.dtype} {arr.shape}")
    return arr


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a disc of `radius` pixels (exact Euclidean disc, numpy only)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    h, w = mask.shape
    # Half-width of the disc's row at each vertical offset dy; rows are visited from the
    # narrowest to the widest, so one horizontally dilated copy is grown in place.
    halves = {dy: int(math.isqrt(radius * radius - dy * dy)) for dy in range(-radius, radius + 1)}
    out = np.zeros_like(mask)
    row = mask.copy()
    grown = 0
    for dy in sorted(halves, key=lambda d: halves[d]):
        while grown < halves[dy]:
            grown += 1
            if grown < w:
                row[:, grown:] |= mask[:, :-grown]
                row[:, :-grown] |= mask[:, grown:]
        if abs(dy) >= h:
            continue
        if dy >= 0:
            out[dy:] |= row[: h - dy]
        else:
            out[: h + dy] |= row[-dy:]
    return out


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean mask: (int32 map, 0 = outside, 1..n; n).

    Works on horizontal runs: runs in neighbouring rows that touch (diagonals included)
    are joined by a vectorised union-find, so the cost follows the number of runs.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    out = np.zeros((h, w), dtype=np.int32)
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    row, start = np.nonzero(edges == 1)  # run [start, end) in row, row-major order
    end = np.nonzero(edges == -1)[1]
    if row.size == 0:
        return out, 0
    stride = w + 2
    start_key, end_key = row * stride + start, row * stride + end
    lo = np.searchsorted(end_key, (row + 1) * stride + start, side="left")
    hi = np.searchsorted(start_key, (row + 1) * stride + end, side="right")
    count = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(row.size), count)
    b = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())
    parent = np.arange(row.size)
    while a.size:  # hook roots onto the smaller root, then jump pointers to the roots
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            break
        low = np.minimum(pa, pb)
        np.minimum.at(parent, pa, low)
        np.minimum.at(parent, pb, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    _, ids = np.unique(parent, return_inverse=True)
    ids = ids.astype(np.int32) + 1
    # Paint runs: +id at the start, -id at the end, then a cumulative sum along each row.
    paint = np.zeros((h, w + 1), dtype=np.int32)
    paint[row, start] = ids
    paint[row, end] = -ids
    out[:] = np.cumsum(paint, axis=1)[:, :w]
    return out, int(ids.max())


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom), right/bottom exclusive; None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_centre(mask: np.ndarray) -> tuple[float, float] | None:
    """(row, column) mean of a mask's pixels; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    return (float(ys.mean()), float(xs.mean())) if ys.size else None
