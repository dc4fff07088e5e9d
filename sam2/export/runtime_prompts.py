"""Prompt checks and packing for the ONNX image predictor (NumPy only, no PyTorch).

The checks give the same errors as :mod:`sam2.utils.prompts`. Packing follows the official predictor:
a box becomes two corner points with labels 2 and 3 placed before the clicks, and whenever there is any
point or box a padding point (0, 0) with label -1 is appended; a mask-only prompt has no points at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

VALID_LABELS = (-1, 0, 1, 2, 3)
LABELS_HELP = "-1 (padding), 0 (background), 1 (foreground), 2 or 3 (box top-left / bottom-right corner)"


@dataclass
class PackedPrompt:
    """Decoder inputs: ``coords (B, N, 2)`` in the model frame, ``labels (B, N)`` float32,
    ``mask (B, 1, h, w)`` and ``has_mask (1,)``."""

    coords: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    has_mask: np.ndarray


def _as_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_points(point_coords: Any, point_labels: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(N, 2)`` / ``(B, N, 2)`` coords and ``(N,)`` / ``(B, N)`` labels in :data:`VALID_LABELS`."""
    if point_coords is None and point_labels is None:
        return None, None
    if point_coords is None:
        raise ValueError("point_labels given without point_coords")
    if point_labels is None:
        raise ValueError("point_labels must be supplied if point_coords is supplied.")
    coords, labels = _as_array(point_coords, "point_coords"), _as_array(point_labels, "point_labels")
    if coords.ndim not in (2, 3) or coords.shape[-1] != 2 or coords.shape[-2] == 0:
        raise ValueError(f"point_coords must have shape (N, 2) or (B, N, 2) with N >= 1, got {coords.shape}")
    if labels.shape != coords.shape[:-1]:
        raise ValueError(f"point_labels must have shape {coords.shape[:-1]} to match point_coords "
                         f"{coords.shape}, got {labels.shape}")
    if np.issubdtype(labels.dtype, np.floating) and not np.all(labels == np.round(labels)):
        raise ValueError(f"point_labels must be integers: {LABELS_HELP}")
    bad = ~np.isin(labels, VALID_LABELS)
    if bad.any():
        raise ValueError(f"point_labels must be {LABELS_HELP}; got {np.unique(labels[bad])}")
    return coords, labels


def check_box(box: Any) -> np.ndarray | None:
    """``(4,)`` or ``(B, 4)`` XYXY boxes."""
    if box is None:
        return None
    arr = _as_array(box, "box")
    if arr.ndim not in (1, 2) or arr.shape[-1] != 4 or (arr.ndim == 2 and arr.shape[0] == 0):
        raise ValueError(f"box must have shape (4,) or (B, 4) as x0, y0, x1, y1; got {arr.shape}")
    return arr


def check_mask_input(mask_input: Any, size: int) -> np.ndarray | None:
    """``(1, h, w)`` or ``(B, 1, h, w)`` low-res logits with ``h = w = size``."""
    if mask_input is None:
        return None
    arr = _as_array(mask_input, "mask_input")
    if arr.ndim not in (3, 4) or arr.shape[-3] != 1 or tuple(arr.shape[-2:]) != (size, size):
        raise ValueError(f"mask_input must have shape (1, {size}, {size}) or (B, 1, {size}, {size}) (low-res "
                         f"logits from a previous prediction), got {arr.shape}")
    return arr


def _to_model_frame(xy: np.ndarray, normalize: bool, orig_hw: tuple[int, int], size: int) -> np.ndarray:
    """``(..., 2)`` (x, y) in pixels of ``orig_hw`` (or relative when not ``normalize``) -> ``0..size``."""
    xy = xy.astype(np.float32).copy()
    if normalize:
        xy[..., 0] = xy[..., 0] / np.float32(orig_hw[1])
        xy[..., 1] = xy[..., 1] / np.float32(orig_hw[0])
    return xy * np.float32(size)


def pack_prompt(point_coords: Any, point_labels: Any, box: Any, mask_input: Any, normalize_coords: bool,
                orig_hw: tuple[int, int], size: int) -> PackedPrompt:
    """Check the user's prompts and build the decoder inputs (``size`` = model image size S)."""
    mask_size = size // 4
    coords, labels = check_points(point_coords, point_labels)
    boxes = check_box(box)
    mask = check_mask_input(mask_input, mask_size)
    point_b = (coords.shape[0] if coords.ndim == 3 else 1) if coords is not None else None
    box_b = (boxes.shape[0] if boxes.ndim == 2 else 1) if boxes is not None else None
    if point_b is not None and box_b is not None and point_b != box_b:
        raise ValueError(f"box batch ({box_b}) and point batch ({point_b}) must be the same size")
    batch = point_b or box_b or 1
    mask_b = (mask.shape[0] if mask.ndim == 4 else 1) if mask is not None else None
    if mask_b is not None and mask_b not in (1, batch):
        raise ValueError(f"mask_input batch ({mask_b}) must be 1 or match the prompt batch ({batch})")

    parts_xy, parts_label = [], []
    if boxes is not None:
        parts_xy.append(_to_model_frame(boxes.reshape(-1, 2, 2), normalize_coords, orig_hw, size))
        parts_label.append(np.tile(np.array([[2.0, 3.0]], dtype=np.float32), (batch, 1)))
    if coords is not None:
        xy = _to_model_frame(coords, normalize_coords, orig_hw, size)
        parts_xy.append(xy if xy.ndim == 3 else xy[None])
        parts_label.append(labels.astype(np.float32).reshape(batch, -1))
    if parts_xy:
        parts_xy.append(np.zeros((batch, 1, 2), dtype=np.float32))
        parts_label.append(np.full((batch, 1), -1.0, dtype=np.float32))
        xy_all, label_all = np.concatenate(parts_xy, axis=1), np.concatenate(parts_label, axis=1)
    else:
        xy_all, label_all = np.zeros((batch, 0, 2), np.float32), np.zeros((batch, 0), np.float32)
    if mask is None:
        mask_all, has = np.zeros((batch, 1, mask_size, mask_size), np.float32), 0.0
    else:
        mask_all, has = np.broadcast_to(mask.reshape(-1, 1, mask_size, mask_size), (batch, 1, mask_size, mask_size)), 1.0
    return PackedPrompt(np.ascontiguousarray(xy_all), np.ascontiguousarray(label_all),
                        np.ascontiguousarray(mask_all, dtype=np.float32), np.array([has], dtype=np.float32))
