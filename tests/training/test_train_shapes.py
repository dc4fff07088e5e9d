"""The generated moving-shapes dataset (sam2.training.shapes): DAVIS layout, masks consistent with frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sam2.training.data.raw_png import PNGRawDataset
from sam2.training.shapes import MIN_VISIBLE_FIRST_FRAME, ShapesConfig, generate_shapes_dataset
from sam2.utils.png_masks import load_ann_png

SMALL = ShapesConfig(train_videos=2, val_videos=1, num_frames=5, height=48, width=64, objects=(2, 3), seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate_shapes_dataset(tmp_path_factory.mktemp("shapes") / "data", SMALL)


def _frames(split, video):
    return sorted((split.img_folder / video).iterdir())


def test_layout_and_splits(dataset):
    assert dataset.train.videos == ("train_000", "train_001") and dataset.val.videos == ("val_000",)
    assert dataset.train.img_folder == dataset.root / "train" / "JPEGImages"
    assert dataset.val.gt_folder == dataset.root / "val" / "Annotations"
    for split in (dataset.train, dataset.val):
        assert sorted(p.name for p in split.img_folder.iterdir()) == list(split.videos)
        assert sorted(p.name for p in split.gt_folder.iterdir()) == list(split.videos)
        for video in split.videos:
            frames = _frames(split, video)
            assert [p.name for p in frames] == [f"{t:05d}.jpg" for t in range(SMALL.num_frames)]
            masks = sorted((split.gt_folder / video).iterdir())
            assert [p.stem for p in masks] == [p.stem for p in frames]
            for frame, mask in zip(frames, masks):
                with Image.open(frame) as img:
                    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (SMALL.width, SMALL.height))
                with Image.open(mask) as png:
                    assert (png.format, png.mode, png.size) == ("PNG", "P", (SMALL.width, SMALL.height))


def test_masks_agree_with_frames_and_objects_move(dataset):
    meta = json.loads((dataset.root / "shapes.json").read_text())
    assert meta["config"]["seed"] == SMALL.seed
    for split in (dataset.train, dataset.val):
        for video in split.videos:
            objects = meta["videos"][video]["objects"]
            assert SMALL.objects[0] <= len(objects) <= SMALL.objects[1]
            ids = [np.asarray(load_ann_png(split.gt_folder / video / f"{t:05d}.png")[0])
                   for t in range(SMALL.num_frames)]
            first = ids[0]
            for obj in objects:
                k = obj["id"]
                # every object is clearly visible on the first frame (the VOS prompt frame)
                assert (first == k).sum() >= 20, (video, k)
                assert (first == k).sum() >= MIN_VISIBLE_FIRST_FRAME * 0.8 * np.pi * np.prod(obj["half_axes"])
                # it moves: its mask centroid follows the recorded trajectory
                for t in (0, SMALL.num_frames - 1):
                    ys, xs = np.nonzero(ids[t] == k)
                    if len(xs) > 100:
                        cx, cy = obj["centres"][t]
                        assert abs(xs.mean() - cx) < 6 and abs(ys.mean() - cy) < 6, (video, k, t)
                assert obj["centres"][0] != obj["centres"][-1]
            assert set(np.unique(first)) - {0} == {o["id"] for o in objects}
            for t in range(SMALL.num_frames):
                frame = np.asarray(Image.open(split.img_folder / video / f"{t:05d}.jpg"), dtype=np.float32)
                for obj in objects:
                    inside = ids[t] == obj["id"]
                    if inside.sum() < 30:
                        continue
                    # the mask covers pixels of the object's colour (shading, noise and JPEG allowed)
                    colour = np.median(frame[inside], axis=0)
                    assert np.abs(colour - np.asarray(obj["colour"])).max() < 40, (video, obj["id"], t, colour)


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path, dataset):
    again = generate_shapes_dataset(tmp_path / "again", SMALL)
    other = generate_shapes_dataset(tmp_path / "other", ShapesConfig(**{**SMALL.__dict__, "seed": 4}))
    name = "train_001/00003"
    for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        ref = (dataset.root / "train" / sub / f"{name}.{ext}").read_bytes()
        assert (again.root / "train" / sub / f"{name}.{ext}").read_bytes() == ref
        assert (other.root / "train" / sub / f"{name}.{ext}").read_bytes() != ref


def test_refuses_a_non_empty_folder_and_bad_settings(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        generate_shapes_dataset(tmp_path, SMALL)
    assert (tmp_path / "keep.txt").read_text() == "user data"
    with pytest.raises(ValueError, match="num_frames"):
        ShapesConfig(num_frames=1)
    with pytest.raises(ValueError, match="objects"):
        ShapesConfig(objects=(3, 2))


def test_readable_by_the_training_reader(dataset):
    raw = PNGRawDataset(str(dataset.train.img_folder), str(dataset.train.gt_folder))
    assert len(raw) == len(dataset.train.videos)
    video = raw.get_video(0)
    assert len(video.frames) == SMALL.num_frames
    meta = json.loads((dataset.root / "shapes.json").read_text())
    expected = sorted(o["id"] for o in meta["videos"][video.name]["objects"])
    assert sorted(video.segments.visible_objects(video.frames[0])) == expected
