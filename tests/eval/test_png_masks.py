"""Palette / per-object PNG helpers of ``sam2.utils.png_masks``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam2.utils.png_masks import (
    DAVIS_PALETTE,
    get_per_obj_mask,
    load_ann_png,
    load_masks_from_dir,
    put_per_obj_mask,
    read_mask_png,
    save_ann_png,
    save_masks_to_dir,
)


def test_davis_palette_entries():
    assert len(DAVIS_PALETTE) == 768
    rgb = [tuple(DAVIS_PALETTE[3 * i: 3 * i + 3]) for i in range(256)]
    assert rgb[:9] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128),
                       (0, 128, 128), (128, 128, 128), (64, 0, 0)]
    assert rgb[255] == (224, 224, 192)
    assert len(set(rgb)) == 256


def test_save_and_load_palette_png(tmp_path):
    ids = np.array([[0, 1], [2, 255]], np.uint8)
    save_ann_png(tmp_path / "a.png", ids)
    with Image.open(tmp_path / "a.png") as img:
        assert img.mode == "P"
        assert bytes(img.getpalette()[:768]) == DAVIS_PALETTE
    loaded, palette = load_ann_png(tmp_path / "a.png")
    assert loaded.dtype == np.uint8 and (loaded == ids).all()
    custom = list(range(256)) * 3
    save_ann_png(tmp_path / "b.png", ids, custom)
    assert load_ann_png(tmp_path / "b.png")[1][:768] == custom
    with pytest.raises(ValueError, match="uint8"):
        save_ann_png(tmp_path / "c.png", ids.astype(np.int32))


def test_read_mask_png_modes_and_errors(tmp_path):
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path / "grey.png")
    assert read_mask_png(tmp_path / "grey.png").tolist() == [[0, 255]]
    assert load_ann_png(tmp_path / "grey.png")[1] is None  # no palette in a grey PNG
    Image.fromarray(np.array([[False, True]])).save(tmp_path / "bits.png")
    bits = read_mask_png(tmp_path / "bits.png")
    assert bits.dtype == np.uint8 and bits.tolist() == [[0, 1]]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_mask_png(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="cannot read mask PNG .*junk.png"):
        read_mask_png(tmp_path / "junk.png")
    Image.new("RGBA", (2, 2)).save(tmp_path / "rgba.png")
    with pytest.raises(ValueError, match="mode 'RGBA'"):
        read_mask_png(tmp_path / "rgba.png")
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "wide.png")
    assert read_mask_png(tmp_path / "wide.png").max() == 300
    with pytest.raises(ValueError, match="outside 0..255"):
        load_ann_png(tmp_path / "wide.png")


def test_split_and_merge_smallest_id_wins():
    ids = np.array([[0, 3, 3], [1, 0, 3]], np.uint8)
    per_obj = get_per_obj_mask(ids)
    assert list(per_obj) == [1, 3]
    assert per_obj[3].tolist() == [[False, True, True], [False, False, True]]
    assert (put_per_obj_mask(per_obj, 2, 3) == ids).all()
    overlap = {5: np.ones((2, 2), bool), 2: np.array([[1, 0], [0, 0]], bool), 9: np.ones((1, 1, 2, 2), bool)}
    assert put_per_obj_mask(overlap, 2, 2).tolist() == [[2, 5], [5, 5]]
    with pytest.raises(ValueError, match="object id 256"):
        put_per_obj_mask({256: np.ones((1, 1), bool)}, 1, 1)


def test_frame_masks_both_layouts(tmp_path):
    masks = {1: np.array([[1, 1], [0, 0]], bool), 2: np.array([[0, 1], [0, 1]], bool)}
    save_masks_to_dir(tmp_path / "davis", "v", "00007", masks, 2, 2, per_obj_png_file=False)
    assert read_mask_png(tmp_path / "davis" / "v" / "00007.png").tolist() == [[1, 1], [0, 2]]
    save_masks_to_dir(tmp_path / "sav", "v", "00007", masks, 2, 2, per_obj_png_file=True)
    assert read_mask_png(tmp_path / "sav" / "v" / "002" / "00007.png").tolist() == [[0, 1], [0, 1]]
    davis, _ = load_masks_from_dir(tmp_path / "davis", "v", "00007", per_obj_png_file=False)
    assert sorted(davis) == [1, 2] and davis[2].tolist() == [[False, False], [False, True]]
    sav, palette = load_masks_from_dir(tmp_path / "sav", "v", "00007", per_obj_png_file=True)
    assert sorted(sav) == [1, 2] and (sav[2] == masks[2]).all() and bytes(palette[:768]) == DAVIS_PALETTE
    assert load_masks_from_dir(tmp_path / "davis", "v", "00008", False, allow_missing=True) == ({}, None)
    assert load_masks_from_dir(tmp_path / "sav", "v", "00008", True, allow_missing=True)[0] == {}
    with pytest.raises(FileNotFoundError, match="00008.png"):
        load_masks_from_dir(tmp_path / "sav", "v", "00008", True)
    (tmp_path / "sav" / "v" / "obj").mkdir()
    with pytest.raises(ValueError, match="integer id"):
        load_masks_from_dir(tmp_path / "sav", "v", "00007", True)
