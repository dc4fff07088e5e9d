"""``sam2.eval.evaluate`` on hand-made DAVIS- and SA-V-layout folders with hand-computed J and F."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2.eval import EvalResult, evaluate, evaluate_video
from sam2.utils.png_masks import save_ann_png

FRAMES = [f"{i:05d}" for i in range(5)]  # 00000 and 00004 are skipped by default


def put(ids: np.ndarray, obj: int, rows: tuple[int, int], cols: tuple[int, int]) -> None:
    ids[rows[0]: rows[1] + 1, cols[0]: cols[1] + 1] = obj


def davis_frames(size: int = 20) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """GT and prediction index images of one 20x20 video (radius 1), see the test docstrings."""
    gt = {f: np.zeros((size, size), np.uint8) for f in FRAMES}
    pred = {f: np.zeros((size, size), np.uint8) for f in FRAMES}
    for f in FRAMES[:4]:
        put(gt[f], 1, (4, 4), (4, 4))  # object 1: one pixel
    put(pred["00001"], 1, (4, 4), (4, 4))  # J 1, F 1
    put(pred["00002"], 1, (4, 4), (5, 5))  # J 0, F 1
    put(pred["00003"], 1, (4, 4), (6, 6))  # J 0, F 1/2
    put(gt["00003"], 2, (10, 13), (10, 13))  # object 2: in the GT on frame 3 only
    put(pred["00002"], 2, (10, 13), (10, 13))  # predicted one frame early: J 0, F 0 on frame 2
    put(pred["00003"], 2, (10, 13), (11, 14))  # shifted by one column: J 12/20, F 1
    put(pred["00001"], 3, (16, 17), (16, 17))  # object 3: prediction only, never reported
    put(gt["00000"], 4, (0, 1), (15, 16))  # object 4: GT on the skipped first frame only
    put(gt["00004"], 1, (4, 4), (4, 4))
    return gt, pred


J1, F1 = 100 * (1 + 0 + 0) / 3, 100 * (1 + 1 + 0.5) / 3
J2, F2 = 100 * (0 + 0.6) / 2, 100 * (0 + 1) / 2


def write_davis(root: Path, video: str, frames: dict[str, np.ndarray]) -> None:
    (root / video).mkdir(parents=True, exist_ok=True)
    for name, ids in frames.items():
        save_ann_png(root / video / f"{name}.png", ids)


def write_sav(root: Path, video: str, frames: dict[str, np.ndarray], scale: int) -> None:
    """One folder per object id (000, 001, ...); masks stored as 0/scale grey PNGs."""
    ids = sorted({int(i) for a in frames.values() for i in np.unique(a) if i})
    for obj in ids:
        folder = root / video / f"{obj - 1:03d}"
        folder.mkdir(parents=True)
        for name, arr in frames.items():
            Image.fromarray(((arr == obj) * scale).astype(np.uint8)).save(folder / f"{name}.png")


@pytest.fixture
def davis(tmp_path: Path) -> tuple[Path, Path]:
    gt, pred = davis_frames()
    write_davis(tmp_path / "gt", "vid", gt)
    write_davis(tmp_path / "pred", "vid", pred)
    return tmp_path / "gt", tmp_path / "pred"


def test_davis_layout_by_hand(davis):
    result = evaluate(*davis, num_processes=1)
    assert isinstance(result, EvalResult)
    (video,) = result.videos
    assert video.layout == "davis"
    assert [o.obj for o in video.objects] == ["001", "002"]  # 3 (prediction only), 4 (skipped frame) absent
    o1, o2 = video.objects
    assert (o1.j, o1.f) == pytest.approx((J1, F1))
    assert o1.frames == ("00001.png", "00002.png", "00003.png")
    assert (o2.j, o2.f) == pytest.approx((J2, F2))
    assert o2.frames == ("00002.png", "00003.png")  # counted from its first appearance (in the prediction)
    assert o2.frame_j == pytest.approx((0.0, 0.6)) and o2.frame_f == pytest.approx((0.0, 1.0))
    assert result.j == pytest.approx((J1 + J2) / 2) and result.f == pytest.approx((F1 + F2) / 2)
    assert result.jf == pytest.approx((result.j + result.f) / 2)
    assert video.j == pytest.approx(result.j)


def test_davis_without_skipping(davis):
    result = evaluate(*davis, skip_first_and_last=False, num_processes=1)
    objs = {o.obj: o for o in result.objects}
    assert sorted(objs) == ["001", "002", "004"]
    # object 1 adds frames 0 and 4, both with an empty prediction: J 0, F 0
    assert objs["001"].j == pytest.approx(100 * (0 + 1 + 0 + 0 + 0) / 5)
    assert objs["001"].f == pytest.approx(100 * (0 + 1 + 1 + 0.5 + 0) / 5)
    # object 4: GT on frame 0 only, never predicted -> J 0, F 0 there; then empty/empty = 1 on 4 frames
    assert objs["004"].j == pytest.approx(100 * 4 / 5) and objs["004"].f == pytest.approx(100 * 4 / 5)
    # object 2 also gains frame 4 (empty in both: 1)
    assert objs["002"].j == pytest.approx(100 * 1.6 / 3)


@pytest.mark.parametrize("scale", [1, 255])
def test_sav_layout_by_hand(tmp_path, scale):
    gt, pred = davis_frames()
    write_sav(tmp_path / "gt", "vid", gt, 255)
    gt_objs = {"000", "001", "003"}
    pred_frames = {k: v.copy() for k, v in pred.items()}
    write_sav(tmp_path / "pred", "vid", pred_frames, scale)
    assert {p.name for p in (tmp_path / "gt" / "vid").iterdir()} == gt_objs
    (tmp_path / "gt" / "vid" / "003").rename(tmp_path / "unused")  # object 4 is only in a skipped frame
    result = evaluate(tmp_path / "gt", tmp_path / "pred", num_processes=1)
    (video,) = result.videos
    assert video.layout == "sav"
    assert [o.obj for o in video.objects] == ["000", "001"]
    assert (video.objects[0].j, video.objects[0].f) == pytest.approx((J1, F1))
    assert (video.objects[1].j, video.objects[1].f) == pytest.approx((J2, F2))


def test_sav_object_missing_from_gt_frames_is_an_error(tmp_path):
    gt, pred = davis_frames()
    write_sav(tmp_path / "gt", "vid", gt, 255)
    write_sav(tmp_path / "pred", "vid", pred, 1)
    (tmp_path / "pred" / "vid" / "003").mkdir()
    for f in FRAMES:
        save_ann_png(tmp_path / "pred" / "vid" / "003" / f"{f}.png", np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"003.*no foreground pixel"):
        evaluate(tmp_path / "gt", tmp_path / "pred", num_processes=1)


def test_sav_object_missing_from_prediction(tmp_path):
    gt, pred = davis_frames()
    write_sav(tmp_path / "gt", "vid", gt, 255)
    (tmp_path / "pred" / "vid").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="object '000'"):
        evaluate(tmp_path / "gt", tmp_path / "pred", num_processes=1)


def test_davis_object_missing_from_prediction(tmp_path):
    gt, pred = davis_frames()
    write_davis(tmp_path / "gt", "vid", gt)
    write_davis(tmp_path / "pred", "vid", {k: np.where(v == 1, 1, 0).astype(np.uint8) for k, v in pred.items()})
    objs = {o.obj: o for o in evaluate(tmp_path / "gt", tmp_path / "pred", num_processes=1).objects}
    # object 2 never predicted: counted from frame 3 (first GT appearance), J 0 and F 0
    assert (objs["002"].j, objs["002"].f) == (0.0, 0.0) and objs["002"].frames == ("00003.png",)


def test_videos_of_different_sizes_and_parallel_workers(tmp_path):
    """The radius follows each video's size: F = 1/2 needs a 3-pixel shift of a one-pixel object at
    100x100 (radius 2) but only a 2-pixel shift at 20x20 (radius 1)."""
    for video, size, shift in (("big", 100, 3), ("small", 20, 2), ("zsmall_exact", 20, 0)):
        gt = {f: np.zeros((size, size), np.uint8) for f in FRAMES[:3]}
        pred = {f: np.zeros((size, size), np.uint8) for f in FRAMES[:3]}
        for f in gt:
            put(gt[f], 1, (size // 2,) * 2, (size // 2,) * 2)
            put(pred[f], 1, (size // 2,) * 2, (size // 2 + shift,) * 2)
        write_davis(tmp_path / "gt", video, gt)
        write_davis(tmp_path / "pred", video, pred)
    serial = evaluate(tmp_path / "gt", tmp_path / "pred", num_processes=1)
    parallel = evaluate(tmp_path / "gt", tmp_path / "pred", num_processes=2, progress=True)
    assert serial == parallel
    scores = {v.video: (v.j, v.f) for v in serial.videos}
    assert scores == {"big": (0.0, pytest.approx(50.0)), "small": (0.0, pytest.approx(50.0)),
                      "zsmall_exact": (100.0, 100.0)}


def test_video_selection_strict_and_warnings(davis, caplog):
    gt_root, pred_root = davis
    (gt_root / "only_gt").mkdir()
    (pred_root / "only_pred").mkdir()
    (gt_root / "notes.txt").write_text("not a video")
    with caplog.at_level(logging.WARNING):
        result = evaluate(gt_root, pred_root, num_processes=1)
    assert [v.video for v in result.videos] == ["vid"]
    assert result.missing_predictions == ("only_gt",) and result.extra_predictions == ("only_pred",)
    assert "only_gt" in caplog.text
    with pytest.raises(ValueError, match=r"only_gt.*only_pred"):
        evaluate(gt_root, pred_root, strict=True, num_processes=1)
    with pytest.raises(ValueError, match="no video to evaluate"):
        evaluate(gt_root / "only_gt", pred_root, num_processes=1)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        evaluate(gt_root / "missing", pred_root)
    assert [v.video for v in evaluate(gt_root, pred_root, videos=["vid"]).videos] == ["vid"]


def test_dataset_root_with_annotations_folder(davis, tmp_path):
    gt_root, pred_root = davis
    dataset = tmp_path / "dataset"
    (dataset / "JPEGImages").mkdir(parents=True)
    gt_root.rename(dataset / "Annotations")
    result = evaluate(dataset, pred_root, num_processes=1)
    assert result.gt_root == str(dataset / "Annotations") and len(result.objects) == 2


def test_davis_dataset_root_uses_annotations_480p(davis, tmp_path):
    gt_root, pred_root = davis
    dataset = tmp_path / "DAVIS"
    (dataset / "JPEGImages" / "480p").mkdir(parents=True)
    (dataset / "Annotations").mkdir()
    (dataset / "ImageSets").mkdir()
    gt_root.rename(dataset / "Annotations" / "480p")
    result = evaluate(dataset, pred_root, num_processes=1)
    assert result.gt_root == str(dataset / "Annotations" / "480p") and len(result.objects) == 2


def test_missing_frame_unreadable_png_and_size_mismatch(davis):
    gt_root, pred_root = davis
    (pred_root / "vid" / "00002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"pred/vid/00002\.png"):
        evaluate(gt_root, pred_root, num_processes=1)
    (pred_root / "vid" / "00002.png").write_bytes(b"this is not a PNG")
    with pytest.raises(ValueError, match=r"cannot read mask PNG .*pred/vid/00002\.png"):
        evaluate(gt_root, pred_root, num_processes=2)  # errors come back from the worker processes too
    save_ann_png(pred_root / "vid" / "00002.png", np.zeros((20, 21), np.uint8))
    with pytest.raises(ValueError, match=r"size mismatch: ground truth .*gt/vid/00002\.png.* is 20x20"):
        evaluate(gt_root, pred_root, num_processes=1)
    Image.new("RGB", (20, 20)).save(pred_root / "vid" / "00002.png")
    with pytest.raises(ValueError, match=r"00002\.png.*mode 'RGB'"):
        evaluate(gt_root, pred_root, num_processes=1)


def test_layout_errors(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    (gt / "empty").mkdir(parents=True)
    (pred / "empty").mkdir(parents=True)
    with pytest.raises(ValueError, match="is empty"):
        evaluate_video(gt, pred, "empty")
    (gt / "mixed" / "000").mkdir(parents=True)
    (pred / "mixed").mkdir()
    save_ann_png(gt / "mixed" / "00000.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"mixes layouts.*00000\.png"):
        evaluate_video(gt, pred, "mixed")
    with pytest.raises(FileNotFoundError, match="prediction folder of video 'absent'"):
        evaluate_video(gt, pred, "absent")
    (gt / "multi" / "000").mkdir(parents=True)
    (pred / "multi" / "000").mkdir(parents=True)
    three = np.array([[0, 1], [2, 2]], np.uint8)
    for f in ("00000", "00001", "00002"):
        save_ann_png(gt / "multi" / "000" / f"{f}.png", three)
        save_ann_png(pred / "multi" / "000" / f"{f}.png", three)
    with pytest.raises(ValueError, match="more than one object"):
        evaluate_video(gt, pred, "multi")


def test_table_and_csv(davis, tmp_path):
    result = evaluate(*davis, num_processes=1)
    table = result.table()
    assert "vid" in table and "001" in table and table.endswith(result.summary())
    assert result.summary() == (f"Global score: J&F: {result.jf:.1f} J: {result.j:.1f} F: {result.f:.1f}")
    path = result.write_csv(tmp_path / "out.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["level"], r["sequence"], r["obj"]) for r in rows] == [
        ("overall", "Global score", ""), ("video", "vid", ""), ("object", "vid", "001"), ("object", "vid", "002")]
    assert float(rows[2]["J"]) == pytest.approx(J1, abs=1e-4)
    assert float(rows[3]["F"]) == pytest.approx(F2, abs=1e-4)
    assert float(rows[0]["J&F"]) == pytest.approx(result.jf, abs=1e-4)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []  # no temp file left
