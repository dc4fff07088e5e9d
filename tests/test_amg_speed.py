"""The automatic mask generator's fast paths give exactly what the straightforward computation gives.

The straightforward computation is the official order, written out here with the public building blocks:
upsample every candidate with ``SAM2ImagePredictor._predict``, filter on predicted IoU, score stability on
the upsampled logits, filter, binarise, box, drop crop-edge masks, uncrop, run-length encode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
from sam2.utils.amg import (
    MaskData,
    batched_mask_to_box,
    calculate_stability_score,
    concat_mask_data,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    uncrop_masks,
)
from sam2.utils.amg_candidates import chunk_size, score_and_binarize
from sam2.utils.amg_decode import decode_low_res, upscale_logits
from sam2.utils.amg_rle import boxes_from_rle, masks_to_rle
from tests import reference as R

# ------------------------------------------------------------------------------- chunked scoring


def _straight_scores(low_res, out_hw, threshold, offset, stability_thresh):
    logits = F.interpolate(low_res[:, None], out_hw, mode="bilinear", align_corners=False)[:, 0]
    score = calculate_stability_score(logits, threshold, offset)
    rows = torch.arange(low_res.shape[0])
    if stability_thresh > 0:
        keep = score >= stability_thresh
        logits, score, rows = logits[keep], score[keep], rows[keep]
    return rows, score, logits > threshold


def _upscale_to(out_hw):
    return lambda lr: F.interpolate(lr[:, None], out_hw, mode="bilinear", align_corners=False)[:, 0]


@pytest.mark.parametrize("chunk", [1, 3, 7, None])
@pytest.mark.parametrize("stability_thresh", [0.0, 0.5, 2.0])
def test_chunked_scoring_equals_scoring_everything_at_once(chunk, stability_thresh):
    g = torch.Generator().manual_seed(0)
    low_res = torch.randn(7, 16, 16, generator=g) * 3 + torch.linspace(-4, 4, 7)[:, None, None]
    low_res[0] = -50.0  # empty mask: union 0, stability NaN, dropped by any positive threshold
    low_res[1] = 50.0  # full mask: touches every border
    out_hw = (37, 53)
    got = score_and_binarize(low_res, _upscale_to(out_hw), 0.0, 1.0, stability_thresh, out_hw, chunk=chunk)
    rows, score, masks = _straight_scores(low_res, out_hw, 0.0, 1.0, stability_thresh)
    assert torch.equal(got.index, rows)
    assert torch.equal(got.stability_score.isnan(), score.isnan())
    assert torch.equal(got.stability_score.nan_to_num(-1), score.nan_to_num(-1))
    assert torch.equal(got.masks, masks) and got.masks.dtype == torch.bool
    assert got.masks.shape == (len(rows), *out_hw)


def test_chunked_scoring_of_no_candidate_and_of_all_rejected():
    out_hw = (9, 11)
    for low_res, thresh in ((torch.zeros(0, 4, 4), 0.5), (torch.full((3, 4, 4), -9.0), 0.5)):
        got = score_and_binarize(low_res, _upscale_to(out_hw), 0.0, 1.0, thresh, out_hw, chunk=2)
        assert got.index.shape == (0,) and got.stability_score.shape == (0,)
        assert got.masks.shape == (0, *out_hw) and got.masks.dtype == torch.bool


def test_chunk_size_fits_the_budget():
    assert chunk_size(1000, 1500, chunk_bytes=16 * 2**20) == 2
    assert chunk_size(4000, 4000, chunk_bytes=16 * 2**20) == 1  # never 0
    assert chunk_size(10, 10, chunk_bytes=400) == 1 and chunk_size(10, 10, chunk_bytes=4000) == 10


class _Transforms:
    def postprocess_masks(self, masks, orig_hw):
        return F.interpolate(masks, orig_hw, mode="bilinear", align_corners=False)


class _Predictor:
    _transforms = _Transforms()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("channels", [1, 3])
def test_upscaling_a_subset_gives_the_planes_of_upscaling_everything(threads, channels):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(1)
        low_res = torch.randn(6, channels, 64, 64, generator=g) * 10
        everything = F.interpolate(low_res, (101, 77), mode="bilinear", align_corners=False).flatten(0, 1)
        for subset in ([0, 4, 5, 17], [2], [0, 1, 2], list(range(6 * channels))):
            subset = [i for i in subset if i < 6 * channels]
            some = upscale_logits(_Predictor(), low_res.flatten(0, 1)[subset], (101, 77), channels)
            assert some.shape == (len(subset), 101, 77)
            assert torch.equal(some, everything[subset])
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------ MaskData join


def test_concat_mask_data_equals_repeated_cat():
    parts = [MaskData(rles=[{"counts": [i, 1]}] * (i + 1), boxes=torch.arange(4 * (i + 1)).reshape(-1, 4),
                      arr=np.full(i + 1, i)) for i in range(3)]
    slow = MaskData()
    for part in parts:
        slow.cat(part)
    fast = concat_mask_data(parts)
    assert fast["rles"] == slow["rles"] and torch.equal(fast["boxes"], slow["boxes"])
    assert np.array_equal(fast["arr"], slow["arr"])
    assert list(concat_mask_data([]).items()) == []
    swapped = concat_mask_data([MaskData(a=[1], b=[2]), MaskData(b=[4], a=[3])])  # column order is free
    assert swapped["a"] == [1, 3] and swapped["b"] == [2, 4]
    with pytest.raises(ValueError, match="different columns"):
        concat_mask_data([MaskData(a=[1]), MaskData(b=[1])])


# ------------------------------------------------------------------- whole batches on a real model


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    from sam2.build_sam import build_sam2

    sc = R.load_scenario("amg_sam2.1_hiera_micro")
    ckpt = sc.checkpoint(tmp_path_factory.mktemp("micro"))
    return build_sam2(sc.config, ckpt, device="cpu", mode="eval", apply_postprocessing=True)


def _straight_batch(gen, points, im_size, crop_box, orig_size):
    """The official batch order, with every candidate upsampled by ``_predict``."""
    pred = gen.predictor
    orig_h, orig_w = orig_size
    points_t = torch.as_tensor(points, dtype=torch.float32)
    in_points = pred._transforms.transform_coords(points_t, normalize=True, orig_hw=im_size)
    labels = torch.ones(in_points.shape[0], dtype=torch.int)
    masks, iou, low_res = pred._predict(in_points[:, None], labels[:, None], multimask_output=gen.multimask_output,
                                        return_logits=True)
    data = MaskData(masks=masks.flatten(0, 1), iou_preds=iou.flatten(0, 1),
                    points=points_t.repeat_interleave(masks.shape[1], dim=0), low_res=low_res.flatten(0, 1))
    if gen.use_m2m:
        pts = pred._transforms.transform_coords(data["points"], normalize=True, orig_hw=im_size)
        masks, ious = [], []
        for start in range(0, len(pts), gen.points_per_batch):
            sl = slice(start, start + gen.points_per_batch)
            m, i, _ = pred._predict(pts[sl, None], torch.ones(len(pts[sl]), 1, dtype=torch.int),
                                    mask_input=data["low_res"][sl, None], multimask_output=False,
                                    return_logits=True)
            masks.append(m[:, 0])
            ious.append(i[:, 0])
        data["masks"], data["iou_preds"] = torch.cat(masks), torch.cat(ious)
    del data["low_res"]
    if gen.pred_iou_thresh > 0:
        data.filter(data["iou_preds"] > gen.pred_iou_thresh)
    data["stability_score"] = calculate_stability_score(data["masks"], gen.mask_threshold,
                                                        gen.stability_score_offset)
    if gen.stability_score_thresh > 0:
        data.filter(data["stability_score"] >= gen.stability_score_thresh)
    data["masks"] = data["masks"] > gen.mask_threshold
    data["boxes"] = batched_mask_to_box(data["masks"])
    data.filter(~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h]))
    data["rles"] = mask_to_rle_pytorch(uncrop_masks(data["masks"], crop_box, orig_h, orig_w))
    del data["masks"]
    return data


BATCH_CASES = {
    "keep_all": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
    "filters": {"pred_iou_thresh": 0.3, "stability_score_thresh": 0.3},
    "single_mask": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "multimask_output": False},
    "m2m": {"pred_iou_thresh": 0.1, "stability_score_thresh": 0.2, "use_m2m": True, "points_per_batch": 5},
    "holes": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "min_mask_region_area": 30},
    "threshold_offset": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.5, "mask_threshold": 0.5,
                         "stability_score_offset": 0.25},
}


BATCH_RUNS = [(case, "whole") for case in BATCH_CASES] + [("keep_all", "crop"), ("m2m", "crop")]


@R.requires_reference
@pytest.mark.parametrize(("case", "crop"), BATCH_RUNS, ids=[f"{c}-{k}" for c, k in BATCH_RUNS])
def test_fast_batch_equals_straightforward_batch(micro_model, case, crop):
    image = R.image("truck")
    orig_size = image.shape[:2]
    crop_box = [0, 0, orig_size[1], orig_size[0]] if crop == "whole" else [40, 30, 250, 200]
    x0, y0, x1, y1 = crop_box
    gen = SAM2AutomaticMaskGenerator(micro_model, points_per_side=3, **BATCH_CASES[case])
    gen.predictor.set_image(image[y0:y1, x0:x1])
    im_size = (y1 - y0, x1 - x0)
    points = gen.point_grids[0] * np.array(im_size)[None, ::-1]
    fast = gen._process_batch(points, im_size, crop_box, orig_size, normalize=True)
    straight = _straight_batch(gen, points, im_size, crop_box, orig_size)
    assert sorted(k for k, _ in fast.items()) == sorted(k for k, _ in straight.items())
    if crop == "whole":  # with random weights every mask spans its crop, so crop runs keep none
        assert len(straight["rles"]) > 0
    assert fast["rles"] == straight["rles"]
    for key in ("iou_preds", "points", "stability_score", "boxes"):
        assert torch.equal(fast[key], straight[key]), key


@R.requires_reference
@pytest.mark.parametrize("hole_area", [0, 30])
def test_decode_then_upscale_equals_predict(micro_model, hole_area):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(micro_model, max_hole_area=hole_area, max_sprinkle_area=hole_area)
    pred.set_image(R.image("cars"))
    coords = torch.tensor([[[40.0, 60.0]], [[100.0, 20.0]], [[5.0, 120.0]]])
    labels = torch.ones(3, 1, dtype=torch.int)
    masks, iou, low_res = pred._predict(coords, labels, multimask_output=True, return_logits=True)
    raw, iou2 = decode_low_res(pred, coords, labels, multimask_output=True)
    assert torch.equal(iou, iou2) and torch.equal(low_res, raw.clamp(-32, 32))
    up = upscale_logits(pred, raw.flatten(0, 1)[[1, 2, 6]], pred._orig_hw[-1], channels=3)
    assert torch.equal(up, masks.flatten(0, 1)[[1, 2, 6]])
    with pytest.raises(RuntimeError, match="set_image"):
        pred.reset_predictor()
        decode_low_res(pred, coords, labels)


# --------------------------------------------------------------------------------- RLE and boxes


def _edge_masks() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    h, w = 23, 17
    blobs = F.interpolate(torch.randn(8, 1, 4, 4, generator=g), (h, w), mode="bilinear")[:, 0] > 0.3
    noise = torch.rand(4, h, w, generator=g) > 0.5
    special = torch.zeros(8, h, w, dtype=torch.bool)
    special[1] = True  # full: one run over every column
    special[2, 0, 0] = True  # first pixel only
    special[3, -1, -1] = True  # last pixel only
    special[4, :, 5] = True  # one full column
    special[5, 7, :] = True  # one row: a run per column
    special[6, 20:, 3] = True  # bottom of column 3 and top of column 4: one run across columns
    special[6, :2, 4] = True
    special[7, :, -1] = True  # right border column
    return torch.cat([blobs, noise, special])  # special[0] stays empty


@pytest.mark.parametrize("shape", [None, (5, 1, 9), (5, 9, 1), (3, 1, 1)])
def test_rle_without_transpose_equals_rle_of_transposed_masks(shape):
    g = torch.Generator().manual_seed(3)
    masks = _edge_masks() if shape is None else torch.rand(*shape, generator=g) > 0.5
    assert masks_to_rle(masks) == mask_to_rle_pytorch(masks)
    assert masks_to_rle(masks[:0]) == [] and masks_to_rle(torch.zeros(2, 0, 4, dtype=torch.bool)) == \
        mask_to_rle_pytorch(torch.zeros(2, 0, 4, dtype=torch.bool))


def test_boxes_from_rle_equal_boxes_of_the_masks():
    masks = _edge_masks()
    boxes = boxes_from_rle(mask_to_rle_pytorch(masks))
    assert boxes.dtype == torch.int64
    assert torch.equal(boxes, batched_mask_to_box(masks))
    assert boxes[-8].tolist() == [0, 0, 0, 0]  # the empty mask
    assert boxes_from_rle([]).shape == (0, 4)
