"""Stand-in for torchvision's compiled ``nms`` where the installed torchvision cannot load its C++ ops.

The official ``sam2`` imports torchvision (transforms; ``batched_nms`` in the automatic mask generator).
When the only torchvision wheel at hand is built for a CUDA torch while torch is the CPU build, its
``_C`` extension fails to load and ``import torchvision`` itself fails (``operator torchvision::nms does
not exist``). :func:`install` defines ``torchvision::nms`` (greedy non-maximum suppression, same IoU
formula and ``iou > threshold`` rule as torchvision's CPU kernel) and ``torchvision::qnms`` (schema only)
before torchvision is imported, so the official code runs unchanged. Used by ``speed_workloads.py`` for
the official side only; nothing else from torchvision's compiled ops is needed by the timed workloads.
"""

from __future__ import annotations

import numpy as np
import torch

_LIBRARY: list = []  # keeps the torch.library.Library alive


def nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Boxes ``(N, 4)`` x1y1x2y2 and ``scores (N,)`` -> kept indices ``(K,)`` int64, best score first."""
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=dets.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = dets[order]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    over = (inter / (area[:, None] + area[None, :] - inter) > iou_threshold).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=dets.device)]


def install() -> None:
    """Define the two ops, import torchvision, and let its ``ops`` see them."""
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", nms, "CPU")
    _LIBRARY.append(lib)
    import torchvision.extension

    torchvision.extension._has_ops = lambda: True
