"""OnnxImagePredictor against SAM2ImagePredictor on the 128-pixel micro model, plus its numpy pieces.

Covers what the fixtures do not: dynamic point counts (0, 1, many), batches of prompts, mask-only and
no-prompt calls, the numpy resize rules at many sizes, the multimask selection, bad prompts, the
fp16 / int8 variants, and running with PyTorch blocked.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.utils.transforms import SAM2Transforms
from tests.export.export_image_support import micro_export, micro_model

pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 256, (90, 140, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def predictors():
    from sam2.export import OnnxImagePredictor

    ours, ref = OnnxImagePredictor(micro_export()), SAM2ImagePredictor(micro_model())
    ours.set_image(IMAGE)
    ref.set_image(IMAGE)
    return ours, ref


def _assert_same(a, b, what: str) -> None:
    for name, x, y in zip(("masks", "iou", "low_res"), a, b):
        assert x.shape == y.shape and x.dtype == y.dtype == np.float32, f"{what} {name}: {x.shape} vs {y.shape}"
        if name == "masks" and set(np.unique(y)) <= {0.0, 1.0}:
            assert np.mean(x != y) <= 1e-3, f"{what} masks differ"
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=2e-5, err_msg=f"{what} {name}")


PROMPTS = {
    "one_click": dict(point_coords=[[60, 40]], point_labels=[1]),
    "five_clicks_single": dict(point_coords=RNG.uniform(0, 90, (5, 2)), point_labels=[1, 0, 1, 1, 0],
                               multimask_output=False),
    "box": dict(box=[10, 5, 120, 80], multimask_output=False),
    "box_and_clicks_logits": dict(point_coords=[[50, 50], [20, 70]], point_labels=[1, 0], box=[0, 0, 100, 80],
                                  return_logits=True),
    "batched_boxes": dict(box=[[0, 0, 60, 60], [30, 20, 139, 89], [5, 5, 10, 10]], multimask_output=False),
    "batched_points": dict(point_coords=RNG.uniform(0, 1, (2, 3, 2)), point_labels=[[1, 1, 0], [1, 0, 0]],
                           normalize_coords=False),
    "nothing": dict(),
}


@pytest.mark.parametrize("prompt", sorted(PROMPTS))
def test_export_image_predict_matches_pytorch(predictors, prompt):
    ours, ref = predictors
    _assert_same(ours.predict(**PROMPTS[prompt]), ref.predict(**PROMPTS[prompt]), prompt)


def test_export_image_mask_input_and_embedding(predictors):
    ours, ref = predictors
    np.testing.assert_allclose(ours.get_image_embedding(), ref.get_image_embedding().numpy(), rtol=0, atol=1e-4)
    logits = ref.predict(point_coords=[[60, 40]], point_labels=[1], multimask_output=False)[2]
    for kwargs in (dict(mask_input=logits), dict(mask_input=logits, point_coords=[[10, 10]], point_labels=[0])):
        _assert_same(ours.predict(**kwargs, multimask_output=False), ref.predict(**kwargs, multimask_output=False),
                     "mask_input")


def test_export_image_batch_calls(predictors):
    from sam2.export import OnnxImagePredictor

    ours, ref = OnnxImagePredictor(micro_export()), SAM2ImagePredictor(micro_model())
    images = [IMAGE, RNG.integers(0, 256, (200, 64, 3), dtype=np.uint8)]
    ours.set_image_batch(images)
    ref.set_image_batch(images)
    kwargs = dict(point_coords_batch=[np.array([[30, 30]]), np.array([[10, 150]])], point_labels_batch=[[1], [1]],
                  box_batch=[None, np.array([0, 0, 60, 190])])
    a, b = ours.predict_batch(**kwargs), ref.predict_batch(**kwargs)
    for i in range(2):
        _assert_same(tuple(x[i] for x in a), tuple(x[i] for x in b), f"image {i}")
    with pytest.raises(ValueError, match="box_batch has 1 entries for 2 images"):
        ours.predict_batch(box_batch=[[0, 0, 5, 5]])


@pytest.mark.parametrize("hw,size", [((90, 140), 128), ((213, 320), 1024), ((1000, 37), 128), ((5, 7), 64)])
def test_export_image_preprocess_matches_torch(hw, size):
    from sam2.export.runtime_transforms import preprocess_image

    image = RNG.integers(0, 256, (*hw, 3), dtype=np.uint8)
    ours, ref = preprocess_image(image, size)[0], SAM2Transforms(size, 0.0)(image).numpy()
    assert np.abs(ours - ref).max() < 1e-5


@pytest.mark.parametrize("low,hw", [(32, (90, 140)), (256, (213, 320)), (256, (100, 50)), (32, (7, 300))])
def test_export_image_mask_upscale_matches_torch(low, hw):
    from sam2.export.runtime_transforms import upscale_masks

    x = RNG.standard_normal((2, 3, low, low)).astype(np.float32) * 4
    ref = F.interpolate(torch.from_numpy(x), hw, mode="bilinear", align_corners=False).numpy()
    assert np.abs(upscale_masks(x, hw) - ref).max() < 2e-5


def test_export_image_dynamic_multimask_selection():
    """Token 0 stable -> kept; unstable -> the best-IoU multimask candidate (as MaskDecoder does)."""
    from sam2.export.runtime_transforms import select_masks

    decoder = micro_model().sam_mask_decoder
    opts = decoder.options
    low = RNG.standard_normal((3, 4, 8, 8)).astype(np.float32)
    low[0, 0] = 5.0  # far from 0: stability 1
    low[1, 0] = 0.01  # inside +-delta: stability 0
    iou = RNG.uniform(0, 1, (3, 4)).astype(np.float32)
    ref_masks, ref_iou = decoder._dynamic_multimask_via_stability(torch.from_numpy(low), torch.from_numpy(iou))
    masks, scores = select_masks(low, iou, False, True, opts.dynamic_multimask_stability_delta,
                                 opts.dynamic_multimask_stability_thresh)
    np.testing.assert_array_equal(masks, ref_masks.numpy())
    np.testing.assert_array_equal(scores, ref_iou.numpy())
    assert scores[0, 0] == iou[0, 0] and scores[1, 0] == iou[1, 1:].max()


@pytest.mark.parametrize("kwargs,message", [
    (dict(point_coords=[[1, 2]], point_labels=[5]), "point_labels must be"),
    (dict(point_coords=[[1, 2]]), "point_labels must be supplied"),
    (dict(point_coords=[[1, 2, 3]], point_labels=[1]), "point_coords must have shape"),
    (dict(box=[1, 2, 3]), "box must have shape"),
    (dict(box=[[0, 0, 1, 1]] * 2, point_coords=[[[1, 1]]] * 3, point_labels=[[1]] * 3), "box batch"),
    (dict(mask_input=np.zeros((1, 16, 16))), "mask_input must have shape"),
    (dict(point_coords=[[np.nan, 1]], point_labels=[1]), "NaN"),
])
def test_export_image_bad_prompts(predictors, kwargs, message):
    with pytest.raises(ValueError, match=message):
        predictors[0].predict(**kwargs)


def test_export_image_needs_an_image_first():
    from sam2.export import OnnxImagePredictor

    predictor = OnnxImagePredictor(micro_export())
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(point_coords=[[1, 1]], point_labels=[1])
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.get_image_embedding()
    with pytest.raises(ValueError, match="max_hole_area"):
        OnnxImagePredictor(micro_export(), max_hole_area=10)


def test_export_image_runs_without_torch(tmp_path):
    """A subprocess in which importing torch fails still loads the export and predicts."""
    np.save(tmp_path / "image.npy", IMAGE)
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, Block())
        import numpy as np
        from sam2.export import OnnxImagePredictor
        p = OnnxImagePredictor({str(micro_export())!r})
        p.set_image(np.load({str(tmp_path / 'image.npy')!r}))
        masks, iou, low = p.predict(point_coords=[[60, 40]], point_labels=[1])
        assert "torch" not in sys.modules
        print(masks.shape, iou.shape, low.shape)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "(3, 90, 140) (3,) (3, 32, 32)"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_export_image_fp16_int8_agreement():
    """The optional variants load and give masks that largely agree with fp32 (mask IoU printed)."""
    from sam2.export import OnnxImagePredictor

    out = micro_export()
    fp32 = OnnxImagePredictor(out)
    fp32.set_image(IMAGE)
    clicks = [dict(point_coords=[[x, y]], point_labels=[1]) for x, y in RNG.uniform(5, 85, (6, 2))]
    ref = [fp32.predict(**c, multimask_output=False)[0] > 0 for c in clicks]
    for precision, floor in (("fp16", 0.95), ("int8", 0.5)):
        variant = OnnxImagePredictor(out, precision=precision)
        variant.set_image(IMAGE)
        ious = [_iou(variant.predict(**c, multimask_output=False)[0] > 0, r) for c, r in zip(clicks, ref)]
        print(f"{precision}: mean mask IoU vs fp32 {np.mean(ious):.4f}, min {np.min(ious):.4f}")
        assert min(ious) >= floor, f"{precision}: mask IoU {ious}"
