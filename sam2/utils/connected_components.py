"""Connected-component labelling of mask logits on the CPU, and the small-region clean-ups built on it.

The official package labels components with a CUDA extension and silently skips the clean-ups when the
extension is missing (always the case on a CPU). Here the labelling is done with
:func:`scipy.ndimage.label` (8-connectivity) so hole filling and sprinkle removal really happen on every
device. Tensors are moved to the CPU for labelling and results are returned on the input device.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

# 8-connectivity inside each (H, W) plane of an (N, H, W) stack, no connection across planes.
_PLANE_8_CONNECTED = np.zeros((3, 3, 3), dtype=bool)
_PLANE_8_CONNECTED[1] = True

HOLE_FILL_OFFSET = 10.0  # logits of filled holes / removed sprinkles sit this far from the threshold
VIDEO_HOLE_FILL_VALUE = 0.1  # weak foreground score given to holes by the video predictor


def _label_stack(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label an ``(N, H, W)`` bool stack; returns int32 labels and int32 per-pixel areas, same shape."""
    labels, num = ndimage.label(binary, structure=_PLANE_8_CONNECTED)
    labels = labels.astype(np.int32, copy=False)
    sizes = np.bincount(labels.ravel(), minlength=num + 1).astype(np.int32)
    sizes[0] = 0  # background pixels have area 0
    return labels, sizes[labels]


def connected_components(binary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """8-connected components of each ``(H, W)`` map of a ``(N, 1, H, W)`` bool/uint8 tensor.

    Returns ``(labels, areas)``, both int32 ``(N, 1, H, W)`` on the input device: ``labels`` is > 0 on
    foreground pixels (ids are arbitrary, unique over the whole batch) and 0 elsewhere; ``areas`` is the
    pixel count of the component a foreground pixel belongs to, 0 on background.
    """
    if binary.ndim != 4 or binary.shape[1] != 1:
        raise ValueError(f"expected a tensor of shape (N, 1, H, W), got {tuple(binary.shape)}")
    n, _, h, w = binary.shape
    device = binary.device
    stack = (binary.detach().to("cpu") != 0).reshape(n, h, w).numpy()
    if stack.size == 0:
        empty = torch.zeros(tuple(binary.shape), dtype=torch.int32, device=device)
        return empty, empty.clone()
    labels, areas = _label_stack(stack)
    labels_t = torch.from_numpy(labels).reshape(n, 1, h, w).to(device)
    areas_t = torch.from_numpy(areas).reshape(n, 1, h, w).to(device)
    return labels_t, areas_t


def _small_components(binary: torch.Tensor, max_area: float) -> torch.Tensor:
    """Bool mask of pixels whose component (in ``binary``, ``(N, 1, H, W)``) has area <= ``max_area``."""
    labels, areas = connected_components(binary)
    return (labels > 0) & (areas <= max_area)


def remove_holes_and_sprinkles(
    low_res_logits: torch.Tensor,
    mask_threshold: float,
    max_hole_area: float,
    max_sprinkle_area: float,
) -> torch.Tensor:
    """Fill small holes and remove small sprinkles of ``(B, C, h, w)`` mask logits.

    Holes are 8-connected components of ``logits <= mask_threshold`` with at most ``max_hole_area``
    pixels; they are set to ``mask_threshold + 10``. Sprinkles are components of
    ``logits > mask_threshold`` (taken from the input logits, before hole filling) with at most
    ``max_sprinkle_area`` pixels; they are set to ``mask_threshold - 10``. Components touching the border
    count like any other, and areas are measured on the given (low-resolution) grid. A non-positive area
    disables that step (with both disabled the input is returned as is). The result has the input's
    shape, dtype and device.
    """
    if low_res_logits.ndim != 4:
        raise ValueError(f"expected logits of shape (B, C, h, w), got {tuple(low_res_logits.shape)}")
    if max_hole_area <= 0 and max_sprinkle_area <= 0:
        return low_res_logits
    flat = low_res_logits.flatten(0, 1).unsqueeze(1)
    out = low_res_logits
    if max_hole_area > 0:
        holes = _small_components(flat <= mask_threshold, max_hole_area).reshape(low_res_logits.shape)
        out = torch.where(holes, mask_threshold + HOLE_FILL_OFFSET, out)
    if max_sprinkle_area > 0:
        sprinkles = _small_components(flat > mask_threshold, max_sprinkle_area).reshape(low_res_logits.shape)
        out = torch.where(sprinkles, mask_threshold - HOLE_FILL_OFFSET, out)
    return out


def fill_holes_in_mask_scores(mask: torch.Tensor, max_area: float) -> torch.Tensor:
    """Turn small background regions of ``(N, 1, h, w)`` mask scores into weak foreground.

    Every 8-connected component of ``mask <= 0`` with at most ``max_area`` pixels (border-touching ones
    included) is set to 0.1. Returns a new tensor of the input's shape, dtype and device.
    """
    if max_area <= 0:
        raise ValueError(f"max_area must be positive, got {max_area}")
    holes = _small_components(mask <= 0, max_area)
    return torch.where(holes, VIDEO_HOLE_FILL_VALUE, mask)
