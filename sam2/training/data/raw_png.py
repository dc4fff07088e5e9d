"""DAVIS / MOSE layout (the official ``PNGRawDataset``).

``img_folder/<video>/<frame>.jpg`` with, per frame, either one palette (or grayscale index) PNG
``gt_folder/<video>/<frame>.png`` whose non-zero values are object ids, or one binary PNG per object
``gt_folder/<video>/<k>/<frame>.png`` (object id ``k + 1``; a missing file is an empty mask).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam2.training.data.raw_common import (
    DatasetError,
    FrameRef,
    RawVideo,
    check_mask_size,
    frame_index,
    image_size,
    read_frames,
    require_folder,
    select_names,
)
from sam2.utils.png_masks import load_ann_png
from sam2.utils.video_decode import IMAGE_EXTENSIONS, JPEG_EXTENSIONS

logger = logging.getLogger(__name__)


def list_frames(video_dir: Path) -> list[Path]:
    """Frame files of a video folder sorted by number (JPEGs when there are any, else other images)."""
    files = [p for p in video_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
    chosen = [p for p in files if p.suffix.lower() in JPEG_EXTENSIONS]
    chosen = chosen or [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(chosen, key=lambda p: (not p.stem.isdecimal(), int(p.stem) if p.stem.isdecimal() else 0, p.name))


def read_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 ids of a mask PNG; a missing or unreadable file raises :class:`DatasetError`."""
    try:
        return load_ann_png(path)[0]
    except (FileNotFoundError, ValueError) as exc:
        raise DatasetError(str(exc)) from exc


def ids_by_first_appearance(mask: np.ndarray) -> list[int]:
    """Non-zero values of ``mask`` in order of first appearance in the flattened image."""
    ids, first = np.unique(mask.reshape(-1), return_index=True)
    return [int(i) for _, i in sorted(zip(first, ids, strict=True)) if i != 0]


class PaletteSegments:
    """One index PNG per frame: ``gt_dir/<frame stem>.png``; mask of object ``k`` = (pixel == k)."""

    def __init__(self, gt_dir: Path) -> None:
        self.gt_dir = gt_dir
        self._cached: tuple[Path, np.ndarray] | None = None

    def path(self, frame: FrameRef) -> Path:
        return self.gt_dir / f"{frame.stem}.png"

    def _read(self, frame: FrameRef) -> np.ndarray:
        path = self.path(frame)
        if self._cached is None or self._cached[0] != path:
            self._cached = (path, read_mask(path))
        return self._cached[1]

    def visible_objects(self, frame: FrameRef) -> list[int]:
        return ids_by_first_appearance(self._read(frame))

    def load(self, frame: FrameRef, obj_ids: Sequence[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        mask = self._read(frame)
        check_mask_size(mask.shape, size, repr(str(self.path(frame))), frame.describe())
        return {k: mask == k for k in obj_ids}


class PerObjectSegments:
    """One binary PNG per object and frame: ``gt_dir/<k>/<frame stem>.png``, object id ``k + 1``."""

    def __init__(self, obj_dirs: dict[int, Path]) -> None:
        self.obj_dirs = obj_dirs

    def _read(self, obj_id: int, frame: FrameRef) -> np.ndarray | None:
        path = self.obj_dirs[obj_id] / f"{frame.stem}.png"
        return read_mask(path) > 0 if path.is_file() else None

    def visible_objects(self, frame: FrameRef) -> list[int]:
        visible = []
        for obj_id in self.obj_dirs:
            mask = self._read(obj_id, frame)
            if mask is not None and mask.any():
                visible.append(obj_id)
        return visible

    def load(self, frame: FrameRef, obj_ids: Sequence[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        out = {}
        for obj_id in obj_ids:
            mask = self._read(obj_id, frame)
            if mask is not None:
                check_mask_size(mask.shape, size, repr(str(self.obj_dirs[obj_id] / f"{frame.stem}.png")),
                                frame.describe())
                out[obj_id] = mask
        return out


def object_dirs(video_gt: Path) -> dict[int, Path]:
    """``{object id: folder}`` of a per-object mask folder (folder ``k`` holds object ``k + 1``)."""
    found = {}
    for entry in sorted(video_gt.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            if not entry.name.isdecimal():
                raise DatasetError(f"per-object mask folder name must be a number, got {str(entry)!r}")
            found[int(entry.name) + 1] = entry
    return found


@dataclass
class _Video:
    name: str
    frames: list[FrameRef]
    gt_dir: Path
    palette: bool
    obj_dirs: dict[int, Path]


class PNGRawDataset:
    """Videos of the DAVIS / MOSE layout; checks the layout (folders, frames, one mask per frame) at once.

    ``is_palette`` None detects the layout per video (subfolders in the mask folder -> per-object PNGs).
    ``single_object_mode`` makes every object folder its own video; ``frames_sampling_mult`` lists every
    video once per frame (longer videos are sampled more often).
    """

    def __init__(self, img_folder: str, gt_folder: str, file_list_txt: str | None = None,
                 excluded_videos_list_txt: str | None = None, sample_rate: int = 1,
                 is_palette: bool | None = None, single_object_mode: bool = False,
                 truncate_video: int = -1, frames_sampling_mult: bool = False) -> None:
        self.img_folder = require_folder(img_folder, "image folder (img_folder)")
        self.gt_folder = require_folder(gt_folder, "mask folder (gt_folder)")
        listed = [p.name for p in self.img_folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if not listed:
            raise DatasetError(f"image folder {str(self.img_folder)!r} has no video subfolders "
                               "(expected img_folder/<video>/<frame>.jpg)")
        names = select_names(listed, file_list_txt, excluded_videos_list_txt, self.img_folder)
        self.videos = [self._scan(name, sample_rate, is_palette, truncate_video) for name in names]
        entries: list[tuple[int, int | None]] = []
        for pos, video in enumerate(self.videos):
            objs: list[int | None] = list(video.obj_dirs) if single_object_mode and not video.palette else [None]
            repeat = len(video.frames) if frames_sampling_mult else 1
            entries.extend((pos, obj) for obj in objs for _ in range(repeat))
        self.entries = entries

    def _scan(self, name: str, sample_rate: int, is_palette: bool | None, truncate: int) -> _Video:
        video_dir = self.img_folder / name
        paths = list_frames(video_dir)
        if not paths:
            raise DatasetError(f"video folder {str(video_dir)!r} has no image frames")
        gt_dir = self.gt_folder / name
        if not gt_dir.is_dir():
            raise DatasetError(f"mask folder {str(gt_dir)!r} of video {name!r} does not exist")
        frames = [FrameRef(frame_index(p.stem, i), p, p.stem) for i, p in enumerate(paths)][::sample_rate]
        if truncate > 0:
            frames = frames[:truncate]
        obj_dirs = object_dirs(gt_dir)
        palette = not obj_dirs if is_palette is None else is_palette
        if palette:
            pngs = {p.stem for p in gt_dir.glob("*.png")}
            missing = [f for f in frames if f.stem not in pngs]
            if missing:
                raise DatasetError(f"{len(missing)} frames of video {name!r} have no mask PNG, e.g. frame "
                                   f"{str(missing[0].image_path)!r} has no {str(gt_dir / (missing[0].stem + '.png'))!r}")
        elif not obj_dirs:
            raise DatasetError(f"mask folder {str(gt_dir)!r} has no per-object subfolders "
                               "(expected gt_folder/<video>/<object>/<frame>.png)")
        return _Video(name, frames, gt_dir, palette, obj_dirs)

    def __len__(self) -> int:
        return len(self.entries)

    def get_video(self, idx: int) -> RawVideo:
        pos, obj = self.entries[idx]
        video = self.videos[pos]
        if video.palette:
            return RawVideo(video.name, idx, video.frames, PaletteSegments(video.gt_dir))
        obj_dirs = video.obj_dirs if obj is None else {obj: video.obj_dirs[obj]}
        return RawVideo(video.name, idx, video.frames, PerObjectSegments(obj_dirs))

    def _mask_paths(self, video: _Video, frame: FrameRef) -> list[Path]:
        if video.palette:
            return [video.gt_dir / f"{frame.stem}.png"]
        return [d / f"{frame.stem}.png" for d in video.obj_dirs.values() if (d / f"{frame.stem}.png").is_file()]

    def quick_check(self) -> None:
        """Headers of the first frame and its masks of every video: readable and of the same size."""
        for video in self.videos:
            self._check_frame(video, video.frames[0], decode=False)

    def full_check(self) -> None:
        """Decode every frame and mask; sizes must match."""
        for video in self.videos:
            for frame in video.frames:
                self._check_frame(video, frame, decode=True)

    def _check_frame(self, video: _Video, frame: FrameRef, decode: bool) -> None:
        size = read_frames([frame])[0].size[::-1] if decode else image_size(frame.image_path)
        for path in self._mask_paths(video, frame):
            shape = read_mask(path).shape if decode else image_size(path)
            check_mask_size(shape, size, repr(str(path)), frame.describe())

    def longest_video(self) -> int:
        return max(len(v.frames) for v in self.videos)
