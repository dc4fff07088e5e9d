"""Validation of user prompts (points, labels, boxes, mask inputs) before any model work.

Every check raises ``ValueError`` with a message naming the argument and what was wrong. NumPy only (a
torch tensor is recognised by its methods), so the PyTorch-free ONNX runtime uses the same checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# What the official prompt encoder gives a meaning to: -1 = padding (not a point), 0 = background,
# 1 = foreground, 2 / 3 = top-left / bottom-right box corner.
VALID_LABELS = (-1, 0, 1, 2, 3)
LABELS_HELP = "-1 (padding), 0 (background), 1 (foreground), 2 or 3 (box top-left / bottom-right corner)"


def _as_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def _finite(arr: np.ndarray, name: str) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def check_points(point_coords: Any, point_labels: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(N, 2)`` / ``(B, N, 2)`` coords and ``(N,)`` / ``(B, N)`` integer labels in :data:`VALID_LABELS`."""
    if point_coords is None and point_labels is None:
        return None, None
    if point_coords is None:
        raise ValueError("point_labels given without point_coords")
    if point_labels is None:
        raise ValueError("point_labels must be supplied if point_coords is supplied.")
    coords = _as_array(point_coords, "point_coords")
    labels = _as_array(point_labels, "point_labels")
    if coords.ndim not in (2, 3) or coords.shape[-1] != 2 or coords.shape[-2] == 0:
        raise ValueError(f"point_coords must have shape (N, 2) or (B, N, 2) with N >= 1, got {coords.shape}")
    if labels.shape != coords.shape[:-1]:
        raise ValueError(f"point_labels must have shape {coords.shape[:-1]} to match point_coords "
                         f"{coords.shape}, got {labels.shape}")
    _finite(coords, "point_coords")
    _finite(labels, "point_labels")
    if np.issubdtype(labels.dtype, np.floating) and not np.all(labels == np.round(labels)):
        raise ValueError(f"point_labels must be integers: {LABELS_HELP}")
    bad = ~np.isin(labels, VALID_LABELS)
    if bad.any():
        raise ValueError(f"point_labels must be {LABELS_HELP}; got {np.unique(labels[bad])}")
    return coords, labels


def check_box(box: Any) -> np.ndarray | None:
    """``(4,)``, ``(1, 4)`` or ``(B, 4)`` XYXY boxes."""
    if box is None:
        return None
    arr = _as_array(box, "box")
    if arr.ndim not in (1, 2) or arr.shape[-1] != 4 or (arr.ndim == 2 and arr.shape[0] == 0):
        raise ValueError(f"box must have shape (4,) or (B, 4) as x0, y0, x1, y1; got {arr.shape}")
    _finite(arr, "box")
    return arr


def check_mask_input(mask_input: Any, mask_size: tuple[int, int]) -> np.ndarray | None:
    """``(1, h, w)`` or ``(B, 1, h, w)`` low-res logits with ``(h, w) = mask_size``."""
    if mask_input is None:
        return None
    arr = _as_array(mask_input, "mask_input")
    if arr.ndim not in (3, 4) or arr.shape[-3] != 1 or tuple(arr.shape[-2:]) != tuple(mask_size):
        raise ValueError(f"mask_input must have shape (1, {mask_size[0]}, {mask_size[1]}) or "
                         f"(B, 1, {mask_size[0]}, {mask_size[1]}) (low-res logits from a previous "
                         f"prediction), got {arr.shape}")
    _finite(arr, "mask_input")
    return arr


def prompt_batch_size(coords: np.ndarray | None, boxes: np.ndarray | None, mask: np.ndarray | None) -> int:
    """Batch size implied by the prompts; raises if they disagree."""
    point_b = (coords.shape[0] if coords.ndim == 3 else 1) if coords is not None else None
    box_b = (boxes.shape[0] if boxes.ndim == 2 else 1) if boxes is not None else None
    if point_b is not None and box_b is not None and point_b != box_b:
        raise ValueError(f"box batch ({box_b}) and point batch ({point_b}) must be the same size")
    batch = point_b or box_b or 1
    mask_b = (mask.shape[0] if mask.ndim == 4 else 1) if mask is not None else None
    if mask_b is not None and mask_b not in (1, batch):
        raise ValueError(f"mask_input batch ({mask_b}) must be 1 or match the prompt batch ({batch})")
    return batch
