"""Which past frames become memory for the frame being tracked, and their memory tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch


class MemoryRecord(Protocol):
    """What a stored per-frame output must provide to serve as memory."""

    maskmem_features: torch.Tensor | None  # (B, mem_dim, h, w)
    maskmem_pos_enc: torch.Tensor | None  # (B, mem_dim, h, w)
    obj_ptr: torch.Tensor  # (B, C)


def select_closest_cond_frames(frame_idx: int, cond_outputs: Mapping[int, Any],
                               max_cond_frames: int) -> tuple[dict[int, Any], dict[int, Any]]:
    """Keep at most ``max_cond_frames`` conditioning frames (-1 = all): the closest one before
    ``frame_idx``, the closest at or after it, then the nearest others. -> (selected, unselected)."""
    if max_cond_frames == -1 or len(cond_outputs) <= max_cond_frames:
        return dict(cond_outputs), {}
    if max_cond_frames < 2:
        raise ValueError("max_cond_frames_in_attn must be -1 or at least 2")
    selected: dict[int, Any] = {}
    before = max((t for t in cond_outputs if t < frame_idx), default=None)
    if before is not None:
        selected[before] = cond_outputs[before]
    after = min((t for t in cond_outputs if t >= frame_idx), default=None)
    if after is not None:
        selected[after] = cond_outputs[after]
    rest = sorted((t for t in cond_outputs if t not in selected), key=lambda t: abs(t - frame_idx))
    for t in rest[: max_cond_frames - len(selected)]:
        selected[t] = cond_outputs[t]
    unselected = {t: v for t, v in cond_outputs.items() if t not in selected}
    return selected, unselected


def previous_frame(frame_idx: int, t_rel: int, stride: int, reverse: bool) -> int:
    """Index of the memory frame ``t_rel`` steps back in tracking direction (stride ``stride``)."""
    if t_rel == 1:
        return frame_idx + 1 if reverse else frame_idx - 1
    if reverse:
        return -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
    return ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride


def memory_frames(frame_idx: int, selected: Mapping[int, MemoryRecord], unselected: Mapping[int, MemoryRecord],
                  non_cond_outputs: Mapping[int, MemoryRecord], num_maskmem: int, stride: int,
                  reverse: bool) -> list[tuple[int, MemoryRecord]]:
    """``(t_pos, record)`` pairs: selected conditioning frames at ``t_pos = 0``, then the recent
    non-conditioning frames from oldest (``t_pos = 1``) to newest (``num_maskmem - 1``)."""
    frames: list[tuple[int, MemoryRecord]] = [(0, out) for out in selected.values()]
    for t_pos in range(1, num_maskmem):
        prev = previous_frame(frame_idx, num_maskmem - t_pos, stride, reverse)
        out = non_cond_outputs.get(prev)
        if out is None:
            out = unselected.get(prev)
        if out is not None:
            frames.append((t_pos, out))
    return frames
