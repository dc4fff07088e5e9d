"""Numpy mask operations of the video runtime: bilinear resizing (PyTorch's conventions) and the
tracking rules that turn the prompt_decoder graph's four mask tokens into one output per object.

Resizes are separable: ``out = Wy @ x @ Wx.T`` with the weight matrices of
:mod:`sam2.export.runtime_transforms` (PyTorch's bilinear ``align_corners=False`` rules, with and
without ``antialias``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sam2.export.runtime_transforms import antialias_weights, bilinear_weights

NO_OBJ_SCORE = -1024.0  # mask logit used where the object is predicted absent


def resize(x: np.ndarray, size: tuple[int, int], antialias: bool = False) -> np.ndarray:
    """Bilinear resize of the last two axes of ``x (..., H, W)`` to ``size = (h, w)``, float32."""
    h_in, w_in = x.shape[-2:]
    if (h_in, w_in) == tuple(size):
        return x.astype(np.float32, copy=False)
    weights = antialias_weights if antialias else bilinear_weights
    wy, wx = weights(h_in, size[0]), weights(w_in, size[1])
    return (wy @ x.astype(np.float32) @ wx.T).astype(np.float32)


@dataclass(frozen=True)
class StabilityRule:
    """Dynamic multimask fallback of the mask decoder (``decoder`` section of the model config)."""

    enabled: bool = False
    delta: float = 0.05
    thresh: float = 0.98


@dataclass
class HeadsResult:
    """One object's outputs on one frame: ``low_res (1, 1, S/4, S/4)`` logits, ``iou (1, 1)``,
    ``obj_ptr (1, C)``, ``object_score_logits (1, 1)``."""

    low_res: np.ndarray
    iou: np.ndarray
    obj_ptr: np.ndarray
    object_score_logits: np.ndarray


def stability_score(mask: np.ndarray, delta: float) -> np.float32:
    inter = np.float32(np.count_nonzero(mask > delta))
    union = np.float32(np.count_nonzero(mask > -delta))
    return np.float32(inter / union) if union > 0 else np.float32(1.0)


def gate_pointer(obj_ptr: np.ndarray, present: np.ndarray, no_obj_ptr: np.ndarray) -> np.ndarray:
    """Absent objects (``present (1, 1)`` = 0.0) get the learned ``no_obj_ptr (1, C)``."""
    return (present * obj_ptr + (1 - present) * no_obj_ptr).astype(np.float32)


def select_tracking_output(masks: np.ndarray, ious: np.ndarray, scores: np.ndarray, ptrs: np.ndarray,
                           multimask: bool, rule: StabilityRule, no_obj_ptr: np.ndarray) -> HeadsResult:
    """prompt_decoder outputs ``masks (1, 4, S/4, S/4)``, ``ious (1, 4)``, ``scores (1, 1)``,
    ``ptrs (1, 4, C)`` -> the tracker's choice.

    Multimask: the candidate (tokens 1-3) with the highest IoU, its pointer. Single mask: token 0,
    replaced by the best candidate when its stability score is below the threshold (if enabled); the
    pointer is always token 0's. Absent objects (score <= 0) get -1024 logits and ``no_obj_ptr``.
    """
    if multimask:
        best = int(np.argmax(ious[0, 1:])) + 1
        low, iou, ptr = masks[:, best:best + 1], ious[:, best:best + 1], ptrs[:, best]
    else:
        low, iou, ptr = masks[:, 0:1], ious[:, 0:1], ptrs[:, 0]
        if rule.enabled and stability_score(masks[0, 0], rule.delta) < np.float32(rule.thresh):
            best = int(np.argmax(ious[0, 1:])) + 1
            low, iou = masks[:, best:best + 1], ious[:, best:best + 1]
    present = (scores > 0).astype(np.float32)
    low = np.where(present[:, :, None, None] > 0, low, np.float32(NO_OBJ_SCORE)).astype(np.float32)
    return HeadsResult(low, iou.astype(np.float32), gate_pointer(ptr, present, no_obj_ptr), scores.astype(np.float32))


def mask_downsample(mask: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The model's ``mask_downsample`` conv (kernel = stride = 4): ``(1, 1, S, S)`` -> ``(1, 1, S/4, S/4)``."""
    k = weight.shape[-1]
    s = mask.shape[-1] // k
    blocks = mask.reshape(s, k, s, k).astype(np.float32)
    out = np.einsum("iajb,ab->ij", blocks, weight[0, 0]) + bias[0]
    return out.reshape(1, 1, s, s).astype(np.float32)
