"""Utilities of the automatic mask generator (``sam2.utils.amg``) and NMS (``sam2.utils.nms``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from sam2.utils.amg import (
    MaskData,
    area_from_rle,
    batch_iterator,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    build_point_grid,
    calculate_stability_score,
    coco_encode_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from sam2.utils.nms import batched_nms, box_area, nms

# ---------------------------------------------------------------------------------- grids and crops


def test_point_grid_n2():
    grid = build_point_grid(2)
    assert np.allclose(grid, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    assert build_point_grid(1).tolist() == [[0.5, 0.5]]


def test_all_layer_point_grids():
    grids = build_all_layer_point_grids(8, 2, 2)
    assert [g.shape for g in grids] == [(64, 2), (16, 2), (4, 2)]
    assert [g.shape for g in build_all_layer_point_grids(5, 1, 1)] == [(25, 2), (25, 2)]
    assert build_all_layer_point_grids(6, 1, 4)[1].shape == (1, 2)  # int(6 / 4) = 1


def test_generate_crop_boxes_spec_example():
    boxes, layers = generate_crop_boxes((200, 300), 1, 512 / 1500)
    assert boxes == [[0, 0, 300, 200], [0, 0, 184, 134], [0, 66, 184, 200], [116, 0, 300, 134],
                     [116, 66, 300, 200]]
    assert layers == [0, 1, 1, 1, 1]
    boxes, layers = generate_crop_boxes((200, 300), 0, 512 / 1500)
    assert boxes == [[0, 0, 300, 200]] and layers == [0]
    boxes, layers = generate_crop_boxes((200, 300), 2, 512 / 1500)
    assert len(boxes) == 1 + 4 + 16 and layers.count(2) == 16
    assert all(0 <= b[0] < b[2] <= 300 and 0 <= b[1] < b[3] <= 200 for b in boxes)


def test_is_box_near_crop_edge():
    crop = [100, 50, 200, 150]
    orig = [0, 0, 200, 300]
    boxes = torch.tensor([[30, 30, 70, 70],  # centre of the crop
                          [5, 30, 70, 70],  # left edge of the crop (not an image edge)
                          [30, 30, 95, 70],  # right edge of the crop, which is the image edge
                          [30, 30, 70, 79],  # 21 px from the bottom crop edge
                          [30, 30, 70, 80]])  # exactly 20 px: near
    assert is_box_near_crop_edge(boxes, crop, orig).tolist() == [False, True, False, False, True]
    full = [0, 0, 200, 300]
    assert not is_box_near_crop_edge(torch.tensor([[0, 0, 199, 299]]), full, full).any()


def test_uncrop_helpers():
    boxes = torch.tensor([[1, 2, 3, 4]])
    assert uncrop_boxes_xyxy(boxes, [10, 20, 50, 60]).tolist() == [[11, 22, 13, 24]]
    assert uncrop_boxes_xyxy(boxes[None], [10, 20, 50, 60]).tolist() == [[[11, 22, 13, 24]]]
    pts = torch.tensor([[1.5, 2.5]])
    assert uncrop_points(pts, [10, 20, 50, 60]).tolist() == [[11.5, 22.5]]
    masks = torch.ones(2, 3, 4, dtype=torch.bool)
    out = uncrop_masks(masks, [1, 2, 5, 5], 6, 7)
    assert out.shape == (2, 6, 7) and out.sum() == 24 and out[:, 2:5, 1:5].all()
    assert uncrop_masks(masks, [0, 0, 4, 3], 3, 4) is masks
    assert uncrop_masks(masks[:0], [1, 2, 5, 5], 6, 7).shape == (0, 6, 7)


def test_box_xyxy_to_xywh():
    box = torch.tensor([10.0, 20.0, 30.0, 60.0])
    assert box_xyxy_to_xywh(box).tolist() == [10.0, 20.0, 20.0, 40.0]
    assert box.tolist() == [10.0, 20.0, 30.0, 60.0]  # not modified in place
    assert box_xyxy_to_xywh(np.array([1, 2, 3, 5])).tolist() == [1, 2, 2, 3]


# ------------------------------------------------------------------------------------- boxes of masks


def test_batched_mask_to_box():
    masks = torch.zeros(2, 3, 5, 6, dtype=torch.bool)
    masks[0, 0, 1:3, 2:5] = True
    masks[0, 1, 4, 5] = True
    masks[1, 2] = True
    boxes = batched_mask_to_box(masks)
    assert boxes.shape == (2, 3, 4) and boxes.dtype == torch.int64
    assert boxes[0].tolist() == [[2, 1, 4, 2], [5, 4, 5, 4], [0, 0, 0, 0]]
    assert boxes[1].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 5, 4]]
    assert batched_mask_to_box(masks[0, 0]).tolist() == [2, 1, 4, 2]
    assert batched_mask_to_box(torch.zeros(0, 5, 6, dtype=torch.bool)).shape == (0, 4)


# ----------------------------------------------------------------------------------------------- RLE


def test_rle_by_hand():
    m = torch.tensor([[[0, 1, 1], [0, 1, 0]], [[1, 1, 1], [1, 1, 1]], [[0, 0, 0], [0, 0, 0]]], dtype=torch.bool)
    rles = mask_to_rle_pytorch(m)
    # column-major: mask 0 reads 0 0 1 1 1 0
    assert rles[0] == {"size": [2, 3], "counts": [2, 3, 1]}
    assert rles[1] == {"size": [2, 3], "counts": [0, 6]}
    assert rles[2] == {"size": [2, 3], "counts": [6]}
    assert [area_from_rle(r) for r in rles] == [3, 6, 0]
    assert mask_to_rle_pytorch(torch.zeros(0, 2, 3, dtype=torch.bool)) == []


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools, numpy 2
def test_rle_round_trip_and_pycocotools():
    rng = np.random.default_rng(1)
    masks = torch.as_tensor(rng.random((4, 13, 17)) < 0.5)
    masks[1] = False
    masks[2] = True
    for m, rle in zip(masks, mask_to_rle_pytorch(masks)):
        assert all(isinstance(c, int) for c in rle["counts"])
        decoded = rle_to_mask(rle)
        assert decoded.dtype == bool and np.array_equal(decoded, m.numpy())
        assert area_from_rle(rle) == int(m.sum())
        coco = coco_encode_rle(rle)
        assert isinstance(coco["counts"], str) and coco["size"] == [13, 17]
        assert np.array_equal(mask_utils.decode(coco).astype(bool), m.numpy())
        assert mask_utils.area(coco) == int(m.sum())


# ---------------------------------------------------------------------------------- stability, batch


def test_calculate_stability_score():
    logits = torch.tensor([[[-3.0, -0.5, 0.5], [1.5, 2.0, 0.0]],
                           [[-5.0, -5.0, -5.0], [-5.0, -5.0, -5.0]]])
    score = calculate_stability_score(logits, 0.0, 1.0)
    assert score.dtype == torch.float32
    assert score[0].item() == pytest.approx(2 / 5)  # > 1: {1.5, 2.0}; > -1: all but -3
    assert torch.isnan(score[1])  # 0 / 0
    # the int16 row sums hold a full 1024-wide row; the int32 total holds more than 2**15 pixels
    big = torch.ones(1, 300, 1024)
    big[0, :, :10] = -2.0
    assert calculate_stability_score(big, 0.0, 0.5).item() == 1.0
    assert calculate_stability_score(big, 0.0, 3.0).item() == 0.0


def test_batch_iterator():
    a, b = list(range(5)), np.arange(5) * 10
    batches = list(batch_iterator(2, a, b))
    assert [x[0] for x in batches] == [[0, 1], [2, 3], [4]]
    assert [x[1].tolist() for x in batches] == [[0, 10], [20, 30], [40]]
    with pytest.raises(AssertionError, match="same size"):
        list(batch_iterator(2, a, b[:3]))


def test_mask_data():
    data = MaskData(t=torch.arange(4), a=np.arange(4) * 2, lst=["a", "b", "c", "d"])
    data.filter(torch.tensor([True, False, True, True]))
    assert data["t"].tolist() == [0, 2, 3] and data["a"].tolist() == [0, 4, 6]
    assert data["lst"] == ["a", "c", "d"]
    data.filter(torch.tensor([2, 0]))  # index tensors reorder
    assert data["t"].tolist() == [3, 0] and data["a"].tolist() == [6, 0] and data["lst"] == ["d", "a"]
    data.cat(MaskData(t=torch.tensor([9]), a=np.array([9]), lst=["z"], extra=[1]))
    assert data["t"].tolist() == [3, 0, 9] and data["a"].tolist() == [6, 0, 9]
    assert data["lst"] == ["d", "a", "z"] and data["extra"] == [1]
    data["f"] = torch.tensor([1, 2, 3], dtype=torch.int64)
    del data["extra"]
    data.to_numpy()
    assert isinstance(data["t"], np.ndarray) and data["t"].dtype == np.float32
    assert "extra" not in data and sorted(k for k, _ in data.items()) == ["a", "f", "lst", "t"]
    with pytest.raises(AssertionError, match="only supports"):
        data["bad"] = 3
    with pytest.raises(AssertionError, match="only supports"):
        MaskData(bad=(1, 2))


def test_mask_data_to_numpy_from_empty_start():
    data = MaskData()
    data.cat(MaskData(x=torch.zeros(0, 4)))
    data.cat(MaskData(x=torch.ones(2, 4)))
    assert data["x"].shape == (2, 4)


# ------------------------------------------------------------------------------- small-region removal


def test_remove_small_regions_holes_and_islands():
    m = np.zeros((10, 10), dtype=bool)
    m[1:6, 1:6] = True
    m[3, 3] = False  # hole of 1 pixel
    m[8, 8] = m[9, 9] = True  # diagonal island of 2 pixels (8-connected)
    filled, changed = remove_small_regions(m, 2, "holes")
    assert changed and filled[3, 3] and filled.sum() == m.sum() + 1
    same, changed = remove_small_regions(m, 1, "holes")  # < 1: nothing is small
    assert not changed and same is m
    clean, changed = remove_small_regions(m, 3, "islands")  # island of 2 < 3
    assert changed and not clean[8:, 8:].any() and clean[1:6, 1:6].sum() == 24
    kept, changed = remove_small_regions(m, 2, "islands")  # 2 is not < 2
    assert not changed and np.array_equal(kept, m)
    largest, changed = remove_small_regions(m, 100, "islands")  # all small: keep the largest
    assert changed and largest.sum() == 24 and not largest[8:, 8:].any()
    with pytest.raises(AssertionError):
        remove_small_regions(m, 2, "both")


def test_remove_small_regions_border_hole():
    m = np.ones((5, 5), dtype=bool)
    m[0, 0] = False  # background touching the border is a hole too
    filled, changed = remove_small_regions(m, 2, "holes")
    assert changed and filled.all()


# ---------------------------------------------------------------------------------------------- NMS


def _reference_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    """Plain double loop: stable descending order, IoU in the boxes' dtype, suppress when > thr."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # Python sort is stable
    suppressed = [False] * len(order)
    keep = []
    for a, i in enumerate(order):
        if suppressed[a]:
            continue
        keep.append(i)
        for b in range(a + 1, len(order)):
            j = order[b]
            xx0, yy0 = torch.maximum(boxes[i, 0], boxes[j, 0]), torch.maximum(boxes[i, 1], boxes[j, 1])
            xx1, yy1 = torch.minimum(boxes[i, 2], boxes[j, 2]), torch.minimum(boxes[i, 3], boxes[j, 3])
            inter = (xx1 - xx0).clamp(min=0) * (yy1 - yy0).clamp(min=0)
            area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            if float(inter / (area_i + area_j - inter)) > thr:
                suppressed[b] = True
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(120, 2, generator=g) * 50
    wh = torch.rand(120, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.randint(0, 10, (120,), generator=g).float()  # many ties
    for thr in (0.0, 0.3, 0.7):
        assert nms(boxes, scores, thr).tolist() == _reference_nms(boxes, scores, thr)


def test_nms_strict_threshold_and_ties():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 5.0],
                          [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.8, 0.1])
    # IoU of box 0 with boxes 1 and 2 is exactly 0.5: kept at threshold 0.5, suppressed below it
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 3]  # 2 is a duplicate of 1 (IoU 1 > 0.5)
    assert nms(boxes, scores, 0.49).tolist() == [0, 3]
    assert nms(boxes, scores, 1.0).tolist() == [0, 1, 2, 3]  # IoU 1 is not > 1
    tied = torch.tensor([0.5, 0.5, 0.5, 0.5])
    assert nms(boxes, tied, 0.99).tolist() == [0, 1, 3]  # equal scores: input order decides
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def test_batched_nms_separates_categories():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 0]), 0.5).tolist() == [0]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 1]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 2]), 0.5).tolist() == [0, 1, 2]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).dtype == torch.int64


def test_box_area():
    boxes = torch.tensor([[0, 0, 300, 200], [116, 66, 300, 200]])
    assert box_area(boxes).tolist() == [60000, 184 * 134]
    assert box_area(boxes.to(torch.int16)).dtype == torch.int32
    assert box_area(boxes.half()).dtype == torch.float32


def test_nms_many_boxes_is_fast():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3000, 2, generator=g) * 1000
    boxes = torch.cat([xy, xy + torch.rand(3000, 2, generator=g) * 100 + 1], dim=1)
    scores = torch.rand(3000, generator=g)
    keep = nms(boxes, scores, 0.7)
    assert keep.numel() > 2000
    assert torch.all(scores[keep][:-1] >= scores[keep][1:])
