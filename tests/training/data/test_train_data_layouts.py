"""Every raw layout read from small real datasets: frames, object ids and masks as written."""

from __future__ import annotations

import numpy as np
import pytest

from sam2.training.data import DatasetConfig, build_raw_dataset, check_dataset
from sam2.training.data.raw_common import read_frames
from sam2.training.data.sampler import EvalSampler, RandomUniformSampler, SamplingError
from tests.training.data.train_data_builders import (
    H,
    W,
    frame_and_masks,
    write_coco,
    write_davis,
    write_sa1b,
    write_sav,
)


def _masks(video, frame, ids):
    return video.segments.load(frame, ids, (H, W))


def test_davis_palette_frames_ids_and_masks(tmp_path):
    img, gt = write_davis(tmp_path, {"b": 6, "a": 5}, num_objects=3)
    raw = build_raw_dataset(DatasetConfig("vos", str(img), str(gt)))
    assert len(raw) == 2
    video = raw.get_video(1)
    assert video.name == "b" and video.video_id == 1
    assert [f.index for f in video.frames] == list(range(6))
    assert video.segments.visible_objects(video.frames[0]) == [1, 2, 3]
    _, ids = frame_and_masks(4, 3)
    loaded = _masks(video, video.frames[4], [3, 1])
    assert sorted(loaded) == [1, 3]
    for k in (1, 3):
        np.testing.assert_array_equal(loaded[k], ids == k)
    rgb = np.asarray(read_frames([video.frames[4]])[0], dtype=np.int16)
    expected, _ = frame_and_masks(4, 3)
    assert np.abs(rgb - expected).mean() < 3  # JPEG


def test_davis_per_object_and_single_object_mode(tmp_path):
    img, gt = write_davis(tmp_path, {"v": 4}, num_objects=2, per_object=True)
    (gt / "v" / "1" / "00002.png").unlink()  # object 2 not annotated on frame 2: an empty mask
    raw = build_raw_dataset(DatasetConfig("vos", str(img), str(gt)))
    video = raw.get_video(0)
    _, ids = frame_and_masks(2, 2)
    loaded = _masks(video, video.frames[2], [1, 2])
    assert list(loaded) == [1]
    np.testing.assert_array_equal(loaded[1], ids == 1)
    single = build_raw_dataset(DatasetConfig("vos", str(img), str(gt), single_object_mode=True))
    assert len(single) == 2
    assert [single.get_video(i).segments.visible_objects(video.frames[0]) for i in range(2)] == [[1], [2]]


def test_davis_file_list_exclusions_sample_rate_truncate_and_mult(tmp_path):
    img, gt = write_davis(tmp_path, {"a": 9, "b": 4, "c": 4})
    file_list = tmp_path / "list.txt"
    file_list.write_text("a\n\nc.jpg\nb\n")
    excluded = tmp_path / "excl.txt"
    excluded.write_text("c\n")
    cfg = DatasetConfig("vos", str(img), str(gt), file_list_txt=str(file_list),
                        excluded_videos_list_txt=str(excluded), sample_rate=2, truncate_video=4)
    raw = build_raw_dataset(cfg)
    assert [raw.get_video(i).name for i in range(len(raw))] == ["a", "b"]
    assert [f.index for f in raw.get_video(0).frames] == [0, 2, 4, 6]
    assert [f.index for f in raw.get_video(1).frames] == [0, 2]
    mult = build_raw_dataset(DatasetConfig("vos", str(img), str(gt), frames_sampling_mult=True))
    assert len(mult) == 9 + 4 + 4


@pytest.mark.parametrize("as_mp4", [False, True])
def test_sav_frames_and_rle_masklets(tmp_path, as_mp4):
    img, gt = write_sav(tmp_path, {"sav_000001": 21}, num_objects=2, as_mp4=as_mp4, null_object=(2, 1))
    raw = build_raw_dataset(DatasetConfig("sav", str(img), str(gt)))
    video = raw.get_video(0)
    # annotated every 4th frame; frame 8 holds a None object so rm_unannotated drops it
    assert [f.index for f in video.frames] == [0, 4, 12, 16, 20]
    _, ids = frame_and_masks(12, 2)
    loaded = _masks(video, video.frames[2], [1, 0])
    for k in (0, 1):
        np.testing.assert_array_equal(loaded[k], ids == k + 1)
    rgb = np.asarray(read_frames([video.frames[2]])[0], dtype=np.int16)
    expected, _ = frame_and_masks(12, 2)
    assert np.abs(rgb - expected).mean() < 6
    kept = build_raw_dataset(DatasetConfig("sav", str(img), str(gt), rm_unannotated=False)).get_video(0)
    assert [f.index for f in kept.frames] == [0, 4, 8, 12, 16, 20]
    assert kept.segments.visible_objects(kept.frames[2]) == [0]
    check_dataset(DatasetConfig("sav", str(img), str(gt)))


def test_sav_fps_field_sets_annotation_stride(tmp_path):
    import json

    img, gt = write_sav(tmp_path, {"v": 9}, ann_every=4)
    path = gt / "v_manual.json"
    data = json.loads(path.read_text())
    data["fps"] = 6
    path.write_text(json.dumps(data))
    video = build_raw_dataset(DatasetConfig("sav", str(img), str(gt), ann_every=1)).get_video(0)
    assert [f.index for f in video.frames] == [0, 4, 8]


def test_sa1b_images_as_videos(tmp_path):
    root = write_sa1b(tmp_path / "sa1b", ["sa_2", "sa_1"], num_objects=3)
    raw = build_raw_dataset(DatasetConfig("sa1b", str(root), str(root), num_frames=2))
    video = raw.get_video(0)
    assert video.name == "sa_1" and len(video.frames) == 2 and video.frames[0] == video.frames[1]
    assert video.segments.visible_objects(video.frames[0]) == [0, 1, 2]  # the area-0 mask is dropped
    _, ids = frame_and_masks(1, 3)
    np.testing.assert_array_equal(_masks(video, video.frames[0], [2])[2], ids == 3)
    small = build_raw_dataset(DatasetConfig("sa1b", str(root), str(root), mask_area_frac_thresh=0.03))
    assert small.get_video(0).segments.visible_objects(video.frames[0]) == []  # each mask is ~4% of the image
    sure = build_raw_dataset(DatasetConfig("sa1b", str(root), str(root), uncertain_iou=0.95))
    assert sure.get_video(0).segments.visible_objects(video.frames[0]) == []  # predicted_iou 0.9 < 0.95


def test_coco_polygons_rle_and_crowd(tmp_path):
    img_dir, ann = write_coco(tmp_path, num_images=2)
    raw = build_raw_dataset(DatasetConfig("coco", str(img_dir), ann_file=str(ann)))
    assert len(raw) == 2  # the image without annotations is skipped
    video = raw.get_video(1)
    assert video.segments.visible_objects(video.frames[0]) == [0, 1, 2]  # crowd excluded
    _, ids = frame_and_masks(1, 3)
    loaded = _masks(video, video.frames[0], [0, 1, 2])
    for k in range(3):  # polygon, compressed RLE, uncompressed RLE
        np.testing.assert_array_equal(loaded[k], ids == k + 1)
    crowd = build_raw_dataset(DatasetConfig("coco", str(img_dir), ann_file=str(ann), include_crowd=True))
    assert crowd.get_video(0).segments.visible_objects(video.frames[0]) == [0, 1, 2, 3]
    check_dataset(DatasetConfig("coco", str(img_dir), ann_file=str(ann)))


def test_random_uniform_sampler(tmp_path):
    img, gt = write_davis(tmp_path, {"v": 10}, num_objects=3)
    video = build_raw_dataset(DatasetConfig("vos", str(img), str(gt))).get_video(0)
    sampler = RandomUniformSampler(num_frames=4, max_num_objects=2)
    starts = set()
    for s in range(40):
        clip = sampler.sample(video, np.random.default_rng(s))
        idx = [f.index for f in clip.frames]
        assert idx == list(range(idx[0], idx[0] + 4))
        assert len(clip.object_ids) == 2 and set(clip.object_ids) <= {1, 2, 3}
        starts.add(idx[0])
    assert starts == set(range(7))
    clip = RandomUniformSampler(4, 5, reverse_time_prob=1.0).sample(video, np.random.default_rng(0))
    assert [f.index for f in clip.frames] == list(range(clip.frames[0].index, clip.frames[0].index - 4, -1))
    assert sorted(clip.object_ids) == [1, 2, 3]
    with pytest.raises(SamplingError, match="fewer than num_frames=11"):
        RandomUniformSampler(11, 1).sample(video, np.random.default_rng(0))
    full = EvalSampler().sample(video)
    assert len(full.frames) == 10 and full.object_ids == [1, 2, 3]


def test_sampler_only_takes_objects_of_the_first_frame(tmp_path):
    from sam2.utils.png_masks import save_ann_png

    img, gt = write_davis(tmp_path, {"v": 3}, num_objects=2)
    for t in range(3):  # object 1 only on frame 0, object 2 only on frames 1 and 2
        _, ids = frame_and_masks(t, 2)
        ids[ids == (2 if t == 0 else 1)] = 0
        save_ann_png(gt / "v" / f"{t:05d}.png", ids)
    video = build_raw_dataset(DatasetConfig("vos", str(img), str(gt))).get_video(0)
    for s in range(10):
        clip = RandomUniformSampler(2, 3).sample(video, np.random.default_rng(s))
        assert clip.object_ids == ([1] if clip.frames[0].index == 0 else [2])
