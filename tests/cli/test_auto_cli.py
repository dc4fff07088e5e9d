"""``sam2 auto``: COCO RLE output against the Python API, folders, usage errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.cli.conftest import MICRO, listing, run_cli
from tests.reference import FIXTURES_DIR

IMAGES = FIXTURES_DIR / "inputs" / "images"

# pycocotools' decode trips a numpy 2 deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

LOOSE = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]


def api_records(ckpt: str, image_path: Path, **kwargs) -> list[dict]:
    """``binary_mask`` records of the Python generator with the same options."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2

    generator = SAM2AutomaticMaskGenerator(build_sam2(MICRO, ckpt, device="cpu"), output_mode="binary_mask", **kwargs)
    return generator.generate(np.array(Image.open(image_path).convert("RGB")))


def check_annotations(annotations: list[dict], expected: list[dict], image_id: int) -> None:
    assert len(annotations) == len(expected) > 0
    for ann, ref in zip(annotations, expected):
        assert ann["image_id"] == image_id and ann["category_id"] == 1 and ann["iscrowd"] == 0
        rle = ann["segmentation"]
        assert isinstance(rle["counts"], str) and rle["size"] == list(ref["segmentation"].shape)
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), ref["segmentation"])
        assert ann["area"] == ref["area"] == int(decoded.sum())
        assert ann["bbox"] == pytest.approx(ref["bbox"])
        assert ann["predicted_iou"] == pytest.approx(ref["predicted_iou"], abs=1e-6)
        assert ann["stability_score"] == pytest.approx(ref["stability_score"], abs=1e-6)
        assert np.allclose(ann["point_coords"], ref["point_coords"])
        assert ann["crop_box"] == pytest.approx(ref["crop_box"])


@pytest.mark.parametrize("options,kwargs", [
    ([], {}),
    (["--no-multimask", "--crop-n-layers", "1", "--use-m2m", "--box-nms-thresh", "0.5"],
     {"multimask_output": False, "crop_n_layers": 1, "use_m2m": True, "box_nms_thresh": 0.5}),
])
def test_single_image_matches_the_api(tmp_path, synth_checkpoint, model_args, options, kwargs):
    image = IMAGES / "truck.jpg"
    out = tmp_path / "out"
    proc = run_cli("auto", str(image), "-o", str(out), "-q", *LOOSE, *options, *model_args)
    assert proc.returncode == 0, proc.stderr
    assert listing(out) == ["annotations.json", "overlays", "overlays/truck.png"]
    coco = json.loads((out / "annotations.json").read_text())
    assert coco["images"] == [{"id": 1, "file_name": "truck.jpg", "path": str(image), "width": 320, "height": 213}]
    assert coco["categories"] == [{"id": 1, "name": "object"}]
    expected = api_records(synth_checkpoint, image, points_per_side=4, pred_iou_thresh=0.0,
                           stability_score_thresh=0.0, **kwargs)
    check_annotations(coco["annotations"], expected, image_id=1)
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(expected) + 1))
    for key, value in kwargs.items():
        assert coco["info"]["generator"][key] == value
    with Image.open(out / "overlays" / "truck.png") as img:
        assert img.size == (320, 213) and img.mode == "RGB"


def test_folder_of_images_with_progress_bar(tmp_path, synth_checkpoint, model_args):
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(IMAGES / "truck.jpg", folder / "b_truck.jpg")
    shutil.copy(IMAGES / "cars.jpg", folder / "a_cars.jpg")
    Image.open(IMAGES / "truck_crop.jpg").save(folder / "a_cars.png")  # same stem as a_cars.jpg
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "nested" / "out"  # missing parents are created
    proc = run_cli("auto", str(folder), "-o", str(out), *LOOSE, *model_args)
    assert proc.returncode == 0, proc.stderr
    assert "loading the model" in proc.stderr
    for k, name in enumerate(["a_cars.jpg", "a_cars.png", "b_truck.jpg"], start=1):
        assert f"{k}/3 {name}: 100%" in proc.stderr  # a bar over the point batches of each image
    coco = json.loads((out / "annotations.json").read_text())
    names = [img["file_name"] for img in coco["images"]]
    assert names == ["a_cars.jpg", "a_cars.png", "b_truck.jpg"]
    assert [img["id"] for img in coco["images"]] == [1, 2, 3]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a_cars_jpg.png", "a_cars_png.png", "b_truck.png"]
    ids = [a["id"] for a in coco["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    by_image = {i: [a for a in coco["annotations"] if a["image_id"] == i] for i in (1, 2, 3)}
    expected = api_records(synth_checkpoint, folder / "a_cars.png", points_per_side=4, pred_iou_thresh=0.0,
                           stability_score_thresh=0.0)
    check_annotations(by_image[2], expected, image_id=2)
    for img in coco["images"]:
        for ann in by_image[img["id"]]:
            assert ann["segmentation"]["size"] == [img["height"], img["width"]]

    from pycocotools.coco import COCO

    api = COCO(str(out / "annotations.json"))
    assert sorted(api.getImgIds()) == [1, 2, 3] and len(api.getAnnIds()) == len(ids)
    first = api.loadAnns(ids[0])[0]
    assert api.annToMask(first).sum() == first["area"]


def test_no_surviving_mask_gives_a_hint(tmp_path, synth_checkpoint, model_args):
    out = tmp_path / "out"
    proc = run_cli("auto", str(IMAGES / "truck_crop.jpg"), "-o", str(out), "--points-per-side", "2",
                   "--pred-iou-thresh", "1.0", *model_args)
    assert proc.returncode == 0, proc.stderr
    assert "no mask passed the filters (predicted IoU > 1" in proc.stderr and "--pred-iou-thresh" in proc.stderr
    assert "0 masks in 1 image(s)" in proc.stdout
    assert json.loads((out / "annotations.json").read_text())["annotations"] == []


@pytest.mark.parametrize("make,extra,named", [
    ("empty", [], "IMAGE_OR_FOLDER"),
    ("missing", [], "IMAGE_OR_FOLDER"),
    ("fake", [], "IMAGE_OR_FOLDER"),
    ("image", ["--points-per-side", "0"], "--points-per-side"),
    ("image", ["--box-nms-thresh", "1.5"], "--box-nms-thresh"),
    ("image", ["--crop-n-layers", "-1"], "--crop-n-layers"),
    ("image", ["--pred-iou-thresh", "abc"], "--pred-iou-thresh"),
    ("image", ["--model", "sam3_hiera_huge"], "--model"),
    ("image", ["--crop-n-layers", "40"], "--crop-n-layers"),
    ("image", ["--pred-iou-thresh", "nan"], "--pred-iou-thresh"),
    ("image", ["--stability-score-thresh", "nan"], "--stability-score-thresh"),
    ("image", ["--mask-threshold", "nan"], "--mask-threshold"),
    ("image", ["--box-nms-thresh", "nan"], "--box-nms-thresh"),
    ("image", ["--points-per-side", "2", "--crop-n-layers", "2", "--crop-n-points-downscale-factor", "2"],
     "--points-per-side"),
])
def test_usage_errors_exit_2_and_write_nothing(tmp_path, make, extra, named):
    target = tmp_path / "input"
    if make == "empty":
        target.mkdir()
    elif make == "fake":
        target.mkdir()
        (target / "photo.jpg").write_text("not a picture")
    elif make == "image":
        target = tmp_path / "input.png"
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(target)
    before = listing(tmp_path)
    proc = run_cli("auto", str(target), "-o", str(tmp_path / "out"), *extra)
    assert proc.returncode == 2, proc.stderr
    assert f"argument {named}" in proc.stderr and "Traceback" not in proc.stderr
    assert listing(tmp_path) == before
