"""NumPy image preprocessing and mask post-processing for the ONNX runtime (no PyTorch).

They reproduce :class:`sam2.utils.transforms.SAM2Transforms`: the image is resized to ``S x S`` with
an antialiased bilinear filter (a triangle filter stretched by the downscale factor, the rule of
``F.interpolate(..., antialias=True)``) and ImageNet-normalized; low-res mask logits are upsampled with
plain bilinear interpolation (``align_corners=False``). Both resizes are separable, written here as
two small weight matrices, ``out = R_h @ x @ R_w.T`` -- a C++ or JS port needs only these formulas.
"""

from __future__ import annotations

import functools

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@functools.lru_cache(maxsize=32)
def antialias_weights(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` float32 rows of the antialiased bilinear filter.

    Output pixel ``i`` is centred at ``c = scale * (i + 0.5)`` (``scale = in / out``); it reads the input
    pixels ``j`` in ``[int(c - support + 0.5), int(c + support + 0.5))`` (clipped to the image) with the
    weight ``max(0, 1 - |(j - c + 0.5) / stretch|)``, normalized to sum 1; ``support = stretch =
    max(scale, 1)``. For upscaling this is ordinary bilinear interpolation with edge clamping.
    """
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        centre = scale * (i + 0.5)
        lo = max(int(centre - stretch + 0.5), 0)
        hi = min(int(centre + stretch + 0.5), in_size)
        j = np.arange(lo, hi)
        w = np.clip(1.0 - np.abs((j - centre + 0.5) / stretch), 0.0, None)
        total = w.sum()
        weights[i, lo:hi] = w / total if total > 0 else w
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=32)
def bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` float32 rows of plain bilinear interpolation (``align_corners=False``).

    Output pixel ``i`` samples the input at ``s = max(scale * (i + 0.5) - 0.5, 0)``: weight ``1 - f`` on
    ``floor(s)`` and ``f = s - floor(s)`` on the next pixel (the last pixel repeats at the edge).
    """
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)  # float32 arithmetic throughout, as PyTorch's CPU kernel
    weights = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        src = max(f32(float(scale) * (i + 0.5) - 0.5), f32(0.0))  # one rounding, like the fused kernel
        i0 = min(int(np.floor(src)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        frac = min(max(src - f32(i0), f32(0.0)), f32(1.0))
        weights[i, i0] += f32(1.0) - frac
        weights[i, i1] += frac
    return weights.astype(np.float32)


def _resize(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``(..., H, W)`` -> ``(..., H', W')`` with row weights ``(H', H)`` and column weights ``(W', W)``."""
    return np.matmul(np.matmul(rows, x), cols.T)


def image_to_float(image: np.ndarray) -> np.ndarray:
    """HWC RGB uint8 (divided by 255) or float in [0, 1] -> ``(3, H, W)`` float32."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected an HxWx3 RGB numpy array or a PIL image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got an array of shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
            raise ValueError("a float image must hold finite values in [0, 1]; pass uint8 for 0-255 values")
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    raise ValueError(f"unsupported image dtype {image.dtype}; expected uint8 (0-255) or float in [0, 1]")


def preprocess_image(image: np.ndarray, size: int) -> np.ndarray:
    """HWC RGB image -> the encoder input ``(1, 3, S, S)`` float32 (resized, ImageNet-normalized)."""
    x = image_to_float(image)
    h, w = x.shape[1:]
    if (h, w) != (size, size):
        x = _resize(x, antialias_weights(h, size), antialias_weights(w, size))
    x = (x - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    return x[None].astype(np.float32)


def upscale_masks(logits: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """Low-res logits ``(B, M, h, w)`` -> ``(B, M, H, W)`` at the original image size (bilinear)."""
    h, w = logits.shape[-2:]
    return _resize(logits.astype(np.float32), bilinear_weights(h, orig_hw[0]), bilinear_weights(w, orig_hw[1]))


def stability_scores(logits: np.ndarray, delta: float) -> np.ndarray:
    """IoU of the masks thresholded at ``+delta`` and ``-delta``: ``(B, M, h, w)`` -> ``(B, M)``."""
    flat = logits.reshape(*logits.shape[:2], -1)
    inter = np.sum(flat > delta, axis=-1).astype(np.float32)
    union = np.sum(flat > -delta, axis=-1).astype(np.float32)
    return np.where(union > 0, inter / np.maximum(union, 1), np.float32(1.0))


def select_masks(low_res: np.ndarray, iou: np.ndarray, multimask_output: bool, dynamic: bool,
                 delta: float, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Pick the decoder outputs the caller asked for from all four tokens.

    ``low_res (B, 4, h, w)``, ``iou (B, 4)`` -> masks ``(B, M, h, w)`` and IoU ``(B, M)``: tokens 1-3 when
    ``multimask_output``; otherwise token 0, or (``dynamic``, the SAM 2 default) the best-IoU multimask
    candidate wherever token 0's stability score is below ``thresh``.
    """
    if multimask_output:
        return low_res[:, 1:], iou[:, 1:]
    single, single_iou = low_res[:, 0:1], iou[:, 0:1]
    if not dynamic:
        return single, single_iou
    rows = np.arange(low_res.shape[0])
    best = np.argmax(iou[:, 1:], axis=-1) + 1
    stable = stability_scores(single, delta) >= thresh
    masks = np.where(stable[..., None, None], single, low_res[rows, best][:, None])
    scores = np.where(stable, single_iou, iou[rows, best][:, None])
    return masks, scores
