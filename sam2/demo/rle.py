"""COCO run-length encoding of masks, the only way masks travel between the demo and the page."""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2.demo.errors import DemoError


def encode(masks: np.ndarray) -> list[dict[str, Any]]:
    """``(N, H, W)`` bool masks -> N COCO RLEs ``{"size": [H, W], "counts": str}`` (pycocotools)."""
    from pycocotools import mask as mask_utils

    if masks.shape[0] == 0:
        return []
    stacked = np.asfortranarray(np.moveaxis(masks.astype(np.uint8), 0, -1))  # (H, W, N)
    rles = mask_utils.encode(stacked)
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def decode(rle: Any, height: int, width: int, what: str = "mask") -> np.ndarray:
    """A COCO RLE (compressed string counts, or uncompressed integer counts) -> ``(H, W)`` bool mask.

    Raises :class:`DemoError` 422 when it is malformed or not of the frame's size.
    """
    from pycocotools import mask as mask_utils

    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise DemoError(422, f"{what}: expected a COCO RLE object {{\"size\": [h, w], \"counts\": ...}}")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise DemoError(422, f"{what}: \"size\" must be [height, width], got {size!r}")
    if tuple(size) != (height, width):
        raise DemoError(422, f"{what}: the RLE is {size[1]}x{size[0]} (w x h) but the frame is {width}x{height}")
    counts = rle["counts"]
    try:
        # pycocotools does not check run lengths: check them here before it writes any pixel
        runs = _parse_counts(counts) if isinstance(counts, str) else counts
        if not (isinstance(runs, list) and all(isinstance(c, int) and c >= 0 for c in runs)):
            raise ValueError("\"counts\" must be a string (compressed) or a list of non-negative integers")
        if sum(runs) != height * width:
            raise ValueError(f"the run lengths add up to {sum(runs)} pixels, not {height * width}")
    except ValueError as exc:
        raise DemoError(422, f"{what}: not a valid COCO RLE ({exc})") from None
    mask = mask_utils.decode(mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width))
    return mask.astype(bool)


def _parse_counts(text: str) -> list[int]:
    """Run lengths of a compressed COCO RLE string (6-bit groups offset by 48, 5 value bits each, the
    sign bit on the last group; from the third run on, values are differences to the run two back)."""
    runs: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise ValueError("the counts string ends in the middle of a number")
            group = ord(text[pos]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"character {text[pos]!r} cannot appear in a counts string")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def area_and_bbox(mask: np.ndarray) -> tuple[int, list[int]]:
    """Pixel count and ``[x, y, w, h]`` box of a ``(H, W)`` bool mask (zeros when empty)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0, [0, 0, 0, 0]
    return int(len(xs)), [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
