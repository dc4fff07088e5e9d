"""Prompt checks and packing for the ONNX image predictor (NumPy only, no PyTorch).

The checks are those of :mod:`sam2.utils.prompts` (NumPy only). Packing follows the official predictor:
a box becomes two corner points with labels 2 and 3 placed before the clicks, and whenever there is any
point or box a padding point (0, 0) with label -1 is appended; a mask-only prompt has no points at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sam2.utils.prompts import check_box, check_mask_input, check_points, prompt_batch_size


@dataclass
class PackedPrompt:
    """Decoder inputs: ``coords (B, N, 2)`` in the model frame, ``labels (B, N)`` float32,
    ``mask (B, 1, h, w)`` and ``has_mask (1,)``."""

    coords: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    has_mask: np.ndarray


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
    mask = check_mask_input(mask_input, (mask_size, mask_size))
    batch = prompt_batch_size(coords, boxes, mask)

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
