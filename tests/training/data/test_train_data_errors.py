"""Every bad input is a clear error naming the file, before training where possible."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from sam2.training.data import (
    DataConfig,
    DatasetConfig,
    DatasetError,
    build_train_loader,
    check_dataset,
    validate_dataset,
)
from sam2.utils.png_masks import save_ann_png
from tests.training.data.train_data_builders import write_coco, write_davis, write_sa1b, write_sav


def _vos(img, gt, **kw) -> DatasetConfig:
    return DatasetConfig("vos", str(img), str(gt), num_frames=kw.pop("num_frames", 2), **kw)


def _loader(ds: DatasetConfig, num_workers: int = 0):
    return build_train_loader(DataConfig([ds], resolution=16, num_workers=num_workers))


def _name(path) -> str:
    return re.escape(str(path))


def test_missing_and_empty_folders(tmp_path):
    img, gt = write_davis(tmp_path, {"v": 3})
    with pytest.raises(DatasetError, match=f"image folder.*{_name(tmp_path / 'nope')}.*does not exist"):
        validate_dataset(_vos(tmp_path / "nope", gt))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=f"mask folder.*{_name(tmp_path / 'empty')}.* is empty"):
        validate_dataset(_vos(img, tmp_path / "empty"))
    (img / "w").mkdir()
    with pytest.raises(DatasetError, match=f"{_name(img / 'w')}.* has no image frames"):
        validate_dataset(_vos(img, gt))


def test_frame_without_mask(tmp_path):
    img, gt = write_davis(tmp_path, {"v": 4, "w": 2})
    (gt / "v" / "00002.png").unlink()
    with pytest.raises(DatasetError, match=f"{_name(img / 'v' / '00002.jpg')}.*has no.*{_name(gt / 'v' / '00002.png')}"):
        validate_dataset(_vos(img, gt))
    (gt / "v").rename(tmp_path / "moved")
    with pytest.raises(DatasetError, match=f"mask folder '{_name(gt / 'v')}' of video 'v' does not exist"):
        validate_dataset(_vos(img, gt))


def test_mask_size_differs_from_frame(tmp_path):
    img, gt = write_davis(tmp_path, {"v": 4})
    save_ann_png(gt / "v" / "00000.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError, match=f"mask {_name(repr(str(gt / 'v' / '00000.png')))} has size 10x10"):
        validate_dataset(_vos(img, gt))
    img2, gt2 = write_davis(tmp_path / "late", {"v": 2})
    save_ann_png(gt2 / "v" / "00001.png", np.ones((10, 10), np.uint8))
    loader = _loader(_vos(img2, gt2))  # only the first frame is checked at start-up
    with pytest.raises(DatasetError, match=f"{_name(gt2 / 'v' / '00001.png')}.*has size 10x10"):
        list(loader)
    with pytest.raises(DatasetError, match=f"{_name(gt2 / 'v' / '00001.png')}"):
        check_dataset(_vos(img2, gt2))


def test_unreadable_images_and_masks(tmp_path):
    img, gt = write_davis(tmp_path, {"v": 2})
    (img / "v" / "00000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=f"cannot read image {_name(repr(str(img / 'v' / '00000.jpg')))}"):
        validate_dataset(_vos(img, gt))
    img2, gt2 = write_davis(tmp_path / "late", {"v": 2})
    data = (img2 / "v" / "00001.jpg").read_bytes()
    (img2 / "v" / "00001.jpg").write_bytes(data[: len(data) // 3])  # truncated: header fine, pixels not
    with pytest.raises(DatasetError, match=_name(img2 / "v" / "00001.jpg")):
        list(_loader(_vos(img2, gt2), num_workers=1))  # the worker's error reaches the caller
    with pytest.raises(DatasetError, match=_name(img2 / "v" / "00001.jpg")):
        check_dataset(_vos(img2, gt2))
    img3, gt3 = write_davis(tmp_path / "mask", {"v": 2})
    (gt3 / "v" / "00001.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=f"cannot read mask PNG {_name(repr(str(gt3 / 'v' / '00001.png')))}"):
        check_dataset(_vos(img3, gt3))


def test_file_lists(tmp_path):
    img, gt = write_davis(tmp_path, {"a": 2, "b": 2})
    empty = tmp_path / "list.txt"
    empty.write_text("\n")
    with pytest.raises(DatasetError, match=f"file list.*{_name(empty)}.* is empty"):
        validate_dataset(_vos(img, gt, file_list_txt=str(empty)))
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("a\nzz\n")
    with pytest.raises(DatasetError, match="1 entries of file list .*wrong.txt.* not in .*: zz"):
        validate_dataset(_vos(img, gt, file_list_txt=str(wrong)))
    with pytest.raises(DatasetError, match="file list.*missing.txt.* does not exist"):
        validate_dataset(_vos(img, gt, file_list_txt=str(tmp_path / "missing.txt")))
    everything = tmp_path / "all.txt"
    everything.write_text("a\nb\n")
    with pytest.raises(DatasetError, match="no videos/images left"):
        validate_dataset(_vos(img, gt, excluded_videos_list_txt=str(everything)))


def test_coco_errors(tmp_path):
    img_dir, ann = write_coco(tmp_path, num_images=2, missing="gone.jpg")
    with pytest.raises(DatasetError, match=f"{_name(ann)}.* references 1 images missing .*gone.jpg"):
        validate_dataset(DatasetConfig("coco", str(img_dir), ann_file=str(ann)))
    img_dir2, ann2 = write_coco(tmp_path / "resized", num_images=1)
    Image.new("RGB", (10, 10)).save(img_dir2 / "img_000.jpg")
    with pytest.raises(DatasetError, match="img_000.jpg.* is 10x10 .*says 48x64"):
        validate_dataset(DatasetConfig("coco", str(img_dir2), ann_file=str(ann2)))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match=f"cannot read COCO annotation file {_name(repr(str(bad)))}"):
        validate_dataset(DatasetConfig("coco", str(img_dir2), ann_file=str(bad)))
    no_size = tmp_path / "no_size.json"
    no_size.write_text(json.dumps({"images": [{"id": 1, "file_name": "img_000.jpg"}], "annotations": []}))
    with pytest.raises(DatasetError, match="no_size.json.*KeyError.*height"):
        validate_dataset(DatasetConfig("coco", str(img_dir2), ann_file=str(no_size)))
    with pytest.raises(ValueError, match="`ann_file` is required"):
        validate_dataset(DatasetConfig("coco", str(img_dir2)))


def test_sav_and_sa1b_errors(tmp_path):
    img, gt = write_sav(tmp_path, {"v1": 8, "v2": 8})
    (gt / "v2_manual.json").unlink()
    with pytest.raises(DatasetError, match=f"SA-V annotation of video 'v2' {_name(repr(str(gt / 'v2_manual.json')))}"):
        validate_dataset(DatasetConfig("sav", str(img), str(gt)))
    (gt / "v2_manual.json").write_text(json.dumps({"video_id": "v2"}))
    with pytest.raises(DatasetError, match="v2_manual.json.* has no 'masklet'"):
        check_dataset(DatasetConfig("sav", str(img), str(gt), num_frames=1))
    mp4_img, mp4_gt = write_sav(tmp_path / "mp4", {"v1": 8}, as_mp4=True)
    (mp4_img / "v1.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetError, match=f"cannot open video {_name(repr(str(mp4_img / 'v1.mp4')))}"):
        validate_dataset(DatasetConfig("sav", str(mp4_img), str(mp4_gt)))
    root = write_sa1b(tmp_path / "sa1b", ["a", "b"])
    (root / "b.json").unlink()
    with pytest.raises(DatasetError, match="SA-1B annotation of image 'b'.*b.json"):
        validate_dataset(DatasetConfig("sa1b", str(root), str(root)))


def test_config_errors(tmp_path):
    img, gt = write_davis(tmp_path, {"a": 3, "b": 2})
    with pytest.raises(ValueError, match="unknown dataset kind 'davis'; expected one of vos, sav, sa1b, coco"):
        validate_dataset(DatasetConfig("davis", str(img), str(gt)))
    with pytest.raises(DatasetError, match="every video has fewer frames than num_frames=4 .longest: 3"):
        validate_dataset(_vos(img, gt, num_frames=4))
    with pytest.raises(ValueError, match="`datasets` is empty"):
        build_train_loader(DataConfig([]))
    with pytest.raises(ValueError, match="`dataset_prob` must be >= 0 and sum to 1"):
        build_train_loader(DataConfig([_vos(img, gt)] * 2, dataset_prob=[0.5, 0.6]))
    with pytest.raises(ValueError, match="gives no batch: 2 items x multiplier 1.0 over 1 ranks with batch_size 3"):
        _loader(_vos(img, gt, batch_size=3))
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        _loader(_vos(img, gt, batch_size=0))
    with pytest.raises(ValueError, match="need 0 <= rank < world_size"):
        build_train_loader(DataConfig([_vos(img, gt)]), rank=2, world_size=2)


@pytest.mark.parametrize("line", ["../a", "/etc/passwd", "..", "sub/a"])
def test_file_list_names_stay_inside_the_dataset(tmp_path, line):
    img, gt = write_davis(tmp_path, {"a": 2, "b": 2})
    listing = tmp_path / "list.txt"
    listing.write_text(f"b\n{line}\n")
    with pytest.raises(DatasetError, match=f"{_name(listing)}.* line 2: .* is not a plain name"):
        validate_dataset(_vos(img, gt, file_list_txt=str(listing)))
