"""The non-overlap rule of multi-object outputs: each pixel belongs to at most one object."""

from __future__ import annotations

import torch

__all__ = ["apply_non_overlapping_constraints"]


def apply_non_overlapping_constraints(pred_masks: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` logits -> same shape, where per pixel only the object with the highest logit
    (the first one on ties) keeps its value and every other object is clamped to at most -10."""
    if pred_masks.size(0) == 1:
        return pred_masks
    winner = torch.argmax(pred_masks, dim=0, keepdim=True)  # (1, 1, H, W)
    index = torch.arange(pred_masks.size(0), device=pred_masks.device)[:, None, None, None]
    return torch.where(winner == index, pred_masks, torch.clamp(pred_masks, max=-10.0))
