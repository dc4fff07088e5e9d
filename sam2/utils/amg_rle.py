"""Run-length encoding of many boolean masks without transposing them, and boxes read from the runs.

COCO run lengths walk a mask column by column. :func:`sam2.utils.amg.mask_to_rle_pytorch` therefore
transposes every mask before looking for changes; here the changes are found in the row-major layout
(a change between two vertically adjacent pixels, or between the bottom of one column and the top of the
next) and only the few change positions are sorted into column-major order. The counts are the same
integers. The tight box of a mask follows from its runs, so no second pass over the pixels is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _change_positions(masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Column-major positions ``p`` where pixel ``p`` differs from pixel ``p - 1``, for ``(B, H, W)`` bool
    masks. Returns ``(mask index, position)`` arrays sorted by mask, then position."""
    b, h, w = masks.shape
    vertical = (masks[:, 1:, :] ^ masks[:, :-1, :]).nonzero()  # (b, y - 1, x) of changes inside a column
    across = (masks[:, 0, 1:] ^ masks[:, -1, :-1]).nonzero()  # (b, x - 1): bottom of x - 1 -> top of x
    mask_idx = torch.cat([vertical[:, 0], across[:, 0]]).cpu().numpy()
    pos = torch.cat([vertical[:, 2] * h + vertical[:, 1] + 1, (across[:, 1] + 1) * h]).cpu().numpy()
    order = np.lexsort((pos, mask_idx))
    return mask_idx[order], pos[order]


def masks_to_rle(masks: torch.Tensor) -> list[dict[str, Any]]:
    """Uncompressed COCO RLE of bool masks ``(B, H, W)`` (same result as ``mask_to_rle_pytorch``).

    Each element is ``{"size": [H, W], "counts": [int, ...]}``, counts starting with a (maybe empty)
    background run.
    """
    b, h, w = masks.shape
    if h * w == 0 or b == 0:
        return [{"size": [h, w], "counts": [0]} for _ in range(b)]
    masks = masks.detach().bool()  # on its device: only the change positions come to the CPU
    mask_idx, pos = _change_positions(masks)
    per_mask = np.split(pos, np.searchsorted(mask_idx, np.arange(1, b)))
    first = masks[:, 0, 0].tolist()
    out = []
    for i in range(b):
        runs = np.diff(np.concatenate(([0], per_mask[i], [h * w]))).tolist()
        out.append({"size": [h, w], "counts": [0, *runs] if first[i] else runs})
    return out


def boxes_from_rle(rles: list[dict[str, Any]]) -> torch.Tensor:
    """Tight XYXY boxes ``(N, 4)`` int64 (inclusive max) of uncompressed RLE masks; ``[0, 0, 0, 0]`` for an
    empty mask (same as ``batched_mask_to_box`` on the decoded masks)."""
    boxes = np.zeros((len(rles), 4), dtype=np.int64)
    for i, rle in enumerate(rles):
        h = rle["size"][0]
        ends = np.cumsum(rle["counts"])
        starts = np.concatenate(([0], ends[:-1]))
        fg_start, fg_end = starts[1::2], ends[1::2]  # foreground runs [start, end), column-major
        nonempty = fg_end > fg_start
        if not nonempty.any():
            continue
        fg_start, last = fg_start[nonempty], fg_end[nonempty] - 1
        one_column = fg_start // h == last // h
        top = np.where(one_column, fg_start % h, 0).min()
        bottom = np.where(one_column, last % h, h - 1).max()
        boxes[i] = (fg_start[0] // h, top, last[-1] // h, bottom)
    return torch.from_numpy(boxes)
