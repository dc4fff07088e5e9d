"""Dataset VOS inference logic (``sam2.eval.vos``) with a stand-in predictor that echoes its prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2.eval.vos import (
    apply_non_overlapping_constraints,
    frame_names,
    list_videos,
    vos_inference,
    vos_separate_inference_per_object,
)
from sam2.utils.png_masks import DAVIS_PALETTE, read_mask_png, save_ann_png

H, W, T = 6, 8, 4


class EchoPredictor:
    """Official video-predictor API; object ``k`` gets logit ``5 k`` inside its latest prompt mask at or
    before the frame, ``-5 k`` outside, and -1024 before its first prompt."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def init_state(self, video_path: str, async_loading_frames: bool = False) -> dict:
        return {"num_frames": len(frame_names(video_path)), "inputs": {}, "obj_ids": []}

    def add_new_mask(self, inference_state: dict, frame_idx: int, obj_id: int, mask: np.ndarray):
        self.calls.append(("add", frame_idx, obj_id))
        inference_state["inputs"].setdefault(obj_id, {})[frame_idx] = np.asarray(mask, bool)
        if obj_id not in inference_state["obj_ids"]:
            inference_state["obj_ids"].append(obj_id)

    def reset_state(self, inference_state: dict) -> None:
        self.calls.append(("reset",))
        inference_state["inputs"].clear()
        inference_state["obj_ids"].clear()

    def propagate_in_video(self, inference_state: dict, start_frame_idx: int | None = None,
                           max_frame_num_to_track: int | None = None, reverse: bool = False):
        inputs, ids = inference_state["inputs"], list(inference_state["obj_ids"])
        start = min(f for frames in inputs.values() for f in frames) if start_frame_idx is None else start_frame_idx
        self.calls.append(("propagate", start, reverse))
        for t in range(start, inference_state["num_frames"]):
            logits = np.full((len(ids), 1, H, W), -1024.0, np.float32)
            for i, obj in enumerate(ids):
                before = [f for f in inputs[obj] if f <= t]
                if before:
                    logits[i, 0] = np.where(inputs[obj][max(before)], 5.0 * obj, -5.0 * obj)
            yield t, ids, torch.from_numpy(logits)


def rect(rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[rows[0]: rows[1] + 1, cols[0]: cols[1] + 1] = True
    return m


A, B = rect((0, 2), (0, 3)), rect((2, 4), (3, 6))  # overlap at row 2, column 3


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    video = tmp_path / "videos" / "v1"
    video.mkdir(parents=True)
    for t in range(T):
        Image.new("RGB", (W, H), (10 * t, 0, 0)).save(video / f"{t:05d}.jpg")
    (tmp_path / "masks" / "v1").mkdir(parents=True)
    return tmp_path


def davis_mask(root: Path, frame: int, objects: dict[int, np.ndarray], palette=None) -> None:
    ids = np.zeros((H, W), np.uint8)
    for obj, m in sorted(objects.items(), reverse=True):
        ids[m] = obj
    save_ann_png(root / "masks" / "v1" / f"{frame:05d}.png", ids, palette)


def sav_mask(root: Path, frame: int, obj: int, mask: np.ndarray) -> None:
    folder = root / "masks" / "v1" / f"{obj:03d}"
    folder.mkdir(exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{frame:05d}.png")


def run(fn, root: Path, predictor=None, **kw) -> EchoPredictor:
    predictor = predictor or EchoPredictor()
    fn(predictor, root / "videos", root / "masks", root / "out", "v1", **kw)
    return predictor


def out_ids(root: Path, frame: int) -> np.ndarray:
    return read_mask_png(root / "out" / "v1" / f"{frame:05d}.png")


def test_davis_first_frame_prompts(dataset):
    palette = list(range(256)) * 3
    davis_mask(dataset, 0, {1: A & ~B, 2: B}, palette)
    predictor = run(vos_inference, dataset)
    assert predictor.calls == [("add", 0, 1), ("add", 0, 2), ("propagate", 0, False)]
    for t in range(T):
        assert (out_ids(dataset, t) == read_mask_png(dataset / "masks" / "v1" / "00000.png")).all()
    with Image.open(dataset / "out" / "v1" / "00003.png") as img:
        assert img.getpalette()[:768] == palette  # the input palette is kept


def test_sav_layout_and_score_threshold(dataset):
    sav_mask(dataset, 0, 1, A)
    sav_mask(dataset, 0, 2, B)
    run(vos_inference, dataset, per_obj_png_file=True)
    for obj, m in ((1, A), (2, B)):
        path = dataset / "out" / "v1" / f"{obj:03d}" / "00002.png"
        assert (read_mask_png(path) == m.astype(np.uint8)).all()  # 0/1 values, overlap kept
        with Image.open(path) as img:
            assert img.mode == "P" and bytes(img.getpalette()[:768]) == DAVIS_PALETTE
    run(vos_inference, dataset, per_obj_png_file=True, score_thresh=7.0)  # object 1 logits are 5
    assert not read_mask_png(dataset / "out" / "v1" / "001" / "00001.png").any()
    assert read_mask_png(dataset / "out" / "v1" / "002" / "00001.png").any()


def test_use_all_masks(dataset):
    davis_mask(dataset, 0, {1: A})
    davis_mask(dataset, 2, {1: B})
    predictor = run(vos_inference, dataset, use_all_masks=True)
    assert predictor.calls == [("add", 0, 1), ("add", 2, 1), ("propagate", 0, False)]
    assert (out_ids(dataset, 1) == A).all() and (out_ids(dataset, 3) == B).all()
    davis_mask(dataset, 2, {1: B, 3: A & ~B})
    with pytest.raises(RuntimeError, match="object id 3 appears on input frame 2.*track_object_appearing_later"):
        run(vos_inference, dataset, use_all_masks=True)


def test_input_errors(dataset):
    with pytest.raises(RuntimeError, match="no input mask for frame 0.*track_object_appearing_later"):
        run(vos_inference, dataset)
    with pytest.raises(RuntimeError, match="no input mask found"):
        run(vos_inference, dataset, use_all_masks=True)
    davis_mask(dataset, 0, {})
    with pytest.raises(RuntimeError, match="no object in the input masks"):
        run(vos_inference, dataset)
    assert not (dataset / "out").exists()


def test_separate_tracking_davis(dataset):
    davis_mask(dataset, 0, {1: A})
    davis_mask(dataset, 2, {1: A & ~B, 2: B})  # object 2 appears on frame 2; object 1's mask here is unused
    predictor = run(vos_separate_inference_per_object, dataset)
    assert predictor.calls == [("reset",), ("add", 0, 1), ("propagate", 0, False),
                               ("reset",), ("add", 2, 2), ("propagate", 2, False)]
    assert (out_ids(dataset, 0) == A).all() and (out_ids(dataset, 1) == A).all()
    # frames 2, 3: object 2 (logit 10) beats object 1 (logit 5) where they overlap
    expected = np.where(B, 2, np.where(A, 1, 0))
    assert (out_ids(dataset, 2) == expected).all() and (out_ids(dataset, 3) == expected).all()


def test_separate_tracking_sav_keeps_overlaps(dataset):
    sav_mask(dataset, 0, 1, A)
    sav_mask(dataset, 0, 2, np.zeros((H, W), bool))  # empty masks are not prompts
    sav_mask(dataset, 1, 2, B)
    sav_mask(dataset, 3, 2, A)
    predictor = run(vos_separate_inference_per_object, dataset, per_obj_png_file=True, use_all_masks=True)
    assert predictor.calls == [("reset",), ("add", 0, 1), ("propagate", 0, False),
                               ("reset",), ("add", 1, 2), ("add", 3, 2), ("propagate", 1, False)]
    out = dataset / "out" / "v1"
    assert not read_mask_png(out / "002" / "00000.png").any()  # before its first prompt
    assert (read_mask_png(out / "002" / "00002.png") == B).all()
    assert (read_mask_png(out / "001" / "00002.png") == A).all()  # overlap with object 2 kept
    assert (read_mask_png(out / "002" / "00003.png") == A).all()


def test_non_overlapping_constraints():
    scores = torch.tensor([[1.0, 3.0, -2.0], [1.0, 2.0, 4.0]]).reshape(2, 1, 1, 3)
    out = apply_non_overlapping_constraints(scores)
    assert out[:, 0, 0].tolist() == [[1.0, 3.0, -10.0], [-10.0, -10.0, 4.0]]  # ties: first object wins
    single = torch.ones(1, 1, 2, 2)
    assert apply_non_overlapping_constraints(single) is single


def test_list_videos(dataset, tmp_path):
    (dataset / "videos" / "v0").mkdir()
    (dataset / "videos" / ".hidden").mkdir()
    assert list_videos(dataset / "videos") == ["v0", "v1"]
    (tmp_path / "list.txt").write_text(" v1 \n\nv0\n")
    assert list_videos(dataset / "videos", tmp_path / "list.txt") == ["v1", "v0"]
    assert frame_names(dataset / "videos" / "v1") == [f"{t:05d}" for t in range(T)]
