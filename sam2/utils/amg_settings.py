"""Checks of the ``SAM2AutomaticMaskGenerator`` settings, before any model work.

Every bad value raises ``ValueError`` naming the argument: counts must be positive integers, the crop
depth is bounded (each layer quadruples the crops), thresholds must be numbers other than NaN (a NaN
threshold silently keeps everything or nothing), and the image given to ``generate`` must be an
``(H, W, 3)`` uint8 RGB array.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

# crop_n_layers = n runs 1 + 4 + ... + 4^n crops, each a full image-encoder pass: 4 layers are already
# 341 crops; more only exhaust memory and time.
MAX_CROP_N_LAYERS = 4

_FLOAT_SETTINGS = ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "mask_threshold",
                   "box_nms_thresh", "crop_nms_thresh", "crop_overlap_ratio")


def _integer(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
        raise ValueError(f"{name} must be a number (not NaN), got {value!r}")
    return float(value)


def checked_settings(points_per_side: Any, point_grids: Any, crop_n_layers: Any, **settings: Any) -> dict[str, Any]:
    """Validated generator settings (the keyword names of the constructor) -> the same dict.

    ``points_per_side`` and ``point_grids`` are only checked (exactly one is given by the caller)."""
    out: dict[str, Any] = {"crop_n_layers": _integer("crop_n_layers", crop_n_layers, 0, MAX_CROP_N_LAYERS)}
    if points_per_side is not None:
        _integer("points_per_side", points_per_side, 1)
    else:
        _check_point_grids(point_grids, out["crop_n_layers"])
    out["points_per_batch"] = _integer("points_per_batch", settings.pop("points_per_batch"), 1)
    out["crop_n_points_downscale_factor"] = _integer(
        "crop_n_points_downscale_factor", settings.pop("crop_n_points_downscale_factor"), 1)
    if points_per_side is not None:
        deepest = int(points_per_side / out["crop_n_points_downscale_factor"] ** out["crop_n_layers"])
        if deepest < 1:
            raise ValueError(f"points_per_side={points_per_side} with crop_n_points_downscale_factor="
                             f"{out['crop_n_points_downscale_factor']} leaves no point on crop layer "
                             f"{out['crop_n_layers']}; use fewer crop layers or a smaller factor")
    out["min_mask_region_area"] = _integer("min_mask_region_area", settings.pop("min_mask_region_area"), 0)
    for name in _FLOAT_SETTINGS:
        out[name] = _number(name, settings.pop(name))
    out.update(settings)  # flags and the output mode, checked by the generator itself
    return out


def _check_point_grids(point_grids: Any, crop_n_layers: int) -> None:
    if not isinstance(point_grids, (list, tuple)) or len(point_grids) < crop_n_layers + 1:
        raise ValueError(f"point_grids must be a list of crop_n_layers + 1 = {crop_n_layers + 1} arrays of "
                         "(P, 2) normalised points")
    for i, grid in enumerate(point_grids):
        arr = np.asarray(grid)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0 or not np.isfinite(arr).all():
            raise ValueError(f"point_grids[{i}] must be a non-empty (P, 2) array of finite numbers, "
                             f"got shape {arr.shape}")


def check_generate_image(image: Any) -> None:
    """``image`` must be an ``(H, W, 3)`` uint8 RGB numpy array (what the crops are cut from)."""
    hint = "pass an (H, W, 3) uint8 RGB numpy array, e.g. np.asarray(Image.open(path).convert('RGB'))"
    if not isinstance(image, np.ndarray):
        raise ValueError(f"generate: image must be a numpy array, got {type(image).__name__}; {hint}")
    if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"generate: image must have shape (H, W, 3), got {image.shape}; {hint}")
    if image.dtype != np.uint8:
        raise ValueError(f"generate: image must be uint8 (0-255), got dtype {image.dtype}; {hint}")
