"""Box areas and greedy non-maximum suppression without torchvision.

The semantics follow torchvision's CPU kernel, which is what the official automatic mask generator
relies on: boxes are visited in a stable descending order of score, every kept box suppresses the later
boxes whose IoU with it is strictly greater than the threshold, IoU is computed in the boxes' own dtype
with areas ``(x1 - x0) * (y1 - y0)`` (no +1), and kept indices come back sorted by decreasing score.
"""

from __future__ import annotations

import numpy as np
import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(x1 - x0) * (y1 - y0)`` of ``(N, 4)`` XYXY boxes -> ``(N,)``.

    Small integer and low-precision float dtypes are widened first (to int32 / float32), as torchvision
    does, so that the products do not overflow.
    """
    if boxes.is_floating_point():
        if boxes.dtype not in (torch.float32, torch.float64):
            boxes = boxes.float()
    elif boxes.dtype not in (torch.int32, torch.int64):
        boxes = boxes.int()
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _iou_one_to_many(box: torch.Tensor, area: torch.Tensor, others: torch.Tensor,
                     other_areas: torch.Tensor) -> torch.Tensor:
    """IoU of one ``(4,)`` box with ``(M, 4)`` boxes, in the boxes' dtype -> ``(M,)``."""
    zero = torch.zeros((), dtype=others.dtype)
    w = torch.maximum(zero, torch.minimum(box[2], others[:, 2]) - torch.maximum(box[0], others[:, 0]))
    h = torch.maximum(zero, torch.minimum(box[3], others[:, 3]) - torch.maximum(box[1], others[:, 1]))
    inter = w * h
    return inter / (area + other_areas - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of ``(N, 4)`` XYXY boxes with ``(N,)`` scores.

    Returns the int64 indices of the kept boxes, sorted by decreasing score (ties keep their input
    order), on the boxes' device. A box is suppressed when its IoU with a kept box is > ``iou_threshold``.
    """
    device = boxes.device
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    order = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    ordered = boxes.detach().cpu()[order]
    areas = (ordered[:, 2] - ordered[:, 0]) * (ordered[:, 3] - ordered[:, 1])
    n = ordered.shape[0]
    suppressed = np.zeros(n, dtype=bool)
    kept: list[int] = []
    for i in range(n):
        if suppressed[i]:
            continue
        kept.append(i)
        if i + 1 == n:
            break
        iou = _iou_one_to_many(ordered[i], areas[i], ordered[i + 1:], areas[i + 1:])
        # compare in float64, like the C++ kernel that promotes the IoU to the double threshold
        suppressed[i + 1:] |= (iou.double() > iou_threshold).numpy()
    keep = order[torch.as_tensor(kept, dtype=torch.int64)]
    return keep.to(device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS run independently per category ``idxs`` (``(N,)``) over ``(N, 4)`` boxes and ``(N,)`` scores.

    Categories are separated by shifting each box by ``idx * (max_coordinate + 1)`` so that boxes of
    different categories never overlap. Returns kept indices (int64) sorted by decreasing score.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.ones((), dtype=boxes.dtype, device=boxes.device))
    return nms(boxes + offsets[:, None], scores, iou_threshold)
