"""Helpers of the automatic mask generator: point grids, crops, boxes, RLE masks, stability, ``MaskData``.

Function names and behaviour match the official ``sam2.utils.amg`` so that user code importing from it
keeps working. Small-region clean-up uses :mod:`scipy.ndimage` (8-connectivity) instead of OpenCV, and
NMS comes from :mod:`sam2.utils.nms` instead of torchvision.
"""

from __future__ import annotations

import math
from collections.abc import Generator, ItemsView
from copy import deepcopy
from itertools import product
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from sam2.utils.nms import batched_nms, box_area, nms  # noqa: F401  (re-exported for convenience)

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


class MaskData:
    """Column store of per-mask values (lists, numpy arrays or tensors) that are filtered together."""

    def __init__(self, **kwargs: Any) -> None:
        for v in kwargs.values():
            _check_column(v)
        self._stats: dict[str, Any] = dict(**kwargs)

    def __setitem__(self, key: str, item: Any) -> None:
        _check_column(item)
        self._stats[key] = item

    def __delitem__(self, key: str) -> None:
        del self._stats[key]

    def __getitem__(self, key: str) -> Any:
        return self._stats[key]

    def __contains__(self, key: str) -> bool:
        return key in self._stats

    def items(self) -> ItemsView[str, Any]:
        return self._stats.items()

    def filter(self, keep: torch.Tensor) -> None:
        """Keep the rows selected by ``keep``: a bool mask, or an index tensor (which also reorders)."""
        keep_np = keep.detach().cpu().numpy() if isinstance(keep, torch.Tensor) else np.asarray(keep)
        for k, v in self._stats.items():
            if v is None:
                continue
            if isinstance(v, torch.Tensor):
                self._stats[k] = v[torch.as_tensor(keep, device=v.device)]
            elif isinstance(v, np.ndarray):
                self._stats[k] = v[keep_np]
            elif isinstance(v, list):
                if keep_np.dtype == bool:
                    self._stats[k] = [a for a, flag in zip(v, keep_np) if flag]
                else:
                    self._stats[k] = [v[int(i)] for i in keep_np]
            else:
                raise TypeError(f"MaskData key {k} has an unsupported type {type(v)}.")

    def cat(self, new_stats: MaskData) -> None:
        """Append the rows of ``new_stats`` below ours; a column we lack (or hold as ``None``) is taken
        over as a copy."""
        for key, column in new_stats.items():
            mine = self._stats.get(key)
            self._stats[key] = deepcopy(column) if mine is None else _stack_rows(key, mine, column)

    def to_numpy(self) -> None:
        """Convert every tensor column to a float32 numpy array."""
        for k, v in self._stats.items():
            if isinstance(v, torch.Tensor):
                self._stats[k] = v.float().detach().cpu().numpy()


def concat_mask_data(parts: list[MaskData]) -> MaskData:
    """Rows of every part, in order, in one ``MaskData`` (every part must have the same columns).

    Unlike repeated :meth:`MaskData.cat`, nothing is deep-copied and each column is joined once: the
    parts are consumed (the result may share list items and, for a single part, columns with them).
    """
    if not parts:
        return MaskData()
    keys = list(parts[0]._stats)
    for part in parts[1:]:
        if set(part._stats) != set(keys):
            raise ValueError(f"MaskData parts have different columns: {keys} and {list(part._stats)}")
    out = MaskData()
    for key in keys:
        columns = [part[key] for part in parts]
        first = columns[0]
        if len(columns) == 1:
            out[key] = first
        elif isinstance(first, torch.Tensor):
            out[key] = torch.cat(columns)
        elif isinstance(first, np.ndarray):
            out[key] = np.concatenate(columns)
        else:
            out[key] = [item for column in columns for item in column]
    return out


def _stack_rows(key: str, top: Any, bottom: Any) -> Any:
    """Rows of ``top`` then rows of ``bottom`` (same container kind); list items are copied."""
    if isinstance(bottom, torch.Tensor):
        return torch.cat((top, bottom))
    if isinstance(bottom, np.ndarray):
        return np.concatenate((top, bottom))
    if isinstance(bottom, list):
        return [*top, *deepcopy(bottom)]
    raise TypeError(f"MaskData key {key} has an unsupported type {type(bottom)}.")


def _check_column(value: Any) -> None:
    if not isinstance(value, (list, np.ndarray, torch.Tensor)):
        raise AssertionError("MaskData only supports list, numpy arrays, and torch tensors.")


# ------------------------------------------------------------------------------------ boxes and crops


def is_box_near_crop_edge(boxes: torch.Tensor, crop_box: list[int], orig_box: list[int],
                          atol: float = 20.0) -> torch.Tensor:
    """``(N,)`` bool: the crop-frame XYXY box ``(N, 4)`` lies within ``atol`` px of a crop edge that is
    not also an image edge (such masks are probably cut by the crop)."""
    crop_t = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig_t = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncrop_boxes_xyxy(boxes, crop_box).float()
    near_crop = torch.isclose(boxes, crop_t[None, :], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, orig_t[None, :], atol=atol, rtol=0)
    return torch.any(near_crop & ~near_image, dim=1)


def box_xyxy_to_xywh(box_xyxy: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """XYXY -> XYWH for one box ``(4,)`` (a copy; ``w = x1 - x0``, ``h = y1 - y0``)."""
    box = deepcopy(box_xyxy)
    box[2] = box[2] - box[0]
    box[3] = box[3] - box[1]
    return box


def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """Shift crop-frame XYXY boxes ``(N, 4)`` (or ``(B, N, 4)``) into the image frame."""
    x0, y0 = crop_box[0], crop_box[1]
    offset = torch.tensor([[x0, y0, x0, y0]], device=boxes.device)
    if boxes.ndim == 3:
        offset = offset.unsqueeze(1)
    return boxes + offset


def uncrop_points(points: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """Shift crop-frame points ``(N, 2)`` (or ``(B, N, 2)``) into the image frame."""
    offset = torch.tensor([[crop_box[0], crop_box[1]]], device=points.device)
    if points.ndim == 3:
        offset = offset.unsqueeze(1)
    return points + offset


def uncrop_masks(masks: torch.Tensor, crop_box: list[int], orig_h: int, orig_w: int) -> torch.Tensor:
    """Zero-pad crop-size masks ``(..., h_crop, w_crop)`` to the image size ``(..., orig_h, orig_w)``."""
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return masks
    pad = (x0, orig_w - x1, y0, orig_h - y1)
    if masks.shape[0] == 0:  # F.pad refuses some empty inputs
        return masks.new_zeros((*masks.shape[:-2], orig_h, orig_w))
    return F.pad(masks, pad, value=0)


def batched_mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes (inclusive max indices, int64) of bool masks ``(..., H, W)`` -> ``(..., 4)``.

    Empty masks give ``[0, 0, 0, 0]``.
    """
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, dtype=torch.int64, device=masks.device)
    h, w = masks.shape[-2:]
    flat = masks.reshape(-1, h, w).bool()
    rows = flat.any(dim=-1)  # (N, H)
    cols = flat.any(dim=-2)  # (N, W)
    row_idx = torch.arange(h, device=masks.device)
    col_idx = torch.arange(w, device=masks.device)
    bottom = torch.where(rows, row_idx, -1).amax(dim=-1)
    top = torch.where(rows, row_idx, h).amin(dim=-1)
    right = torch.where(cols, col_idx, -1).amax(dim=-1)
    left = torch.where(cols, col_idx, w).amin(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = ~rows.any(dim=-1)
    boxes = boxes.masked_fill(empty[:, None], 0)
    return boxes.reshape(*masks.shape[:-2], 4)


def generate_crop_boxes(im_size: tuple[int, ...], n_layers: int,
                        overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (XYXY ints) and their layer indices: the full image, then ``2**i x 2**i`` overlapping
    crops for every layer ``i = 1..n_layers``."""
    im_h, im_w = im_size[0], im_size[1]
    short_side = min(im_h, im_w)
    crop_boxes: list[list[int]] = [[0, 0, im_w, im_h]]
    layer_idxs: list[int] = [0]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + im_w) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + im_h) / per_side))
        xs = [int((crop_w - overlap) * j) for j in range(per_side)]
        ys = [int((crop_h - overlap) * j) for j in range(per_side)]
        for x0, y0 in product(xs, ys):
            crop_boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layer_idxs.append(layer)
    return crop_boxes, layer_idxs


# --------------------------------------------------------------------------------------- point grids


def build_point_grid(n_per_side: int) -> np.ndarray:
    """``(n*n, 2)`` (x, y) points in [0, 1], cell centres of an n x n grid, row by row."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer ``0..n_layers``; layer i has ``int(n_per_side / scale_per_layer**i)`` per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def batch_iterator(batch_size: int, *args: Any) -> Generator[list[Any], None, None]:
    """Yield lists of consecutive ``batch_size`` slices of every argument (the last may be shorter)."""
    if not args or not all(len(a) == len(args[0]) for a in args):
        raise AssertionError("Batched iteration must have inputs of all the same size.")
    n = len(args[0])
    for start in range(0, n, batch_size):
        yield [a[start:start + batch_size] for a in args]


# ----------------------------------------------------------------------------------------------- RLE


def mask_to_rle_pytorch(tensor: torch.Tensor) -> list[dict[str, Any]]:
    """Uncompressed RLE of bool masks ``(B, H, W)``, column-major, counts starting with a zero run.

    Each element is ``{"size": [H, W], "counts": [int, ...]}``.
    """
    b, h, w = tensor.shape
    flat = tensor.permute(0, 2, 1).flatten(1).bool()
    if h * w == 0:
        return [{"size": [h, w], "counts": [0]} for _ in range(b)]
    change = flat[:, 1:] ^ flat[:, :-1]
    rows, cols = (t.cpu().numpy() for t in change.nonzero(as_tuple=True))
    # run boundaries of every mask, in order (nonzero is row-major)
    per_mask = np.split(cols + 1, np.cumsum(np.bincount(rows, minlength=b))[:-1])
    starts_with_one = flat[:, 0].cpu().tolist()
    out = []
    for i in range(b):
        runs = np.diff(np.concatenate([[0], per_mask[i], [h * w]])).tolist()
        counts = [0, *runs] if starts_with_one[i] else runs
        out.append({"size": [h, w], "counts": counts})
    return out


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode an uncompressed RLE to a bool array ``(H, W)``."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    if flat.size != h * w:
        raise ValueError(f"RLE counts sum to {flat.size}, expected {h * w}")
    return flat.reshape(w, h).transpose()


def area_from_rle(rle: dict[str, Any]) -> int:
    """Foreground pixel count of an uncompressed RLE."""
    return int(sum(rle["counts"][1::2]))


def coco_encode_rle(uncompressed_rle: dict[str, Any]) -> dict[str, Any]:
    """Compress an uncompressed RLE with pycocotools; ``counts`` becomes a UTF-8 ``str``."""
    from pycocotools import mask as mask_utils

    h, w = uncompressed_rle["size"]
    rle = mask_utils.frPyObjects(uncompressed_rle, h, w)
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


# ------------------------------------------------------------------------------ scores and clean-ups


def calculate_stability_score(masks: torch.Tensor, mask_threshold: float,
                              threshold_offset: float) -> torch.Tensor:
    """IoU between the masks binarised at ``threshold +- offset``: ``(..., H, W)`` logits -> ``(...)``.

    Pixel counts are summed per row in int16 and then over rows in int32 (as the official code does);
    an empty union gives NaN.
    """
    inter = (masks > (mask_threshold + threshold_offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    union = (masks > (mask_threshold - threshold_offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return inter / union


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill small holes (``mode="holes"``) or drop small islands (``"islands"``) of a bool mask ``(H, W)``.

    Regions are 8-connected; those with fewer than ``area_thresh`` pixels change. When every island is
    small, the largest one is kept. Returns ``(mask, modified)``.
    """
    if mode not in ("holes", "islands"):
        raise AssertionError(f"unknown mode {mode!r}, expected 'holes' or 'islands'")
    fill_holes = mode == "holes"
    working = np.logical_xor(fill_holes, mask.astype(bool))
    labels, num = ndimage.label(working, structure=_EIGHT_CONNECTED)
    sizes = np.bincount(labels.ravel(), minlength=num + 1)[1:]
    small = np.flatnonzero(sizes < area_thresh) + 1
    if small.size == 0:
        return mask, False
    if fill_holes:
        chosen = np.concatenate([[0], small])
    else:
        chosen = np.setdiff1d(np.arange(1, num + 1), small)
        if chosen.size == 0:
            chosen = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(labels, chosen), True
