"""Validation of video-predictor arguments; raises before any state changes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sam2.utils.prompts import check_box, check_points

BOX_LABELS = (2, 3)  # top-left and bottom-right corner labels used for boxes


def check_frame_idx(frame_idx: Any, num_frames: int, name: str = "frame_idx") -> int:
    """An int in ``[0, num_frames)``; IndexError otherwise."""
    if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(frame_idx).__name__}")
    if not 0 <= frame_idx < num_frames:
        raise IndexError(f"{name} {frame_idx} is out of range for a video of {num_frames} frames "
                         f"(valid: 0..{num_frames - 1})")
    return int(frame_idx)


def check_max_frames(value: Any) -> int | None:
    """``max_frame_num_to_track``: ``None`` or an int >= 0 (TypeError / ValueError naming it)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"max_frame_num_to_track must be an int or None, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"max_frame_num_to_track must be >= 0, got {value}")
    return int(value)


def check_obj_id(obj_id: Any) -> None:
    """Object ids are ints (as in the official examples) or strings."""
    if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer, str)):
        raise TypeError(f"obj_id must be an int or a str, got {obj_id!r} ({type(obj_id).__name__})")


def check_video_points(points: Any, labels: Any, box: Any,
                       clear_old_points: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Clicks and/or a box for one object -> ``coords (1, P, 2)`` float32, ``labels (1, P)`` int32,
    with the box (if any) first as two corner points labelled 2 and 3."""
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be provided together")
    if points is None and box is None:
        raise ValueError("at least one of points or box must be provided as input")
    if box is not None and not clear_old_points:
        raise ValueError("cannot add box without clearing old points, since box prompt must be provided "
                         "before any point prompt (please use clear_old_points=True instead)")
    coords_np, labels_np = check_points(points, labels)
    if coords_np is not None and coords_np.ndim == 3 and coords_np.shape[0] != 1:
        raise ValueError(f"points for one object must have shape (N, 2) or (1, N, 2), got {coords_np.shape}")
    coords = torch.zeros(1, 0, 2) if coords_np is None else torch.as_tensor(coords_np, dtype=torch.float32)
    labs = torch.zeros(1, 0, dtype=torch.int32) if labels_np is None else torch.as_tensor(labels_np,
                                                                                         dtype=torch.int32)
    coords, labs = coords.reshape(1, -1, 2), labs.reshape(1, -1)
    if box is not None:
        box_np = check_box(box)
        if box_np.size != 4:
            raise ValueError(f"box for one object must have 4 values (x0, y0, x1, y1), got shape {box_np.shape}")
        corners = torch.as_tensor(box_np, dtype=torch.float32).reshape(1, 2, 2)
        coords = torch.cat([corners, coords], dim=1)
        labs = torch.cat([torch.tensor([BOX_LABELS], dtype=torch.int32), labs], dim=1)
    return coords, labs


def check_mask(mask: Any) -> torch.Tensor:
    """A 2-D mask; numpy / lists are read as bool (non-zero = object), tensors are kept as given."""
    if isinstance(mask, torch.Tensor):
        t = mask.detach()
    else:
        try:
            t = torch.tensor(np.asarray(mask), dtype=torch.bool)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"mask could not be read as a 2-D array: {exc}") from exc
    if t.dim() != 2 or t.numel() == 0:
        raise ValueError(f"mask must be a non-empty 2-D (H, W) array, got shape {tuple(t.shape)}")
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise ValueError("mask contains NaN or infinite values")
    return t
