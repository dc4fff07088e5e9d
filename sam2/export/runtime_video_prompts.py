"""Prompt parsing of :class:`~sam2.export.runtime_video.OnnxVideoPredictor` (numpy): clicks, boxes and
mask prompts, checked and converted before any state changes."""

from __future__ import annotations

import numpy as np

from sam2.export.runtime_masks import resize


def prompt_points(points, labels, box, clear_old_points: bool) -> tuple[np.ndarray, np.ndarray]:
    """Clicks and/or a box -> ``coords (1, P, 2)`` float32, ``labels (1, P)`` float32, box corners first
    (labels 2 and 3)."""
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be provided together")
    if points is None and box is None:
        raise ValueError("at least one of points or box must be provided as input")
    if box is not None and not clear_old_points:
        raise ValueError("cannot add box without clearing old points, since box prompt must be provided "
                         "before any point prompt (please use clear_old_points=True instead)")
    coords = np.zeros((1, 0, 2), np.float32) if points is None else np.asarray(points, np.float32).reshape(1, -1, 2)
    labs = np.zeros((1, 0), np.float32) if labels is None else np.asarray(labels).astype(np.int32).reshape(1, -1)
    if coords.shape[1] != labs.shape[1]:
        raise ValueError(f"got {coords.shape[1]} points but {labs.shape[1]} labels")
    labs = labs.astype(np.float32)
    if box is not None:
        corners = np.asarray(box, np.float32).reshape(-1)
        if corners.size != 4:
            raise ValueError(f"box for one object must have 4 values (x0, y0, x1, y1), got {corners.size}")
        coords = np.concatenate([corners.reshape(1, 2, 2), coords], axis=1)
        labs = np.concatenate([np.asarray([[2.0, 3.0]], np.float32), labs], axis=1)
    return coords, labs


def mask_prompt(mask, image_size: int) -> np.ndarray:
    """A 2-D mask (bool, or non-zero = object) -> ``(1, 1, S, S)`` float32 0/1: antialiased bilinear resize
    to ``S x S`` and threshold at 0.5 when its size differs (the PyTorch predictor's rule)."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"mask must be a non-empty 2-D (H, W) array, got shape {m.shape}")
    m = m.astype(bool).astype(np.float32)[None, None]
    if m.shape[-2:] != (image_size, image_size):
        m = (resize(m, (image_size, image_size), antialias=True) >= 0.5).astype(np.float32)
    return m
