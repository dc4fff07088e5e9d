"""Result writers of ``sam2 track``: each frame's masks are written as soon as the frame is tracked,
so that what was written stays valid when the run is stopped (Ctrl-C) or the source fails."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sam2.cli import media

FORMATS = ("png", "mp4", "jsonl")


class PngWriter:
    """``OUT/<frame>.png``: one DAVIS palette PNG per frame, pixel value = object id (0 = background).
    Each file is written under a temporary name and renamed, so no file is ever half written."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.target = folder

    def write(self, frame_idx: int, name: str, frame: np.ndarray, obj_ids: list[int], masks: np.ndarray) -> None:
        from sam2.utils.png_masks import put_per_obj_mask, save_ann_png

        h, w = frame.shape[:2]
        merged = put_per_obj_mask({int(o): masks[i] for i, o in enumerate(obj_ids)}, h, w)
        tmp = self.folder / f".{name}.partial.png"
        save_ann_png(tmp, merged)
        os.replace(tmp, self.folder / f"{name}.png")

    def close(self) -> None:
        pass


class JsonlWriter:
    """``masks.jsonl``: one JSON line per frame, ``{"frame": t, "name": ..., "objects": [{"id": ...,
    "area": ..., "rle": {"size": [H, W], "counts": ...}}]}`` (COCO RLE, pycocotools), flushed per line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.target = path
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def write(self, frame_idx: int, name: str, frame: np.ndarray, obj_ids: list[int], masks: np.ndarray) -> None:
        from pycocotools import mask as mask_utils

        objects = []
        if len(obj_ids):
            rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
            for obj_id, rle, mask in zip(obj_ids, rles, masks):
                rle["counts"] = rle["counts"].decode("utf-8")
                objects.append({"id": int(obj_id), "area": int(mask.sum()), "rle": rle})
        line = {"frame": frame_idx, "name": name, "objects": objects}
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class OverlayWriter:
    """``overlay.mp4``: the frames with the masks drawn in the DAVIS colour of their object id; opened
    with the first frame (its size), finished on close (also after Ctrl-C)."""

    def __init__(self, path: Path, fps: Fraction | float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.target = path
        self.fps = fps
        self._writer: Any = None

    def write(self, frame_idx: int, name: str, frame: np.ndarray, obj_ids: list[int], masks: np.ndarray) -> None:
        if self._writer is None:
            self._writer = media.Mp4Writer(self.target, frame.shape[1], frame.shape[0], self.fps)
        shown = media.overlay(frame, list(masks), [media.color(int(o)) for o in obj_ids]) if len(obj_ids) else frame
        self._writer.write(shown)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def open_writer(fmt: str, output: Path, fps: Fraction | float) -> Any:
    """The writer of ``fmt``: ``output`` is a folder, or the file itself when it has the format's
    extension (``.mp4`` / ``.jsonl``)."""
    if fmt == "png":
        return PngWriter(output)
    if fmt == "jsonl":
        return JsonlWriter(output if output.suffix.lower() == ".jsonl" else output / "masks.jsonl")
    return OverlayWriter(output if output.suffix.lower() == ".mp4" else output / "overlay.mp4", fps)
