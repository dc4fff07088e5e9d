"""``SAM2ImagePredictor`` behaviour beyond the parity fixtures: input checks, state handling, output
shapes and dtypes, batching, thresholds and hole / sprinkle removal.

Uses the micro SAM 2.1 model with synthesized weights; every ``set_image`` costs one 1024x1024 encoder
pass, so predictors are shared where a test does not change their state.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor
from tests import reference as R

pytestmark = R.requires_reference

MICRO21 = "sam2.1_hiera_micro"
POINT = np.array([[120.0, 90.0]], dtype=np.float32)  # in the truck image (213 x 320)
LABEL = np.array([1], dtype=np.int32)
BOX = np.array([40.0, 30.0, 260.0, 180.0], dtype=np.float32)


@pytest.fixture(scope="module")
def model():
    net = build_sam2(R.config_for(MICRO21), device="cpu")
    net.load_state_dict(R.synth_module().synth_state_dict(R.manifest_path(MICRO21), seed=0))
    return net


@pytest.fixture(scope="module")
def truck() -> np.ndarray:
    return R.image("truck")


@pytest.fixture(scope="module")
def shared(model, truck) -> SAM2ImagePredictor:
    """A predictor with the truck image set. Tests must not change its state."""
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(truck)
    return predictor


class CallCounter:
    """Counts forward calls of the image encoder, prompt encoder and mask decoder."""

    def __init__(self, net) -> None:
        self.calls = 0
        self._handles = [m.register_forward_pre_hook(self._hook)
                         for m in (net.image_encoder, net.sam_prompt_encoder, net.sam_mask_decoder)]

    def _hook(self, *_):
        self.calls += 1

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@pytest.fixture
def counter(model):
    c = CallCounter(model)
    yield c
    c.remove()


def _snapshot(predictor: SAM2ImagePredictor):
    feats = predictor._features
    return (feats, feats["image_embed"].clone(), [f.clone() for f in feats["high_res_feats"]],
            list(predictor._orig_hw), predictor._is_image_set, predictor._is_batch)


def _assert_unchanged(predictor: SAM2ImagePredictor, snap) -> None:
    feats, embed, high_res, orig_hw, is_set, is_batch = snap
    assert predictor._features is feats
    assert torch.equal(predictor._features["image_embed"], embed)
    assert all(torch.equal(a, b) for a, b in zip(predictor._features["high_res_feats"], high_res))
    assert predictor._orig_hw == orig_hw
    assert (predictor._is_image_set, predictor._is_batch) == (is_set, is_batch)


def _assert_same_outputs(a, b) -> None:
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y)


# ------------------------------------------------------------------------------ images

def test_pil_and_float_images_give_the_same_embedding(model, shared, truck) -> None:
    predictor = SAM2ImagePredictor(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's warning about read-only numpy arrays
        predictor.set_image(Image.fromarray(truck))
    assert predictor._orig_hw == [truck.shape[:2]]
    assert torch.equal(predictor.get_image_embedding(), shared.get_image_embedding())
    for a, b in zip(predictor._features["high_res_feats"], shared._features["high_res_feats"]):
        assert torch.equal(a, b)

    predictor.set_image(truck.astype(np.float32) / 255.0)  # float images are taken as [0, 1]
    assert torch.equal(predictor.get_image_embedding(), shared.get_image_embedding())


@pytest.mark.parametrize(("image", "pattern"), [
    (np.zeros((64, 48), np.uint8), "HxWx3"),
    (np.zeros((64, 48, 4), np.uint8), "HxWx3"),
    (np.zeros((3, 64, 48), np.uint8), "HxWx3"),
    (np.zeros((0, 48, 3), np.uint8), "empty"),
    (np.full((64, 48, 3), 200.0), r"\[0, 1\]"),  # float with 0-255 values
    (np.full((64, 48, 3), np.nan, np.float32), r"\[0, 1\]"),
    (np.zeros((64, 48, 3), np.int16), "dtype int16"),
    (np.zeros((64, 48, 3), bool), "dtype bool"),
])
def test_bad_images_are_rejected_and_keep_the_state(shared, counter, image, pattern) -> None:
    snap = _snapshot(shared)
    with pytest.raises(ValueError, match=pattern):
        shared.set_image(image)
    with pytest.raises(ValueError, match=pattern):
        shared.set_image_batch([shared_image_ok(), image])
    assert counter.calls == 0
    _assert_unchanged(shared, snap)


def test_high_bit_depth_pil_images_keep_their_brightness(model, shared, counter) -> None:
    """16-bit grey is scaled by 1/65535 and float grey taken as [0, 1] (PIL's convert('RGB') would
    clip them to 255 / 0); float grey outside [0, 1] has no defined brightness and is rejected."""
    grey16 = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
    as_float = np.repeat((grey16 / 65535.0).astype(np.float32)[..., None], 3, axis=-1)
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(as_float)
    expected = predictor.get_image_embedding().clone()
    predictor.set_image(Image.fromarray(grey16))
    assert Image.fromarray(grey16).mode == "I;16"
    assert torch.equal(predictor.get_image_embedding(), expected)
    predictor.set_image(Image.fromarray(as_float[..., 0], mode="F"))
    assert torch.equal(predictor.get_image_embedding(), expected)

    counter.calls = 0
    snap = _snapshot(shared)
    for bad in (np.full((8, 8), 200.0, np.float32), np.full((8, 8), np.nan, np.float32)):
        with pytest.raises(ValueError, match="mode 'F' must hold finite values in \\[0, 1\\]"):
            shared.set_image(Image.fromarray(bad, mode="F"))
    with pytest.raises(ValueError, match="16-bit values 0..65535"):
        shared.set_image(Image.fromarray(np.full((8, 8), 70000, np.int32), mode="I"))
    assert counter.calls == 0
    _assert_unchanged(shared, snap)


def shared_image_ok() -> np.ndarray:
    return np.zeros((16, 16, 3), np.uint8)


def test_unsupported_image_types(shared) -> None:
    snap = _snapshot(shared)
    with pytest.raises(NotImplementedError):
        shared.set_image(torch.zeros(16, 16, 3))
    for bad in ([], (shared_image_ok(),)):
        with pytest.raises(ValueError, match="non-empty list"):
            shared.set_image_batch(bad)
    with pytest.raises(ValueError, match="image 1: .*np.ndarray"):
        shared.set_image_batch([shared_image_ok(), Image.new("RGB", (16, 16))])
    _assert_unchanged(shared, snap)


def test_use_before_set_image(model) -> None:
    predictor = SAM2ImagePredictor(model)
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(POINT, LABEL)
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.get_image_embedding()
    with pytest.raises(RuntimeError, match="set_image_batch"):
        predictor.predict_batch([POINT], [LABEL])


def test_embedding_shapes(shared, model) -> None:
    embed = shared.get_image_embedding()
    size = model.sam_image_embedding_size
    assert embed.shape == (1, model.hidden_dim, size, size) and embed.dtype == torch.float32
    s0, s1 = shared._features["high_res_feats"]
    assert s0.shape == (1, model.hidden_dim // 8, 4 * size, 4 * size)
    assert s1.shape == (1, model.hidden_dim // 4, 2 * size, 2 * size)


def test_reset_predictor(model, truck) -> None:
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(truck[:64, :80])
    assert predictor.predict(POINT / 2, LABEL)[0].shape == (3, 64, 80)
    predictor.reset_predictor()
    assert not predictor._is_image_set and predictor._features is None
    with pytest.raises(RuntimeError):
        predictor.predict(POINT / 2, LABEL)
    with pytest.raises(RuntimeError):
        predictor.get_image_embedding()


# ------------------------------------------------------------------------------ prompts

BAD_PROMPTS = {
    "coords_1d": ({"point_coords": np.array([5.0, 5.0]), "point_labels": LABEL}, "point_coords must have shape"),
    "coords_3_columns": ({"point_coords": np.ones((1, 3)), "point_labels": LABEL}, "point_coords must have shape"),
    "coords_4d": ({"point_coords": np.ones((1, 1, 1, 2)), "point_labels": np.ones((1, 1, 1))},
                  "point_coords must have shape"),
    "no_points": ({"point_coords": np.zeros((0, 2)), "point_labels": np.zeros(0)}, "N >= 1"),
    "length_mismatch": ({"point_coords": np.ones((2, 2)), "point_labels": LABEL}, "point_labels must have shape"),
    "labels_without_coords": ({"point_labels": LABEL}, "without point_coords"),
    "coords_without_labels": ({"point_coords": POINT}, "point_labels must be supplied"),
    "nan_coords": ({"point_coords": np.array([[np.nan, 5.0]]), "point_labels": LABEL}, "NaN"),
    "inf_coords": ({"point_coords": np.array([[5.0, np.inf]]), "point_labels": LABEL}, "NaN or infinite"),
    "label_4": ({"point_coords": POINT, "point_labels": np.array([4])}, "-1 .padding., 0 .background., 1"),
    "label_minus_2": ({"point_coords": POINT, "point_labels": np.array([-2])}, "-1 .padding., 0 .background., 1"),
    "label_fraction": ({"point_coords": POINT, "point_labels": np.array([0.5])}, "integers"),
    "string_coords": ({"point_coords": np.array([["a", "b"]]), "point_labels": LABEL}, "numeric"),
    "ragged_coords": ({"point_coords": [[1, 2], [3]], "point_labels": [1, 1]}, "could not be read"),
    "box_3": ({"box": np.ones(3)}, "box must have shape"),
    "box_2x2": ({"box": np.ones((2, 2))}, "box must have shape"),
    "box_3d": ({"box": np.ones((1, 1, 4))}, "box must have shape"),
    "box_nan": ({"box": np.array([1.0, 2.0, np.nan, 4.0])}, "NaN"),
    "box_point_batch": ({"point_coords": np.ones((2, 1, 2)), "point_labels": np.ones((2, 1)), "box": np.ones((3, 4))},
                        "same size"),
    "mask_64": ({"mask_input": np.zeros((1, 64, 64), np.float32)}, "mask_input must have shape"),
    "mask_2d": ({"mask_input": np.zeros((256, 256), np.float32)}, "mask_input must have shape"),
    "mask_2_channels": ({"mask_input": np.zeros((2, 256, 256), np.float32)}, "mask_input must have shape"),
    "mask_nan": ({"mask_input": np.full((1, 256, 256), np.nan, np.float32)}, "NaN"),
    "mask_batch": ({"point_coords": np.ones((2, 1, 2)), "point_labels": np.ones((2, 1)),
                    "mask_input": np.zeros((3, 1, 256, 256), np.float32)}, "mask_input batch"),
}


@pytest.fixture(scope="module")
def reference_prediction(shared):
    return shared.predict(POINT, LABEL, box=BOX)


@pytest.mark.parametrize("case", sorted(BAD_PROMPTS))
def test_malformed_prompts_fail_before_model_work(shared, counter, reference_prediction, case) -> None:
    kwargs, pattern = BAD_PROMPTS[case]
    snap = _snapshot(shared)
    with pytest.raises(ValueError, match=pattern):
        shared.predict(**kwargs)
    assert counter.calls == 0
    _assert_unchanged(shared, snap)
    _assert_same_outputs(shared.predict(POINT, LABEL, box=BOX), reference_prediction)


def test_prompts_as_lists_and_tensors(shared, reference_prediction) -> None:
    as_lists = shared.predict(POINT.tolist(), LABEL.tolist(), box=BOX.tolist())
    as_tensors = shared.predict(torch.from_numpy(POINT), torch.from_numpy(LABEL), box=torch.from_numpy(BOX))
    _assert_same_outputs(as_lists, reference_prediction)
    _assert_same_outputs(as_tensors, reference_prediction)


def test_official_extra_labels_keep_their_meaning(shared) -> None:
    """Labels 2 / 3 are box corners (as the official prompt encoder reads them) and -1 is padding, whose
    coordinates are ignored."""
    corners = BOX.reshape(2, 2)
    _assert_same_outputs(shared.predict(corners, np.array([2, 3]), multimask_output=False),
                         shared.predict(box=BOX, multimask_output=False))
    padded = [shared.predict(np.concatenate([POINT, far]), np.array([1, -1])) for far in
              (np.array([[0.0, 0.0]]), np.array([[300.0, 200.0]]))]
    _assert_same_outputs(padded[0], padded[1])
    unpadded = shared.predict(POINT, LABEL)
    assert not np.array_equal(padded[0][1], unpadded[1])  # the padding token is really there


# ------------------------------------------------------------------------------ outputs

@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("return_logits", [False, True])
def test_output_shapes_and_dtypes(shared, truck, multimask: bool, return_logits: bool) -> None:
    masks, iou, low_res = shared.predict(POINT, LABEL, multimask_output=multimask, return_logits=return_logits)
    c = 3 if multimask else 1
    h, w = truck.shape[:2]
    assert masks.shape == (c, h, w) and iou.shape == (c,) and low_res.shape == (c, 256, 256)
    assert masks.dtype == iou.dtype == low_res.dtype == np.float32
    assert np.all((iou >= 0) & (iou <= 1))
    assert np.abs(low_res).max() <= 32.0  # low-res logits are clamped
    if return_logits:
        assert len(np.unique(masks)) > 2
    else:
        assert set(np.unique(masks)) <= {0.0, 1.0}


def test_return_logits_is_the_unthresholded_mask(shared) -> None:
    binary, iou_a, low_a = shared.predict(POINT, LABEL)
    logits, iou_b, low_b = shared.predict(POINT, LABEL, return_logits=True)
    assert np.array_equal(binary, (logits > 0).astype(np.float32))
    assert np.array_equal(iou_a, iou_b) and np.array_equal(low_a, low_b)


def test_batched_prompts(shared, truck) -> None:
    boxes = np.stack([BOX, BOX * 0.5])
    masks, iou, low_res = shared.predict(box=boxes, multimask_output=False)
    h, w = truck.shape[:2]
    assert masks.shape == (2, 1, h, w) and iou.shape == (2, 1) and low_res.shape == (2, 1, 256, 256)
    single = shared.predict(box=boxes[1], multimask_output=False)
    R.assert_close_array(low_res[1], single[2], R.REL_L2_IMAGE, "batched box")


def test_normalize_coords_false_takes_relative_coordinates(shared, truck) -> None:
    h, w = truck.shape[:2]
    scale = np.array([w, h, w, h], dtype=np.float32)
    pixels = shared.predict(POINT, LABEL, box=BOX, return_logits=True)
    relative = shared.predict(POINT / scale[:2], LABEL, box=BOX / scale, return_logits=True,
                              normalize_coords=False)
    for a, b in zip(pixels, relative):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # relative coordinates read as pixels point somewhere else
    other = shared.predict(POINT / scale[:2], LABEL, box=BOX / scale, return_logits=True)
    assert not np.allclose(other[2], pixels[2], atol=1e-3)


def test_mask_threshold(model, shared, truck) -> None:
    threshold = 0.5
    predictor = SAM2ImagePredictor(model, mask_threshold=threshold)
    predictor.set_image(truck)
    masks, _, _ = predictor.predict(POINT, LABEL)
    logits, _, _ = shared.predict(POINT, LABEL, return_logits=True)
    assert np.array_equal(masks, (logits > threshold).astype(np.float32))
    assert not np.array_equal(masks, (logits > 0).astype(np.float32))  # the threshold mattered


def test_set_image_batch_and_predict_batch_equal_single_images(model, shared, truck) -> None:
    crop = R.image("truck_crop")
    points = [POINT, np.array([[50.0, 60.0], [150.0, 250.0]], dtype=np.float32)]
    labels = [LABEL, np.array([1, 0], dtype=np.int32)]
    boxes = [None, np.array([10.0, 20.0, 180.0, 300.0], dtype=np.float32)]

    batch = SAM2ImagePredictor(model)
    batch.set_image_batch([truck, crop])
    assert batch._orig_hw == [truck.shape[:2], crop.shape[:2]]
    embeds = batch.get_image_embedding()
    assert embeds.shape[0] == 2
    masks, ious, low_res = batch.predict_batch(points, labels, box_batch=boxes, return_logits=True)
    assert len(masks) == len(ious) == len(low_res) == 2

    single = SAM2ImagePredictor(model)
    single.set_image(crop)
    for i, (predictor, image) in enumerate([(shared, truck), (single, crop)]):
        R.assert_close_array(embeds[i:i + 1], predictor.get_image_embedding(), R.REL_L2_IMAGE, f"embed {i}")
        ref = predictor.predict(points[i], labels[i], box=boxes[i], return_logits=True)
        assert masks[i].shape == (3, *image.shape[:2])
        R.assert_close_array(masks[i], ref[0], R.REL_L2_IMAGE, f"masks {i}")
        R.assert_logit_signs(masks[i], ref[0], f"masks {i}")
        R.assert_scores(ious[i], ref[1], what=f"iou {i}")
        R.assert_close_array(low_res[i], ref[2], R.REL_L2_IMAGE, f"low_res {i}")

    # a bad prompt for the second image fails before the first image is decoded
    counter = CallCounter(model)
    try:
        with pytest.raises(ValueError, match="point_labels"):
            batch.predict_batch(points, [LABEL, np.array([1, 5])])
        with pytest.raises(ValueError, match="2 images"):
            batch.predict_batch([POINT], [LABEL])
        assert counter.calls == 0
    finally:
        counter.remove()
    with pytest.raises(RuntimeError, match="set_image_batch"):
        shared.predict_batch([POINT], [LABEL])  # not set in batch mode


# ------------------------------------------------------------------------------ holes and sprinkles

def _components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected labels and per-pixel component areas (0 outside ``binary``)."""
    labels, _ = ndimage.label(binary, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    return labels, areas[labels]


@pytest.fixture(scope="module")
def square_image(truck) -> np.ndarray:
    """256x256: the output grid equals the low-res grid, so the upsampling is the identity."""
    return np.asarray(Image.fromarray(truck).resize((256, 256)))


@pytest.mark.parametrize(("hole", "sprinkle", "threshold"), [(30, 0, 0.0), (0, 12, 0.0), (30, 12, 0.3)])
def test_hole_and_sprinkle_removal(model, square_image, hole: int, sprinkle: int, threshold: float) -> None:
    predictor = SAM2ImagePredictor(model, mask_threshold=threshold, max_hole_area=hole, max_sprinkle_area=sprinkle)
    predictor.set_image(square_image)
    masks, _, low_res = predictor.predict(POINT, LABEL)  # low_res is the raw decoder output
    logits, _, _ = predictor.predict(POINT, LABEL, return_logits=True)
    assert masks.shape == low_res.shape == (3, 256, 256)

    for c in range(3):
        raw = low_res[c] > threshold
        expected = raw.copy()
        _, hole_area = _components(~raw)
        _, island_area = _components(raw)
        small_holes = (hole_area > 0) & (hole_area <= hole)
        small_islands = (island_area > 0) & (island_area <= sprinkle)
        expected[small_holes] = True
        expected[small_islands] = False
        got = masks[c] > 0.5
        assert np.array_equal(got, expected), f"mask {c}: {(got != expected).sum()} pixels differ"
        assert np.array_equal(logits[c] > threshold, expected)
        # the crafted case is not trivial: something was cleaned, and bigger regions were kept
        if hole:
            assert small_holes.any() and (hole_area > hole).any()
        if sprinkle:
            assert small_islands.any() and (island_area > sprinkle).any()
        assert not np.array_equal(got, raw)
        # after cleaning, no hole / island of the removed sizes remains
        _, left_holes = _components(~got)
        _, left_islands = _components(got)
        if hole:
            assert not ((left_holes > 0) & (left_holes <= hole) & ~raw).any()
        if sprinkle:
            assert not ((left_islands > 0) & (left_islands <= sprinkle) & raw & ~small_holes).any()
