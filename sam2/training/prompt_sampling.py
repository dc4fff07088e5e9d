"""Prompt samplers of the official training recipe: boxes from masks and clicks from errors.

Every function works on a batch of single-channel masks ``(B, 1, H, W)`` in the model frame and
returns clicks as ``points (B, N, 2)`` float32 ``(x, y)`` pixel indices with ``labels (B, N)`` int32
(1 positive, 0 negative, 2 / 3 box corners). The random ones take their uniform draws from the
torch generator of the masks' device, in one ``torch.rand`` call each, or from ``draws`` when given
(tests replay recorded draws that way).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from sam2.tracking.sam_heads import PointInputs

SAMPLING_METHODS = ("uniform", "center")


def _check_masks(name: str, masks: torch.Tensor) -> None:
    if masks.dtype != torch.bool or masks.dim() != 4 or masks.size(1) != 1:
        raise ValueError(f"{name} must be a bool tensor (B, 1, H, W), got {masks.dtype} {tuple(masks.shape)}")


def _check_pair(gt_masks: torch.Tensor, pred_masks: torch.Tensor | None) -> torch.Tensor:
    """The prediction (all False when ``None``), checked against the ground truth."""
    _check_masks("gt_masks", gt_masks)
    if pred_masks is None:
        return torch.zeros_like(gt_masks)
    _check_masks("pred_masks", pred_masks)
    if pred_masks.shape != gt_masks.shape:
        raise ValueError(f"pred_masks {tuple(pred_masks.shape)} and gt_masks {tuple(gt_masks.shape)} differ in shape")
    return pred_masks


def _check_draws(draws: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(draws.shape) != shape:
        raise ValueError(f"draws must have shape {shape} (the torch.rand call replaced), got {tuple(draws.shape)}")


def mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` bool -> ``(B, 1, 4)`` int32 ``(x_min, y_min, x_max, y_max)``, maxima inclusive.

    An empty mask gives ``(W, H, -1, -1)``.
    """
    _check_masks("masks", masks)
    b, _, h, w = masks.shape
    xs = torch.arange(w, device=masks.device, dtype=torch.int32).expand(b, 1, h, w)
    ys = torch.arange(h, device=masks.device, dtype=torch.int32)[:, None].expand(b, 1, h, w)
    x_min = torch.where(masks, xs, w).flatten(-2).amin(-1)
    x_max = torch.where(masks, xs, -1).flatten(-2).amax(-1)
    y_min = torch.where(masks, ys, h).flatten(-2).amin(-1)
    y_max = torch.where(masks, ys, -1).flatten(-2).amax(-1)
    return torch.stack((x_min, y_min, x_max, y_max), dim=-1)


def sample_box_points(masks: torch.Tensor, noise: float = 0.1, noise_bound: int = 20, top_left_label: int = 2,
                      bottom_right_label: int = 3,
                      draws: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The bounding box of each mask as two corner points, jittered by up to ``noise`` of its width /
    height (at most ``noise_bound`` pixels) and clamped to the frame.

    ``masks (B, 1, H, W)`` bool -> ``points (B, 2, 2)``, ``labels (B, 2)`` int32. ``draws (B, 1, 4)``
    replaces ``torch.rand``. With ``noise == 0`` the int32 box is returned unclamped. An empty mask
    has no box (the result is meaningless, as in the official code; callers should not ask for one).
    """
    box = mask_to_box(masks)
    b, _, h, w = masks.shape
    device = masks.device
    labels = torch.tensor([top_left_label, bottom_right_label], dtype=torch.int32, device=device).repeat(b, 1)
    if noise > 0.0:
        bound = torch.tensor(noise_bound, device=device)
        max_dx = torch.minimum((box[..., 2] - box[..., 0]) * noise, bound)
        max_dy = torch.minimum((box[..., 3] - box[..., 1]) * noise, bound)
        if draws is None:
            draws = torch.rand(b, 1, 4, device=device)
        _check_draws(draws, (b, 1, 4))
        jitter = (2 * draws.to(device) - 1) * torch.stack((max_dx, max_dy, max_dx, max_dy), dim=-1)
        upper = torch.tensor([w, h, w, h], device=device) - 1
        box = (box + jitter).clamp(torch.zeros_like(upper), upper)
    return box.reshape(-1, 2, 2), labels


def sample_random_points_from_errors(gt_masks: torch.Tensor, pred_masks: torch.Tensor | None, num_pt: int = 1,
                                     draws: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_pt`` clicks drawn uniformly from the error pixels ("uniform" method).

    A false-positive pixel gives a negative click, a false negative a positive one. Without any
    error the click is a negative one in the background (``(0, 0)`` negative if there is none).
    ``pred_masks = None`` means an empty prediction, so the click falls inside the ground truth.
    ``draws (B, num_pt, H, W, 2)`` replaces ``torch.rand``. -> ``points (B, num_pt, 2)``,
    ``labels (B, num_pt)``.
    """
    pred_masks = _check_pair(gt_masks, pred_masks)
    if num_pt < 0:
        raise ValueError(f"num_pt must be >= 0, got {num_pt}")
    b, _, h, w = gt_masks.shape
    false_pos = ~gt_masks & pred_masks
    false_neg = gt_masks & ~pred_masks
    all_correct = torch.all((gt_masks == pred_masks).flatten(2), dim=2)[..., None, None]
    if draws is None:
        draws = torch.rand(b, num_pt, h, w, 2, device=gt_masks.device)
    _check_draws(draws, (b, num_pt, h, w, 2))
    negative = draws[..., 0] * (false_pos | (all_correct & ~gt_masks))
    positive = draws[..., 1] * false_neg
    index = torch.stack((negative, positive), dim=-1).flatten(2).argmax(dim=2)
    labels = (index % 2).to(torch.int32)
    pixel = index // 2
    points = torch.stack((pixel % w, pixel // w), dim=2).to(torch.float32)
    return points, labels


def _distance_to_background(region: np.ndarray, padding: bool) -> np.ndarray:
    """Exact Euclidean distance of every True pixel of ``region (H, W)`` to the nearest False one
    (0 on False pixels), float32. ``padding`` puts a False border around the frame first."""
    if padding:
        region = np.pad(region, 1, mode="constant")
    if not region.any():
        dist = np.zeros(region.shape, dtype=np.float32)
    elif region.all():  # no background at all: every pixel equally far
        dist = np.full(region.shape, np.inf, dtype=np.float32)
    else:
        dist = distance_transform_edt(region).astype(np.float32)
    return dist[1:-1, 1:-1] if padding else dist


def sample_one_point_from_error_center(gt_masks: torch.Tensor, pred_masks: torch.Tensor | None,
                                       padding: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One click per mask at the pixel deepest inside the larger error region ("center" method).

    Positive at the false-negative pixel farthest from a correct pixel if that distance is strictly
    larger than the false-positive one, else negative at the false-positive pixel (first maximum
    in raster order; ``(0, 0)`` negative without any error). -> ``points (B, 1, 2)``, ``labels (B, 1)``.
    """
    pred_masks = _check_pair(gt_masks, pred_masks)
    b, _, _, w = gt_masks.shape
    false_neg = (gt_masks & ~pred_masks)[:, 0].cpu().numpy()
    false_pos = (~gt_masks & pred_masks)[:, 0].cpu().numpy()
    points = torch.zeros(b, 1, 2, dtype=torch.float32)
    labels = torch.ones(b, 1, dtype=torch.int32)
    for i in range(b):
        fn_dist = _distance_to_background(false_neg[i], padding).reshape(-1)
        fp_dist = _distance_to_background(false_pos[i], padding).reshape(-1)
        fn_idx, fp_idx = int(np.argmax(fn_dist)), int(np.argmax(fp_dist))
        positive = bool(fn_dist[fn_idx] > fp_dist[fp_idx])
        idx = fn_idx if positive else fp_idx
        points[i, 0, 0], points[i, 0, 1] = idx % w, idx // w
        labels[i, 0] = int(positive)
    return points.to(gt_masks.device), labels.to(gt_masks.device)


def get_next_point(gt_masks: torch.Tensor, pred_masks: torch.Tensor | None,
                   method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One click per mask by ``method``: ``"uniform"`` (training) or ``"center"``."""
    if method == "uniform":
        return sample_random_points_from_errors(gt_masks, pred_masks)
    if method == "center":
        return sample_one_point_from_error_center(gt_masks, pred_masks)
    raise ValueError(f"unknown point sampling method {method!r}; expected one of {SAMPLING_METHODS}")


def concat_points(old_point_inputs: PointInputs | None, new_points: torch.Tensor,
                  new_labels: torch.Tensor) -> PointInputs:
    """Append clicks ``(B, N, 2)`` / ``(B, N)`` to the existing ones (or start a new set)."""
    if old_point_inputs is None:
        return PointInputs(new_points, new_labels)
    return PointInputs(torch.cat([old_point_inputs.point_coords, new_points], dim=1),
                       torch.cat([old_point_inputs.point_labels, new_labels], dim=1))
