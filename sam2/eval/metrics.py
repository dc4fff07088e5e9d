"""Per-frame VOS metrics of the SA-V / DAVIS protocol: region similarity J and boundary measure F.

All functions work on 2-D masks of shape (H, W); values are fractions in [0, 1] (the reports multiply
by 100).

* ``J`` (:func:`region_similarity`): intersection over union; 1 when both masks are empty.
* ``F`` (:func:`boundary_f_measure`): F1 score of boundary precision and recall, where a boundary pixel
  counts as matched when a boundary pixel of the other mask lies inside a disk of radius
  ``r = ceil(0.008 * sqrt(H**2 + W**2))`` around it (:func:`boundary_radius`). Boundaries come from
  :func:`seg2bmap`; the disk test is a binary dilation with :func:`disk` (:func:`binary_dilation`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = [
    "BOUNDARY_THRESHOLD",
    "binary_dilation",
    "boundary_f_measure",
    "boundary_radius",
    "disk",
    "region_similarity",
    "seg2bmap",
]

BOUNDARY_THRESHOLD = 0.008  # boundary tolerance as a fraction of the image diagonal


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """J of two (H, W) bool masks: ``|P & G| / (|P| + |G| - |P & G|)``, and 1.0 when both are empty."""
    inter = int(np.count_nonzero(pred & gt))
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
    if total == 0:
        return 1.0
    return inter / (total - inter)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map (H, W) bool of a (H, W) mask (non-zero = foreground).

    A pixel is on the boundary when its value differs from its east, south or south-east neighbour
    (neighbours outside the image count as background). On the last row only the east neighbour is
    compared, on the last column only the south one, and the bottom-right pixel is never a boundary.
    The boundary therefore lies half a pixel toward the origin from the true contour: a filled
    rectangle covering rows y0..y1 and columns x0..x1 has the outline of rows y0-1..y1 x columns
    x0-1..x1 (clipped to the image).
    """
    seg = np.asarray(seg).astype(bool)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap expects a 2-D mask, got shape {seg.shape}")
    padded = np.pad(seg, ((0, 1), (0, 1)))  # background beyond the last row / column
    east = padded[:-1, 1:]
    south = padded[1:, :-1]
    south_east = padded[1:, 1:]
    bmap = (seg != east) | (seg != south) | (seg != south_east)
    bmap[-1, :] = seg[-1, :] != east[-1, :]
    bmap[:, -1] = seg[:, -1] != south[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_radius(height: int, width: int, bound_th: float = BOUNDARY_THRESHOLD) -> int:
    """Disk radius in pixels: ``ceil(bound_th * ||(H, W)||)`` (1 for 10x10, 2 for 100x100, 18 for 1080x1920)."""
    return int(math.ceil(bound_th * float(np.linalg.norm((height, width)))))


@lru_cache(maxsize=32)
def disk(radius: int) -> np.ndarray:
    """Disk structuring element (2r+1, 2r+1) bool: the offsets (dy, dx) with ``dy**2 + dx**2 <= r**2``.

    This is ``skimage.morphology.disk(r)`` (strict radius); radius 1 is the 3x3 cross.
    """
    offsets = np.arange(-radius, radius + 1)
    element = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    element.setflags(write=False)
    return element


def _row_runs(row: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool array, as inclusive (start, end) index pairs."""
    edges = np.diff(np.concatenate(([0], row.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def binary_dilation(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Binary dilation of a (H, W) mask by an odd-sized (kh, kw) footprint, same size output.

    ``out[y, x]`` is True when ``mask[y + dy, x + dx]`` is True for some footprint element at
    ``(dy + kh // 2, dx + kw // 2)``; pixels outside the image count as False. This equals
    ``cv2.dilate(mask, footprint)`` with OpenCV's default border. The footprint is decomposed into
    horizontal runs per row; each run is a sliding-window OR computed from row prefix sums, shifted
    vertically. Work is restricted to the bounding box of the mask grown by the footprint half-size.
    """
    mask = np.asarray(mask, dtype=bool)
    kh, kw = footprint.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"footprint must have odd height and width, got {footprint.shape}")
    cy, cx = kh // 2, kw // 2
    out = np.zeros(mask.shape, dtype=bool)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return out
    height, width = mask.shape
    y0, y1 = max(int(rows.min()) - cy, 0), min(int(rows.max()) + cy + 1, height)
    x0, x1 = max(int(cols.min()) - cx, 0), min(int(cols.max()) + cx + 1, width)
    crop = mask[y0:y1, x0:x1]
    h, w = crop.shape
    # prefix[:, cx + k] = number of True in crop[:, :k] for k in -cx..w+cx (clamped at both ends)
    prefix = np.zeros((h, w + 1 + 2 * cx), dtype=np.int32)
    np.cumsum(crop, axis=1, out=prefix[:, cx + 1: cx + w + 1])
    prefix[:, cx + w + 1:] = prefix[:, cx + w: cx + w + 1]
    window_cache: dict[tuple[int, int], np.ndarray] = {}
    result = out[y0:y1, x0:x1]
    for i in range(kh):
        dy = i - cy
        if abs(dy) >= h:
            continue
        for start, end in _row_runs(footprint[i]):
            lo, hi = start - cx, end - cx
            window = window_cache.get((lo, hi))
            if window is None:  # window[y, x] = any(crop[y, x + lo .. x + hi])
                right = prefix[:, cx + hi + 1: cx + hi + 1 + w]
                left = prefix[:, cx + lo: cx + lo + w]
                window = right > left
                window_cache[(lo, hi)] = window
            if dy >= 0:
                result[: h - dy] |= window[dy:]
            else:
                result[-dy:] |= window[: h + dy]
    return out


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, footprint: np.ndarray | None = None) -> float:
    """F of two (H, W) bool masks (DAVIS boundary measure).

    With ``Bp = seg2bmap(pred)``, ``Bg = seg2bmap(gt)`` and dilation by ``footprint`` (default
    ``disk(boundary_radius(H, W))``): precision ``= |Bp & dilate(Bg)| / |Bp|``, recall
    ``= |Bg & dilate(Bp)| / |Bg|``; when ``Bp`` is empty and ``Bg`` is not (P, R) = (1, 0), in the
    opposite case (0, 1), both empty (1, 1). ``F = 2PR / (P + R)``, 0 when ``P + R = 0``.
    """
    if footprint is None:
        footprint = disk(boundary_radius(*pred.shape))
    pred_b = seg2bmap(pred)
    gt_b = seg2bmap(gt)
    n_pred = int(np.count_nonzero(pred_b))
    n_gt = int(np.count_nonzero(gt_b))
    if n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = int(np.count_nonzero(pred_b & binary_dilation(gt_b, footprint))) / float(n_pred)
        recall = int(np.count_nonzero(gt_b & binary_dilation(pred_b, footprint))) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
