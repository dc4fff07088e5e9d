"""Downloads of a session's masks, in the formats of ``sam2 video`` and ``sam2 auto``.

* ``davis``: zip of ``<name>/<frame:05d>.png``, one DAVIS palette PNG per segmented frame (pixel value =
  object id 1..255, the smallest id wins where objects overlap), written by ``save_masks_to_dir``;
* ``sav``: zip of ``<name>/<obj:03d>/<frame:05d>.png``, binary (0/1) palette PNGs per object (SA-V layout);
* ``coco``: JSON with one COCO "image" per segmented frame, one category per object and one annotation
  (COCO RLE as written by pycocotools, area, bbox) per object and frame, loadable with
  ``pycocotools.coco.COCO``;
* ``mp4``: every frame with the masks drawn in the DAVIS colour of their object id (``cli.media``).

Each export is written to a temporary file, returned with its media type and download name.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam2.demo import rle
from sam2.demo.errors import DemoError
from sam2.demo.sessions import DemoSession

FORMATS = ("davis", "sav", "coco", "mp4")


@dataclass(frozen=True)
class Export:
    path: Path  # temporary file, to be deleted once sent
    media_type: str
    filename: str


def export(session: DemoSession, fmt: str, folder: Path) -> Export:
    """Write the export of ``session`` in format ``fmt`` to a new file in ``folder``."""
    if fmt not in FORMATS:
        raise DemoError(422, f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    masks = session.snapshot()
    if fmt != "mp4" and not masks:
        raise DemoError(409, f"session {session.id} has no masks yet: add a click on an object first")
    suffix = {"davis": ".zip", "sav": ".zip", "coco": ".json", "mp4": ".mp4"}[fmt]
    fd, name = tempfile.mkstemp(prefix="export-", suffix=suffix, dir=folder)
    path = Path(name)
    try:
        with open(fd, "wb"):
            pass
        if fmt in ("davis", "sav"):
            _png_zip(session, masks, path, per_object=fmt == "sav")
            media_type = "application/zip"
        elif fmt == "coco":
            path.write_text(json.dumps(coco_json(session, masks)) + "\n")
            media_type = "application/json"
        else:
            _overlay_mp4(session, masks, path)
            media_type = "video/mp4"
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    label = {"davis": "davis_masks", "sav": "sav_masks", "coco": "coco_rle", "mp4": "overlay"}[fmt]
    return Export(path, media_type, f"{session.name}_{label}{suffix}")


def _png_zip(session: DemoSession, masks: dict[int, dict[int, dict]], target: Path, per_object: bool) -> None:
    from sam2.utils.png_masks import save_masks_to_dir

    if not per_object:
        too_big = sorted({o for e in masks.values() for o in e if not 1 <= o <= 255})
        if too_big:
            raise DemoError(409, f"DAVIS palette PNGs hold object ids 1..255; object(s) {too_big} cannot be "
                                 "exported in this format (use sav or coco)")
    h, w = session.height, session.width
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        root = Path(tmp)
        for t, entry in masks.items():
            per_obj = {o: rle.decode(r, h, w) for o, r in entry.items()}
            save_masks_to_dir(root, session.name, f"{t:05d}", per_obj, h, w, per_obj_png_file=per_object)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(root.rglob("*.png")):
                zf.write(file, file.relative_to(root).as_posix())


def coco_json(session: DemoSession, masks: dict[int, dict[int, dict]]) -> dict:
    """COCO dataset of the masks: images = frames, categories = objects (as ``sam2 auto`` writes RLEs)."""
    objects = sorted({o for e in masks.values() for o in e})
    images, annotations = [], []
    for t, entry in masks.items():
        image_id = t + 1
        images.append({"id": image_id, "file_name": f"{t:05d}.jpg", "frame_index": t,
                       "width": session.width, "height": session.height})
        for o, r in entry.items():
            area, bbox = rle.area_and_bbox(rle.decode(r, session.height, session.width))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": o,
                                "object_id": o, "segmentation": r, "area": area,
                                "bbox": [float(v) for v in bbox], "iscrowd": 0})
    return {"info": {"description": "sam2 demo", "video": session.name, "kind": session.kind,
                     "num_frames": session.num_frames, "fps": session.fps},
            "images": images, "annotations": annotations,
            "categories": [{"id": o, "name": f"object {o}"} for o in objects]}


def _overlay_mp4(session: DemoSession, masks: dict[int, dict[int, dict]], target: Path) -> None:
    from sam2.cli import media

    h, w = session.height, session.width
    with media.Mp4Writer(target, w, h, session.fps) as writer:
        for t, frame in enumerate(session.raw_frames()):
            entry = masks.get(t)
            if entry:
                ids = list(entry)
                shown = [rle.decode(entry[o], h, w) for o in ids]
                frame = media.overlay(frame, shown, [media.color(o) for o in ids])
            writer.write(np.ascontiguousarray(frame))
