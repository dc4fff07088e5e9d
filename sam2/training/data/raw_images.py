"""Image datasets as videos of ``num_frames`` copies of one frame: SA-1B (the official
``SA1BRawDataset``) and COCO instance annotations (polygons or RLE).

Every annotation with a non-empty mask is a candidate object (all of them, not only those of a first
frame); masks are decoded only for the sampled objects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
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
from sam2.training.data.rle import decode_rle, rle_size, to_compressed_rle
from sam2.utils.video_decode import JPEG_EXTENSIONS

logger = logging.getLogger(__name__)


class ImageSegments:
    """Objects of one image: ``segmentations[k]`` is object ``k`` (an RLE or COCO polygons)."""

    def __init__(self, source: str, segmentations: list[Any], height: int, width: int) -> None:
        self.source, self.segmentations = source, segmentations
        self.height, self.width = height, width

    def visible_objects(self, frame: FrameRef) -> list[int]:
        return list(range(len(self.segmentations)))

    def load(self, frame: FrameRef, obj_ids: Sequence[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        out = {}
        for k in obj_ids:
            try:
                rle = to_compressed_rle(self.segmentations[k], self.height, self.width)
            except ValueError as exc:
                raise DatasetError(f"annotation {k} of {self.source}: {exc}") from exc
            check_mask_size(rle_size(rle), size, f"{k} of {self.source}", frame.describe())
            out[k] = decode_rle(rle)
        return out


def _keep(area: float, height: int, width: int, frac_thresh: float) -> bool:
    return area > 0 and area / max(1, height * width) < frac_thresh


class SA1BRawDataset:
    """SA-1B: ``img_folder/<name>.jpg`` with ``gt_folder/<name>.json`` (``annotations`` of RLEs).

    Masks of area 0 are dropped, and those covering ``mask_area_frac_thresh`` of the image or more, and
    with ``uncertain_iou > 0`` those whose ``predicted_iou`` is below it.
    """

    def __init__(self, img_folder: str, gt_folder: str, file_list_txt: str | None = None,
                 excluded_videos_list_txt: str | None = None, num_frames: int = 1,
                 mask_area_frac_thresh: float = 1.1, uncertain_iou: float = -1.0) -> None:
        self.img_folder = require_folder(img_folder, "image folder (img_folder)")
        self.gt_folder = require_folder(gt_folder, "annotation folder (gt_folder)")
        self.num_frames, self.frac_thresh, self.uncertain_iou = num_frames, mask_area_frac_thresh, uncertain_iou
        self.images = {p.stem: p for p in self.img_folder.iterdir() if p.suffix.lower() in JPEG_EXTENSIONS}
        if not self.images:
            raise DatasetError(f"image folder {str(self.img_folder)!r} has no .jpg images")
        self.names = select_names(list(self.images), file_list_txt, excluded_videos_list_txt, self.img_folder)
        for name in self.names:
            require_file(self.gt_folder / f"{name}.json", f"SA-1B annotation of image {name!r}")

    def __len__(self) -> int:
        return len(self.names)

    def _segments(self, name: str) -> ImageSegments:
        path = self.gt_folder / f"{name}.json"
        try:
            anns = json.loads(path.read_text())["annotations"]
            segs = [a["segmentation"] for a in anns if self._keep(a)]
            first = rle_size(anns[0]["segmentation"]) if anns else (0, 0)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"cannot read SA-1B annotation {str(path)!r}: {exc!r}") from exc
        return ImageSegments(repr(str(path)), segs, *first)

    def _keep(self, ann: dict) -> bool:
        h, w = rle_size(ann["segmentation"])
        if self.uncertain_iou > 0 and ann.get("predicted_iou", 1.0) < self.uncertain_iou:
            return False
        return _keep(ann.get("area", h * w), h, w, self.frac_thresh)

    def get_video(self, idx: int) -> RawVideo:
        name = self.names[idx]
        path = self.images[name]
        frames = [FrameRef(0, path, name)] * self.num_frames
        return RawVideo(name, idx, frames, self._segments(name))

    def quick_check(self) -> None:
        for name in self.names:
            image_size(self.images[name])

    def full_check(self) -> None:
        for idx in range(len(self)):
            video = self.get_video(idx)
            (img,) = read_frames(video.frames[:1])
            video.segments.load(video.frames[0], range(len(video.segments.segmentations)), img.size[::-1])


@dataclass
class _CocoImage:
    image_id: int
    path: Path
    height: int
    width: int
    segmentations: list[Any]


class COCORawDataset:
    """COCO instances JSON (``ann_file``) with images in ``img_folder``; images without a usable
    annotation are skipped; an image the JSON lists but the folder lacks is an error at once."""

    def __init__(self, img_folder: str, ann_file: str, num_frames: int = 1, include_crowd: bool = False,
                 mask_area_frac_thresh: float = 1.1) -> None:
        self.img_folder = require_folder(img_folder, "image folder (img_folder)")
        self.ann_file = require_file(ann_file, "COCO annotation file (ann_file)")
        self.num_frames = num_frames
        try:
            data = json.loads(self.ann_file.read_text())
            images = data["images"]
            self.images = self._index(images, data["annotations"], include_crowd, mask_area_frac_thresh)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"cannot read COCO annotation file {str(self.ann_file)!r}: {exc!r}") from exc
        if not self.images:
            raise DatasetError(f"COCO annotation file {str(self.ann_file)!r} has no image with a usable "
                               "(non-crowd, non-empty) segmentation")
        logger.info("%s: %d of %d images have objects", self.ann_file, len(self.images), len(images))
        missing = [str(i.path) for i in self.images if not i.path.is_file()]
        if missing:
            raise DatasetError(f"COCO annotation file {str(self.ann_file)!r} references {len(missing)} images "
                               f"missing from {str(self.img_folder)!r}, e.g. {', '.join(missing[:3])}")

    def _index(self, images: list[dict], anns: list[dict], include_crowd: bool, frac_thresh: float
               ) -> list[_CocoImage]:
        """The images with at least one kept annotation, in the JSON's order."""
        by_image: dict[int, list[Any]] = {}
        for a in anns:
            if (a.get("iscrowd", 0) and not include_crowd) or "segmentation" not in a:
                continue
            by_image.setdefault(a["image_id"], []).append(a)
        kept = []
        for img in images:
            h, w = int(img["height"]), int(img["width"])
            segs = [a["segmentation"] for a in by_image.get(img["id"], [])
                    if _keep(float(a.get("area", 1.0)), h, w, frac_thresh)]
            if segs:
                kept.append(_CocoImage(img["id"], self.img_folder / img["file_name"], h, w, segs))
        return kept

    def __len__(self) -> int:
        return len(self.images)

    def get_video(self, idx: int) -> RawVideo:
        img = self.images[idx]
        source = f"image {img.image_id} in {str(self.ann_file)!r}"
        frames = [FrameRef(0, img.path, img.path.stem)] * self.num_frames
        return RawVideo(img.path.stem, idx, frames, ImageSegments(source, img.segmentations, img.height, img.width))

    def quick_check(self) -> None:
        """Image headers must match the sizes the JSON gives."""
        for img in self.images:
            size = image_size(img.path)
            if size != (img.height, img.width):
                raise DatasetError(f"image {str(img.path)!r} is {size[0]}x{size[1]} (HxW) but "
                                   f"{str(self.ann_file)!r} says {img.height}x{img.width}")

    def full_check(self) -> None:
        for idx in range(len(self)):
            video = self.get_video(idx)
            (frame,) = read_frames(video.frames[:1])
            video.segments.load(video.frames[0], range(len(self.images[idx].segmentations)), frame.size[::-1])
