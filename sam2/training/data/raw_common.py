"""What every raw dataset gives the sampler: videos as lists of frames plus a loader of object masks.

A raw dataset (:mod:`.raw_png`, :mod:`.raw_sav`, :mod:`.raw_images`) has ``len()`` and
``get_video(idx) -> RawVideo``. Images are 1-frame videos. Frames are read as PIL RGB images, from an
image file or decoded from a video file; masks as ``(H, W)`` bool arrays. Every problem with a file
raises :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from sam2.utils.safe_names import plain_name

logger = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset that cannot be read: the message names the file or folder and the problem."""


@dataclass(frozen=True)
class FrameRef:
    """One frame of a raw video.

    index:       frame index in the source video (object identifiers, SA-V annotation lookup)
    image_path:  the image file, or the video file when ``video_frame`` is set
    stem:        file stem, used to find the frame's mask PNG
    video_frame: frame number to decode from the video file ``image_path``
    """

    index: int
    image_path: Path
    stem: str = ""
    video_frame: int | None = None

    def describe(self) -> str:
        if self.video_frame is None:
            return repr(str(self.image_path))
        return f"frame {self.video_frame} of {str(self.image_path)!r}"


class SegmentLoader(Protocol):
    """Object masks of one video."""

    def visible_objects(self, frame: FrameRef) -> list[int]:
        """Ids of the objects with a non-empty mask on ``frame`` (candidates for sampling)."""
        ...

    def load(self, frame: FrameRef, obj_ids: Sequence[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        """``{obj_id: (H, W) bool}`` for the requested objects annotated on ``frame`` (others absent).

        ``size`` is the ``(H, W)`` of the frame; a mask of another size raises :class:`DatasetError`.
        """
        ...


@dataclass
class RawVideo:
    """A video (or an image as a 1-frame video) and its masks; ``video_id`` is its dataset index."""

    name: str
    video_id: int
    frames: list[FrameRef]
    segments: SegmentLoader


class RawDataset(Protocol):
    def __len__(self) -> int: ...

    def get_video(self, idx: int) -> RawVideo: ...

    def quick_check(self) -> None:
        """Cheap start-up checks (headers of the first frame/mask of every video)."""
        ...

    def full_check(self) -> None:
        """Decode every frame and mask the dataset can sample."""
        ...


# ----------------------------------------------------------------------------------- files


def require_folder(path: str | os.PathLike, what: str) -> Path:
    """The folder ``path``; a missing, non-folder or empty one raises :class:`DatasetError`."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DatasetError(f"{what} {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise DatasetError(f"{what} {str(folder)!r} is not a folder")
    if not any(not p.name.startswith(".") for p in folder.iterdir()):
        raise DatasetError(f"{what} {str(folder)!r} is empty")
    return folder


def require_file(path: str | os.PathLike, what: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DatasetError(f"{what} {str(file)!r} does not exist")
    return file


def read_name_list(path: str | os.PathLike | None, what: str) -> list[str] | None:
    """Names (extension stripped) of a list file, one per line; None when ``path`` is None."""
    if path is None:
        return None
    file = require_file(path, what)
    names = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if line.strip():
            try:
                names.append(plain_name(os.path.splitext(line.strip())[0], f"{what} {str(file)!r} line {number}:"))
            except ValueError as exc:
                raise DatasetError(str(exc)) from None
    if not names and what.startswith("file list"):
        raise DatasetError(f"{what} {str(file)!r} is empty")
    return names


def select_names(listed: list[str], file_list_txt: str | None, excluded_txt: str | None,
                 where: Path) -> list[str]:
    """Sorted video names: the file list (or ``listed``) minus the excluded ones.

    Names of the file list that are not in ``listed`` raise :class:`DatasetError` naming ``where``.
    """
    wanted = read_name_list(file_list_txt, "file list (file_list_txt)")
    excluded = set(read_name_list(excluded_txt, "excluded list (excluded_videos_list_txt)") or [])
    if wanted is not None:
        present = set(listed)
        missing = [n for n in wanted if n not in present]
        if missing:
            raise DatasetError(f"{len(missing)} entries of file list {file_list_txt!r} are not in "
                               f"{str(where)!r}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    names = sorted(set(wanted if wanted is not None else listed) - excluded)
    if not names:
        raise DatasetError(f"no videos/images left in {str(where)!r} after the file list and exclusions")
    return names


def frame_index(stem: str, position: int) -> int:
    """The frame index a file name stands for: its number (``00012`` -> 12), else its position."""
    return int(stem) if stem.isdecimal() else position


# ----------------------------------------------------------------------------------- reading


def read_frames(frames: Sequence[FrameRef]) -> list[Image.Image]:
    """The frames as PIL RGB images (a frame listed twice is decoded once, a video file opened once).

    An unreadable file raises :class:`DatasetError` naming it.
    """
    decoded: dict[FrameRef, Image.Image] = {}
    by_video: dict[Path, list[FrameRef]] = {}
    for frame in frames:
        if frame.video_frame is not None:
            by_video.setdefault(frame.image_path, []).append(frame)
        elif frame not in decoded:
            decoded[frame] = read_image_file(frame.image_path)
    for path, refs in by_video.items():
        wanted = sorted({f.video_frame for f in refs if f.video_frame is not None})
        arrays = read_video_frames(path, wanted)
        for f in refs:
            decoded[f] = Image.fromarray(arrays[f.video_frame])
    return [decoded[f].copy() if frames.index(f) != i else decoded[f] for i, f in enumerate(frames)]


def read_image_file(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"image {str(path)!r} does not exist") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read image {str(path)!r}: {exc}") from exc


def read_video_frames(path: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """``{idx: (H, W, 3) uint8 RGB}`` for frames ``indices`` (ascending) of a video file (PyAV)."""
    from sam2.utils.video_decode import VideoDecoder

    try:
        decoder = VideoDecoder(path)
    except Exception as exc:  # PyAV / FFmpeg errors of every kind
        raise DatasetError(f"cannot open video {str(path)!r}: {exc}") from exc
    try:
        return {idx: decoder.read(idx) for idx in indices}
    except (IndexError, RuntimeError) as exc:
        raise DatasetError(f"cannot decode frames {list(indices)} of video {str(path)!r}: {exc}") from exc
    finally:
        decoder.close()


def image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` from the header of an image file; :class:`DatasetError` naming it when unreadable."""
    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError:
        raise DatasetError(f"image {str(path)!r} does not exist") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read image {str(path)!r}: {exc}") from exc
    return h, w


def check_mask_size(mask_shape: tuple[int, ...], size: tuple[int, int], mask_what: str, frame_what: str) -> None:
    if tuple(mask_shape) != tuple(size):
        raise DatasetError(f"mask {mask_what} has size {mask_shape[0]}x{mask_shape[1]} (HxW) but its frame "
                           f"{frame_what} is {size[0]}x{size[1]}")
