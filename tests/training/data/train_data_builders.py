"""Writers of small real datasets (JPEG, PNG, mp4, JSON) in every layout the data pipeline reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from sam2.utils.png_masks import save_ann_png

H, W = 48, 64


def frame_and_masks(t: int, num_objects: int, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    """A frame (H, W, 3) uint8 with ``num_objects`` coloured rectangles moving right, and its id map."""
    rgb = np.full((h, w, 3), 40, np.uint8)
    ids = np.zeros((h, w), np.uint8)
    for k in range(1, num_objects + 1):
        y0 = 4 + (k - 1) * (h // (num_objects + 1))
        x0 = (3 * t + 7 * k) % (w - 14)
        rgb[y0:y0 + 10, x0:x0 + 12] = (60 * k % 256, 255 - 50 * k, 120)
        ids[y0:y0 + 10, x0:x0 + 12] = k
    return rgb, ids


def write_davis(root: Path, videos: dict[str, int], num_objects: int = 2, per_object: bool = False,
                start: int = 0) -> tuple[Path, Path]:
    """``root/JPEGImages/<video>/<t:05d>.jpg`` + ``root/Annotations/<video>/...`` palette or per-object PNGs.

    ``videos`` maps names to frame counts. Per-object folders are ``<k-1>/`` for object ``k``.
    """
    img_root, gt_root = root / "JPEGImages", root / "Annotations"
    for name, num_t in videos.items():
        (img_root / name).mkdir(parents=True)
        (gt_root / name).mkdir(parents=True)
        for t in range(num_t):
            rgb, ids = frame_and_masks(t + start, num_objects)
            stem = f"{t + start:05d}"
            Image.fromarray(rgb).save(img_root / name / f"{stem}.jpg", quality=95)
            if per_object:
                for k in range(1, num_objects + 1):
                    (gt_root / name / str(k - 1)).mkdir(exist_ok=True)
                    save_ann_png(gt_root / name / str(k - 1) / f"{stem}.png", (ids == k).astype(np.uint8))
            else:
                save_ann_png(gt_root / name / f"{stem}.png", ids)
    return img_root, gt_root


def rle_of(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 24) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_sav(root: Path, videos: dict[str, int], num_objects: int = 2, ann_every: int = 4,
              as_mp4: bool = False, null_object: tuple[int, int] | None = None) -> tuple[Path, Path]:
    """SA-V layout: ``gt/<video>_manual.json`` masklets every ``ann_every`` frames, frames as
    ``img/<video>/<idx:05d>.jpg`` (every ``ann_every``-th, named by original index) or ``img/<video>.mp4``.

    ``null_object=(annotation index, object)`` stores ``None`` for that object there.
    """
    img_root, gt_root = root / "sav_frames", root / "sav_json"
    img_root.mkdir(parents=True)
    gt_root.mkdir(parents=True)
    for name, num_t in videos.items():
        frames, masklet = [], []
        for t in range(num_t):
            rgb, ids = frame_and_masks(t, num_objects)
            frames.append(rgb)
            if t % ann_every == 0:
                masklet.append([rle_of(ids == k) for k in range(1, num_objects + 1)])
        if null_object is not None:
            masklet[null_object[0]][null_object[1]] = None
        if as_mp4:
            write_mp4(img_root / f"{name}.mp4", frames)
        else:
            (img_root / name).mkdir()
            for t in range(0, num_t, ann_every):
                Image.fromarray(frames[t]).save(img_root / name / f"{t:05d}.jpg", quality=95)
        meta = {"video_id": name, "video_frame_count": num_t, "video_height": H, "video_width": W,
                "masklet": masklet, "masklet_id": list(range(num_objects)), "masklet_num": num_objects}
        (gt_root / f"{name}_manual.json").write_text(json.dumps(meta))
    return img_root, gt_root


def write_sa1b(root: Path, names: list[str], num_objects: int = 3) -> Path:
    """``root/<name>.jpg`` + ``root/<name>.json`` with SA-1B style RLE annotations (one of area 0)."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        rgb, ids = frame_and_masks(i, num_objects)
        Image.fromarray(rgb).save(root / f"{name}.jpg", quality=95)
        anns = [{"id": 100 + k, "segmentation": rle_of(ids == k), "area": int((ids == k).sum()),
                 "bbox": [0, 0, 1, 1], "predicted_iou": 0.9, "stability_score": 0.95}
                for k in range(1, num_objects + 1)]
        anns.append({"id": 999, "segmentation": rle_of(np.zeros((H, W), bool)), "area": 0,
                     "bbox": [0, 0, 0, 0], "predicted_iou": 0.9, "stability_score": 0.95})
        data = {"image": {"image_id": i, "width": W, "height": H, "file_name": f"{name}.jpg"},
                "annotations": anns}
        (root / f"{name}.json").write_text(json.dumps(data))
    return root


def write_coco(root: Path, num_images: int = 3, missing: str | None = None) -> tuple[Path, Path]:
    """COCO instances JSON: per image one polygon object, one compressed-RLE object, one uncompressed-RLE
    object, one crowd object and one empty image; ``missing`` names an image listed but not written."""
    from pycocotools import mask as mask_utils

    img_dir = root / "images"
    img_dir.mkdir(parents=True)
    images, anns = [], []
    for i in range(num_images):
        rgb, ids = frame_and_masks(i, 3)
        name = f"img_{i:03d}.jpg"
        Image.fromarray(rgb).save(img_dir / name, quality=95)
        images.append({"id": i + 1, "file_name": name, "height": H, "width": W})
        ys, xs = np.nonzero(ids == 1)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        poly = [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]
        uncompressed = mask_utils.frPyObjects([poly], H, W)[0]
        compressed = rle_of(ids == 2)
        raw = np.asfortranarray((ids == 3).astype(np.uint8)).reshape(-1, order="F")
        runs, value, count = [], 0, 0
        for v in raw:
            if v != value:
                runs.append(count)
                value, count = v, 0
            count += 1
        runs.append(count)
        anns += [
            {"id": 10 * i + 1, "image_id": i + 1, "category_id": 1, "segmentation": [poly], "iscrowd": 0,
             "area": float(mask_utils.area(uncompressed)), "bbox": [float(x0), float(y0), 12.0, 10.0]},
            {"id": 10 * i + 2, "image_id": i + 1, "category_id": 1, "segmentation": compressed, "iscrowd": 0,
             "area": float((ids == 2).sum()), "bbox": [0, 0, 1, 1]},
            {"id": 10 * i + 3, "image_id": i + 1, "category_id": 2, "iscrowd": 0,
             "segmentation": {"size": [H, W], "counts": runs}, "area": float((ids == 3).sum()), "bbox": [0, 0, 1, 1]},
            {"id": 10 * i + 4, "image_id": i + 1, "category_id": 2, "iscrowd": 1,
             "segmentation": rle_of(np.ones((H, W), bool)), "area": float(H * W), "bbox": [0, 0, W, H]},
        ]
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(img_dir / "empty.jpg")
    images.append({"id": 1000, "file_name": "empty.jpg", "height": H, "width": W})
    if missing:
        images.append({"id": 2000, "file_name": missing, "height": H, "width": W})
        anns.append({"id": 20001, "image_id": 2000, "category_id": 1, "segmentation": rle_of(ids == 1),
                     "iscrowd": 0, "area": 1.0, "bbox": [0, 0, 1, 1]})
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns,
                                    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    return img_dir, ann_file
