"""Official per-frame video preprocessing: uint8 RGB frame -> normalized ``(3, S, S)`` float32 tensor.

PIL bicubic resize of the uint8 RGB frame to ``(S, S)``, ``/ 255`` in float64, cast to float32, then
``(x - mean) / std`` in float32 — bit-identical to the official JPEG-folder path (the normalization is a
per-level lookup table computed with that op sequence).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from sam2.utils.video_decode import check_array_frame

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=8)
def _normalization_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: normalized value of every uint8 level per channel.

    Each entry is computed with the official op sequence (float64 ``/ 255``, cast to float32, float32
    subtract, float32 divide), so looking values up is bit-identical to computing them per pixel.
    """
    levels = torch.from_numpy(np.arange(256, dtype=np.uint8) / 255.0).to(torch.float32)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1)
    return ((levels.view(1, 256) - mean_t) / std_t).numpy()


def _as_rgb_image(frame: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame if frame.mode == "RGB" else frame.convert("RGB")
    check_array_frame(frame, "frame")
    return Image.fromarray(np.ascontiguousarray(frame))


def preprocess_frame(
    rgb_uint8: np.ndarray | Image.Image,
    image_size: int,
    mean: Sequence[float] = IMG_MEAN,
    std: Sequence[float] = IMG_STD,
) -> torch.Tensor:
    """Official per-frame video preprocessing: (H, W, 3) uint8 RGB (or a PIL image) -> (3, S, S) float32.

    PIL bicubic resize to ``(S, S)`` (aspect ratio not kept), ``/ 255`` in float64, float32 cast, then
    ``(x - mean) / std`` in float32. Returns a CPU tensor.
    """
    resized = np.asarray(_as_rgb_image(rgb_uint8).resize((image_size, image_size), Image.Resampling.BICUBIC))
    table = _normalization_table(tuple(float(m) for m in mean), tuple(float(s) for s in std))
    out = np.empty((3, image_size, image_size), dtype=np.float32)
    for c in range(3):
        np.take(table[c], resized[..., c], out=out[c])
    return torch.from_numpy(out)
