"""COCO run-length encodings and polygons -> masks, through pycocotools."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def _mask_utils() -> Any:
    from pycocotools import mask as mask_utils

    return mask_utils


def to_compressed_rle(segmentation: Any, height: int, width: int) -> dict:
    """A COCO ``segmentation`` (polygon list, uncompressed RLE with a ``counts`` list, or compressed RLE)
    as one compressed RLE of an ``height x width`` image. Raises ``ValueError`` for anything else."""
    mask_utils = _mask_utils()
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            raise ValueError("polygon segmentation without any polygon of 3 or more points")
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if isinstance(segmentation["counts"], list):
            return mask_utils.frPyObjects(segmentation, *segmentation["size"])
        counts = segmentation["counts"]
        return {"size": list(segmentation["size"]),
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise ValueError(f"unknown segmentation of type {type(segmentation).__name__}; expected polygons or an RLE")


def rle_size(rle: dict) -> tuple[int, int]:
    h, w = rle["size"]
    return int(h), int(w)


def rle_area(rle: dict) -> int:
    return int(_mask_utils().area(to_compressed_rle(rle, *rle_size(rle))))


def decode_rle(rle: dict) -> np.ndarray:
    """``(H, W)`` bool mask of an RLE (compressed or not)."""
    compressed = to_compressed_rle(rle, *rle_size(rle))
    with warnings.catch_warnings():  # pycocotools' own numpy-2 deprecation notice, not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        return _mask_utils().decode(compressed).astype(bool)
