"""Parity of SAM2ImagePredictor with the official implementation on every image fixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor
from tests import reference as R

pytestmark = R.requires_reference

SCENARIOS = R.scenario_names("image")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One predictor per scenario, built through the public loader from a synthesized checkpoint."""
    cache: dict[str, SAM2ImagePredictor] = {}

    def get(name: str) -> tuple[R.Scenario, SAM2ImagePredictor]:
        sc = R.load_scenario(name)
        if name not in cache:
            ckpt = sc.checkpoint(tmp_path_factory.mktemp(name))
            model = build_sam2(sc.config, ckpt, device="cpu", **{k: v for k, v in sc.spec["build"]["kwargs"].items()
                                                                  if k != "device"})
            ckpt.unlink()
            cache.clear()  # keep at most one (possibly large) model alive
            cache[name] = SAM2ImagePredictor(model, **sc.spec["predictor"]["kwargs"])
        return sc, cache[name]

    return get


def _check_tensor(sc: R.Scenario, ours: torch.Tensor, ref: dict, what: str, record) -> None:
    """A stored tensor (``npz_key``) or a summary (corner crop + channel means)."""
    if "npz_key" in ref:
        record(sc.name, "features rel L2", R.assert_close_array(ours, sc.expected(ref), R.REL_L2_IMAGE, what))
        return
    summary = ref["summary"]
    assert list(ours.shape) == summary["shape"], what
    crop = ours[..., 0:16, 0:16]
    record(sc.name, "features rel L2", R.assert_close_array(crop, sc.expected(summary["crop"]), R.REL_L2_IMAGE,
                                                            f"{what} crop"))
    channel_mean = ours.double().mean(dim=tuple(i for i in range(ours.dim()) if i != 1))
    R.assert_close_array(channel_mean.float(), sc.expected(summary["channel_mean"]), 1e-3, f"{what} channel mean")
    assert abs(ours.double().std().item() - summary["std"]) <= 1e-3 * summary["std"], f"{what} std"


def _check_state(sc, predictor, call, record) -> None:
    feats = predictor._features
    for key, ref in (call.get("expected_state") or {}).items():
        if key == "_orig_hw":
            assert [list(hw) for hw in predictor._orig_hw] == ref
            continue
        ours = feats["image_embed"] if key.endswith("image_embed") else feats["high_res_feats"][int(key[-1])]
        _check_tensor(sc, ours, ref, f"{sc.name}/{call['id']}/{key}", record)


def _check_prediction(sc, outputs, expected, what: str, record) -> None:
    masks, iou, low_res = outputs
    assert masks.dtype == np.float32 and iou.dtype == np.float32 and low_res.dtype == np.float32
    ref_masks = sc.expected(expected["masks"])
    if ref_masks.dtype == bool:
        assert set(np.unique(masks)) <= {0.0, 1.0}, f"{what}: masks are not 0/1"
        R.assert_masks_match(masks, ref_masks, f"{what} masks")
    else:
        record(sc.name, "logits rel L2", R.assert_close_array(masks, ref_masks, R.REL_L2_IMAGE, f"{what} masks"))
        R.assert_logit_signs(masks, ref_masks, f"{what} masks")
    record(sc.name, "iou abs", R.assert_scores(iou, sc.expected(expected["iou_predictions"]), what=f"{what} iou"))
    ref_low = sc.expected(expected["low_res_masks"])
    record(sc.name, "logits rel L2", R.assert_close_array(low_res, ref_low, R.REL_L2_IMAGE, f"{what} low_res"))
    R.assert_logit_signs(low_res, ref_low, f"{what} low_res")


def _check_modules(sc, predictor, call, record) -> None:
    """Prompt encoder and mask decoder called directly, as described in the call's ``about``."""
    model, inputs, exp = predictor.model, call["inputs"], call["expected"]
    coords = torch.as_tensor(sc.decode(inputs["coords"]))
    labels = torch.as_tensor(sc.decode(inputs["labels"]))
    boxes = torch.as_tensor(sc.decode(inputs["boxes"]))
    mask = torch.as_tensor(sc.arrays["mask_input_from_point_multimask"])[None]
    pe = model.sam_prompt_encoder
    with torch.no_grad():
        a_sparse, a_dense = pe(points=(coords, labels), boxes=None, masks=None)
        b_sparse, b_dense = pe(points=(coords, labels), boxes=boxes, masks=mask)
        dense_pe = pe.get_dense_pe()
        feats = predictor._features
        outs = {}
        for tag, multi in (("decoder_multi", True), ("decoder_single", False)):
            outs[tag] = model.sam_mask_decoder(
                image_embeddings=feats["image_embed"], image_pe=dense_pe, sparse_prompt_embeddings=a_sparse,
                dense_prompt_embeddings=a_dense, multimask_output=multi, repeat_image=False,
                high_res_features=feats["high_res_feats"])
    ours = {"prompt_a.sparse": a_sparse, "prompt_a.dense": a_dense, "prompt_b.sparse": b_sparse,
            "prompt_b.dense": b_dense, "dense_pe": dense_pe}
    for tag, (low, iou, tokens, score) in outs.items():
        ours.update({f"{tag}.low_res_masks": low, f"{tag}.iou_pred": iou, f"{tag}.sam_tokens_out": tokens,
                     f"{tag}.object_score_logits": score})
    for key, ref in exp.items():
        what = f"{sc.name}/modules/{key}"
        if key.endswith(("iou_pred", "object_score_logits")):
            record(sc.name, "iou abs", R.assert_scores(ours[key], sc.expected(ref), what=what))
        else:
            _check_tensor(sc, ours[key], ref, what, record)


@pytest.mark.parametrize("name", SCENARIOS)
def test_image_scenario(name, built, record_error):
    sc, predictor = built(name)
    for call in sc.calls:
        method, what = call["method"], f"{name}/{call['id']}"
        if method is None:
            _check_modules(sc, predictor, call, record_error)
            continue
        args = sc.decode_args(call)
        result = getattr(predictor, method)(**args)
        if method in ("set_image", "set_image_batch"):
            _check_state(sc, predictor, call, record_error)
        elif method == "get_image_embedding":
            assert torch.equal(result, predictor._features["image_embed"])
            assert result.shape[1:] == (predictor.model.hidden_dim, 64, 64)
        elif method == "predict":
            _check_prediction(sc, result, call["expected"], what, record_error)
        elif method == "predict_batch":
            exp = call["expected"]
            for i in range(len(exp["masks"])):
                per_image = {k: exp[k][i] for k in ("masks", "iou_predictions", "low_res_masks")}
                _check_prediction(sc, tuple(r[i] for r in result), per_image, f"{what}[{i}]", record_error)
        else:
            raise AssertionError(f"unexpected method {method}")
