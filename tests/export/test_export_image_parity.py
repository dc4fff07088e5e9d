"""Parity of OnnxImagePredictor (onnxruntime + numpy) with the official fixtures, micro and tiny.

Each scenario's model is built from synthesized weights through the public loader, exported with
``to_onnx`` and replayed through the ONNX predictor at the README tolerances. The largest error per
scenario is printed in the "largest parity error" summary (``record_error``).
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2.build_sam import build_sam2
from tests import reference as R

pytestmark = R.requires_reference
pytest.importorskip("onnxruntime")

# SAM 2 and SAM 2.1 models of one size share every image-path weight (reference README), so the 2.1
# scenarios (micro and tiny, both "full") cover the image path of both versions.
SCENARIOS = ["image_sam2.1_hiera_micro", "image_sam2.1_hiera_t"]


def _export(sc: R.Scenario, directory):
    from sam2.export import OnnxImagePredictor, to_onnx

    kwargs = {k: v for k, v in sc.spec["build"]["kwargs"].items() if k != "device"}
    model = build_sam2(sc.config, sc.checkpoint(directory), device="cpu", compile=False, **kwargs)
    out = to_onnx(model, directory / "onnx", video=False)
    return OnnxImagePredictor(out, **sc.spec["predictor"]["kwargs"])


def _check_tensor(sc: R.Scenario, ours: np.ndarray, ref: dict, what: str, record) -> None:
    """A stored tensor (``npz_key``) or a summary (corner crop + channel means)."""
    if "npz_key" in ref:
        record(sc.name, "features rel L2", R.assert_close_array(ours, sc.expected(ref), R.REL_L2_IMAGE, what))
        return
    summary = ref["summary"]
    assert list(ours.shape) == summary["shape"], what
    record(sc.name, "features rel L2", R.assert_close_array(ours[..., 0:16, 0:16], sc.expected(summary["crop"]),
                                                            R.REL_L2_IMAGE, f"{what} crop"))
    axes = tuple(i for i in range(ours.ndim) if i != 1)
    R.assert_close_array(ours.astype(np.float64).mean(axis=axes).astype(np.float32),
                         sc.expected(summary["channel_mean"]), 1e-3, f"{what} channel mean")


def _check_model_input(sc: R.Scenario, call: dict, predictor, record) -> None:
    """The numpy preprocessing against the official normalized model input (every 4th pixel)."""
    from sam2.export.runtime_transforms import preprocess_image

    ref = (call.get("captured") or {}).get("model_input")
    if not ref:
        return
    x = preprocess_image(sc.decode_args(call)["image"], predictor.image_size)
    record(sc.name, "model input rel L2", R.assert_close_array(
        x[..., ::4, ::4], sc.expected(ref["every_4th_pixel"]), R.REL_L2_IMAGE, f"{sc.name} model input"))


def _check_state(sc: R.Scenario, predictor, call: dict, record) -> None:
    for key, ref in (call.get("expected_state") or {}).items():
        if key == "_orig_hw":
            assert [list(hw) for hw in predictor._orig_hw] == ref
            continue
        name = "image_embed" if key.endswith("image_embed") else f"high_res_feat_{key[-1]}"
        ours = np.concatenate([predictor.features(i)[name] for i in range(len(predictor._orig_hw))], axis=0)
        _check_tensor(sc, ours, ref, f"{sc.name}/{call['id']}/{key}", record)


def _check_prediction(sc: R.Scenario, outputs, expected: dict, what: str, record) -> None:
    masks, iou, low_res = outputs
    assert masks.dtype == np.float32 and iou.dtype == np.float32 and low_res.dtype == np.float32
    ref_masks = sc.expected(expected["masks"])
    if ref_masks.dtype == bool:
        assert set(np.unique(masks)) <= {0.0, 1.0}, f"{what}: masks are not 0/1"
        R.assert_masks_match(masks, ref_masks, f"{what} masks")
        record(sc.name, "mask pixels differing", float(((masks > 0.5) != ref_masks).mean()))
    else:
        record(sc.name, "logits rel L2", R.assert_close_array(masks, ref_masks, R.REL_L2_IMAGE, f"{what} masks"))
        R.assert_logit_signs(masks, ref_masks, f"{what} masks")
    record(sc.name, "iou abs", R.assert_scores(iou, sc.expected(expected["iou_predictions"]), what=f"{what} iou"))
    ref_low = sc.expected(expected["low_res_masks"])
    record(sc.name, "logits rel L2", R.assert_close_array(low_res, ref_low, R.REL_L2_IMAGE, f"{what} low_res"))
    R.assert_logit_signs(low_res, ref_low, f"{what} low_res")


@pytest.mark.parametrize("name", SCENARIOS)
def test_export_image_scenario(name, tmp_path, record_error):
    sc = R.load_scenario(name)
    predictor = _export(sc, tmp_path)
    replayed = 0
    for call in sc.calls:
        method, what = call["method"], f"{name}/{call['id']}"
        if method is None:  # direct module calls: covered by the PyTorch parity tests
            continue
        result = getattr(predictor, method)(**sc.decode_args(call))
        replayed += 1
        if method in ("set_image", "set_image_batch"):
            _check_model_input(sc, call, predictor, record_error)
            _check_state(sc, predictor, call, record_error)
        elif method == "get_image_embedding":  # the fixture says: equals set_image's image_embed
            assert np.array_equal(result, predictor.features(0)["image_embed"]), what
            assert result.shape[1:] == (predictor.manifest.config["neck"]["d_model"], 64, 64), what
        elif method == "predict":
            _check_prediction(sc, result, call["expected"], what, record_error)
        elif method == "predict_batch":
            exp = call["expected"]
            for i in range(len(exp["masks"])):
                per_image = {k: exp[k][i] for k in ("masks", "iou_predictions", "low_res_masks")}
                _check_prediction(sc, tuple(r[i] for r in result), per_image, f"{what}[{i}]", record_error)
        else:
            raise AssertionError(f"unexpected method {method}")
    assert replayed == sum(c["method"] is not None for c in sc.calls)
