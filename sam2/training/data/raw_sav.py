"""SA-V layout (the official ``JSONRawDataset``).

Masks: ``gt_folder/<video>_manual.json`` with a ``masklet`` (or ``masks``) list, one entry per annotated
frame (every ``ann_every``-th frame of the video, or ``frames_fps / fps`` when the JSON has ``fps``),
each a list of COCO RLEs per object (``None`` where not annotated); object id = position in that list.
Frames: ``img_folder/<video>/<idx:05d>.jpg`` named by their original index (the official extraction
keeps every 4th frame), or the video file ``img_folder/<video>.mp4`` from which frames
``0, ann_every, 2 * ann_every, ...`` are decoded. With ``rm_unannotated`` only frames whose annotation
exists and has no ``None`` are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sam2.training.data.raw_common import (
    DatasetError,
    FrameRef,
    RawVideo,
    check_mask_size,
    image_size,
    read_frames,
    require_file,
    require_folder,
    select_names,
)
from sam2.training.data.raw_png import list_frames
from sam2.training.data.rle import decode_rle, rle_area, rle_size
from sam2.utils.video_decode import VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)


def read_masklets(path: Path, ann_every: int, frames_fps: int) -> tuple[list[Any], int]:
    """(per annotated frame: list of RLE or None per object, ann_every) of an SA-V JSON file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read SA-V annotation {str(path)!r}: {exc}") from exc
    if isinstance(data, list):
        return data, ann_every
    if not isinstance(data, dict) or not ("masklet" in data or "masks" in data):
        raise DatasetError(f"SA-V annotation {str(path)!r} has no 'masklet' (or 'masks') list")
    annots = data["masklet"] if "masklet" in data else data["masks"]
    if "fps" in data:
        fps = int(data["fps"][0] if isinstance(data["fps"], list) else data["fps"])
        if fps <= 0 or frames_fps % fps:
            raise DatasetError(f"SA-V annotation {str(path)!r}: frames_fps {frames_fps} is not a multiple of "
                               f"its fps {fps}")
        ann_every = frames_fps // fps
    return annots, ann_every


def check_video_header(path: Path) -> None:
    """Open the container (no decoding); a file without a readable video stream raises DatasetError."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"video file {str(path)!r} has no video stream")
    except av.FFmpegError as exc:
        raise DatasetError(f"cannot open video {str(path)!r}: {exc}") from exc


class JSONSegments:
    """Masks of one SA-V video, decoded on demand."""

    def __init__(self, path: Path, annots: list[Any], ann_every: int) -> None:
        self.path, self.annots, self.ann_every = path, annots, ann_every

    def frame_annots(self, frame: FrameRef) -> list[Any]:
        if frame.index % self.ann_every or frame.index // self.ann_every >= len(self.annots):
            return []
        return self.annots[frame.index // self.ann_every] or []

    def visible_objects(self, frame: FrameRef) -> list[int]:
        return [k for k, rle in enumerate(self.frame_annots(frame)) if rle is not None and rle_area(rle) > 0]

    def load(self, frame: FrameRef, obj_ids: Sequence[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        annots = self.frame_annots(frame)
        out = {}
        for k in obj_ids:
            if k < len(annots) and annots[k] is not None:
                what = f"object {k} on frame {frame.index} of {str(self.path)!r}"
                check_mask_size(rle_size(annots[k]), size, what, frame.describe())
                out[k] = decode_rle(annots[k])
        return out


class JSONRawDataset:
    """SA-V videos; checks at once that every video has its frames (folder or mp4) and its JSON."""

    def __init__(self, img_folder: str, gt_folder: str, file_list_txt: str | None = None,
                 excluded_videos_list_txt: str | None = None, sample_rate: int = 1,
                 rm_unannotated: bool = True, ann_every: int = 4, frames_fps: int = 24) -> None:
        self.img_folder = require_folder(img_folder, "image folder (img_folder)")
        self.gt_folder = require_folder(gt_folder, "annotation folder (gt_folder)")
        self.sample_rate, self.rm_unannotated = sample_rate, rm_unannotated
        self.ann_every, self.frames_fps = ann_every, frames_fps
        self.sources: dict[str, Path] = {}
        for p in self.img_folder.iterdir():
            if p.name.startswith("."):
                continue
            if p.is_dir() or (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS):
                self.sources.setdefault(p.stem if p.is_file() else p.name, p)
        if not self.sources:
            raise DatasetError(f"image folder {str(self.img_folder)!r} has no video folders or video files")
        self.names = select_names(list(self.sources), file_list_txt, excluded_videos_list_txt, self.img_folder)
        for name in self.names:
            require_file(self.json_path(name), f"SA-V annotation of video {name!r}")

    def json_path(self, name: str) -> Path:
        return self.gt_folder / f"{name}_manual.json"

    def __len__(self) -> int:
        return len(self.names)

    def get_video(self, idx: int) -> RawVideo:
        name = self.names[idx]
        annots, ann_every = read_masklets(self.json_path(name), self.ann_every, self.frames_fps)
        source = self.sources[name]
        if source.is_dir():
            frames = [FrameRef(int(p.stem), p, p.stem) for p in list_frames(source) if p.stem.isdecimal()]
            if not frames:
                raise DatasetError(f"video folder {str(source)!r} has no frames named by their index (00000.jpg)")
        else:
            frames = [FrameRef(i, source, f"{i:05d}", video_frame=i)
                      for i in range(0, len(annots) * ann_every, ann_every)]
        frames = frames[::self.sample_rate]
        if self.rm_unannotated:
            valid = {i * ann_every for i, a in enumerate(annots) if a is not None and None not in a}
            frames = [f for f in frames if f.index in valid]
        return RawVideo(name, idx, frames, JSONSegments(self.json_path(name), annots, ann_every))

    def quick_check(self) -> None:
        """Header of the first frame of every frame folder; container header of every video file."""
        for name in self.names:
            source = self.sources[name]
            if source.is_dir():
                paths = list_frames(source)
                if not paths:
                    raise DatasetError(f"video folder {str(source)!r} has no image frames")
                image_size(paths[0])
            else:
                check_video_header(source)

    def full_check(self) -> None:
        """Read every annotation and decode every listed frame; RLE sizes must match the frames."""
        for idx in range(len(self)):
            video = self.get_video(idx)
            if not video.frames:
                raise DatasetError(f"video {video.name!r} has no annotated frame")
            for frame, img in zip(video.frames, read_frames(video.frames), strict=True):
                annots = video.segments.frame_annots(frame)
                video.segments.load(frame, range(len(annots)), img.size[::-1])
