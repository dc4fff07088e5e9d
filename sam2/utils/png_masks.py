"""Mask PNG I/O for video object segmentation datasets.

Two folder layouts are used by VOS datasets and tools:

* **DAVIS**: ``<root>/<video>/<frame>.png`` is one index image per frame; the pixel value (palette
  index) is the object id, 0 is background.
* **SA-V**: ``<root>/<video>/<obj_id:03d>/<frame>.png`` is one binary mask per object and frame
  (any value > 0 is foreground).

Palette PNGs are written with the palette of the input masks, or the standard 256-colour DAVIS palette
(:data:`DAVIS_PALETTE`) when there is none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "DAVIS_PALETTE",
    "get_per_obj_mask",
    "load_ann_png",
    "load_masks_from_dir",
    "put_per_obj_mask",
    "read_mask_png",
    "save_ann_png",
    "save_masks_to_dir",
]

Palette = Sequence[int] | bytes


def _davis_palette() -> bytes:
    """The DAVIS / PASCAL VOC colour map: 256 RGB triplets (768 bytes).

    Bits 0, 1, 2 of the index go to the most significant free bit of R, G, B respectively; bits
    3, 4, 5 to the next bit, and so on (index 1 -> (128, 0, 0), 2 -> (0, 128, 0), 8 -> (64, 0, 0)).
    """
    table = bytearray()
    for index in range(256):
        rgb = [0, 0, 0]
        bits = index
        shift = 7
        while bits:
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
            shift -= 1
        table.extend(rgb)
    return bytes(table)


DAVIS_PALETTE: bytes = _davis_palette()


def _read_png(path: str | os.PathLike) -> tuple[np.ndarray, list[int] | None]:
    """(H, W) stored values and the palette (None unless a palette image) of a single-channel PNG."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask PNG not found: {str(path)!r}")
    try:
        with Image.open(path) as img:
            mode = img.mode
            array = np.array(img)
            palette = img.getpalette() if mode == "P" else None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL reports broken files with all three
        raise ValueError(f"cannot read mask PNG {str(path)!r}: {exc}") from exc
    if array.ndim != 2:
        raise ValueError(
            f"mask PNG {str(path)!r} has mode {mode!r} (shape {array.shape}); expected a single-channel "
            "image (palette, grayscale or 1-bit) whose values are object ids"
        )
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array, palette


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel mask PNG as stored: (H, W) palette indices / grey values.

    1-bit images become uint8 0/1. Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the file when it is not a readable single-channel image.
    """
    return _read_png(path)[0]


def load_ann_png(path: str | os.PathLike) -> tuple[np.ndarray, list[int] | None]:
    """Read an annotation PNG -> ((H, W) uint8 object ids, its palette or None)."""
    mask, palette = _read_png(path)
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(f"mask PNG {str(path)!r} has values outside 0..255; they cannot be object ids here")
    return mask.astype(np.uint8), palette


def save_ann_png(path: str | os.PathLike, mask: np.ndarray, palette: Palette | None = None) -> None:
    """Write a (H, W) uint8 index image as a palette PNG (``palette`` None -> :data:`DAVIS_PALETTE`)."""
    mask = np.asarray(mask)
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"expected a (H, W) uint8 mask, got {mask.dtype} {mask.shape} for {str(path)!r}")
    img = Image.fromarray(mask)  # mode "L"; putpalette turns it into a "P" image
    img.putpalette(bytes(palette) if palette else DAVIS_PALETTE)
    img.save(path)


def get_per_obj_mask(mask: np.ndarray) -> dict[int, np.ndarray]:
    """Split a (H, W) index image into ``{object_id: (H, W) bool}`` for every id > 0 present, ascending."""
    ids = np.unique(mask)
    return {int(i): mask == i for i in ids if i > 0}


def put_per_obj_mask(per_obj_mask: Mapping[int, np.ndarray], height: int, width: int) -> np.ndarray:
    """Merge ``{object_id: mask}`` (any shape with H*W elements) into a (H, W) uint8 index image.

    Objects are painted from the largest id to the smallest, so the smallest id wins where masks overlap.
    """
    merged = np.zeros((height, width), dtype=np.uint8)
    for obj_id in sorted(per_obj_mask, reverse=True):
        if not 0 < obj_id <= 255:
            raise ValueError(f"object id {obj_id} cannot be stored in a palette PNG (1..255)")
        merged[np.asarray(per_obj_mask[obj_id], dtype=bool).reshape(height, width)] = obj_id
    return merged


def _object_dirs(video_dir: Path) -> list[tuple[int, Path]]:
    """SA-V object folders of a video, as (object id, folder) sorted by id."""
    found = []
    for entry in video_dir.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            found.append((int(entry.name), entry))
        except ValueError:
            raise ValueError(f"SA-V object folder name must be an integer id, got {str(entry)!r}") from None
    return sorted(found)


def load_masks_from_dir(input_mask_dir: str | os.PathLike, video_name: str, frame_name: str,
                        per_obj_png_file: bool, allow_missing: bool = False
                        ) -> tuple[dict[int, np.ndarray], list[int] | None]:
    """Load the masks of one frame -> (``{object_id: (H, W) bool}``, palette of the last PNG read or None).

    DAVIS layout reads ``<dir>/<video>/<frame>.png``; SA-V layout (``per_obj_png_file``) reads
    ``<dir>/<video>/<obj>/<frame>.png`` for every object folder. A missing file raises
    ``FileNotFoundError`` unless ``allow_missing`` (then it is skipped).
    """
    video_dir = Path(input_mask_dir) / video_name
    palette = None
    if not per_obj_png_file:
        path = video_dir / f"{frame_name}.png"
        if allow_missing and not path.exists():
            return {}, None
        mask, palette = load_ann_png(path)
        return get_per_obj_mask(mask), palette
    if not video_dir.is_dir():
        raise FileNotFoundError(f"mask folder of video {video_name!r} not found: {str(video_dir)!r}")
    per_obj = {}
    for obj_id, obj_dir in _object_dirs(video_dir):
        path = obj_dir / f"{frame_name}.png"
        if allow_missing and not path.exists():
            continue
        mask, obj_palette = load_ann_png(path)
        per_obj[obj_id] = mask > 0
        palette = obj_palette or palette
    return per_obj, palette


def save_masks_to_dir(output_mask_dir: str | os.PathLike, video_name: str, frame_name: str,
                      per_obj_output_mask: Mapping[int, np.ndarray], height: int, width: int,
                      per_obj_png_file: bool, output_palette: Palette | None = None) -> None:
    """Write the masks of one frame in the DAVIS layout (one merged index PNG) or the SA-V layout.

    SA-V files hold 0/1 values (uint8) with the palette; object folders are named ``f"{id:03d}"``.
    """
    video_dir = Path(output_mask_dir) / video_name
    video_dir.mkdir(parents=True, exist_ok=True)
    if not per_obj_png_file:
        merged = put_per_obj_mask(per_obj_output_mask, height, width)
        save_ann_png(video_dir / f"{frame_name}.png", merged, output_palette)
        return
    for obj_id, obj_mask in per_obj_output_mask.items():
        obj_dir = video_dir / f"{obj_id:03d}"
        obj_dir.mkdir(exist_ok=True)
        binary = np.asarray(obj_mask, dtype=bool).reshape(height, width).astype(np.uint8)
        save_ann_png(obj_dir / f"{frame_name}.png", binary, output_palette)
