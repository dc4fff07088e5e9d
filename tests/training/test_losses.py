"""Parity of the training loss with the official ``loss_fns.py`` (fixtures ``loss_multistep`` and
``loss_functions``), plus its edges and bad configurations."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from sam2.training.losses import (
    CORE_LOSS_KEY,
    LOSS_KEYS,
    LossConfig,
    MultiStepMultiMasksAndIous,
    dice_loss,
    iou_loss,
    object_score_loss,
    sigmoid_focal_loss,
)
from tests.reference import REPO_ROOT, load_training_fixture, rel_l2, requires_reference

pytestmark = requires_reference

REL_TOL = 1e-5  # README "Tolerances (training)": loss fixtures, totals / intermediates / input gradients
FIELDS = ("multistep_pred_multimasks_high_res", "multistep_pred_ious", "multistep_object_score_logits")
NPZ_SUFFIX = {FIELDS[0]: "masks", FIELDS[1]: "ious", FIELDS[2]: "object_score_logits"}
GRAD_KEYS = {FIELDS[0]: "grad_masks", FIELDS[1]: "grad_ious", FIELDS[2]: "grad_object_score_logits"}


def _rel(ours: float, ref: float) -> float:
    return abs(ours - ref) / abs(ref) if ref else abs(ours)


def _multistep_inputs(dtype: torch.dtype = torch.float32):
    """Per-frame dicts of leaf tensors (requires_grad) and the ``(T, O, H, W)`` targets."""
    fx = load_training_fixture("loss_multistep")
    frames = []
    for t, steps in sorted(fx.spec["steps"].items(), key=lambda kv: int(kv[0])):
        frame = {name: [] for name in FIELDS}
        for s in range(len(steps)):
            for name in FIELDS:
                array = fx.arrays[f"in/t{t}/s{s}/{NPZ_SUFFIX[name]}"]
                frame[name].append(torch.tensor(array, dtype=dtype, requires_grad=True))
        frames.append(frame)
    return frames, torch.from_numpy(fx.arrays["in/targets"])


@pytest.mark.parametrize("setting", ["mose", "alt", "no_obj_scores"])
def test_loss_multistep_totals_frames_steps_and_gradients(setting):
    fx = load_training_fixture("loss_multistep")
    ref = fx.spec["settings"][setting]
    kwargs = json.loads(json.dumps(ref["kwargs"]))
    caller_weights = dict(kwargs["weight_dict"])
    loss = MultiStepMultiMasksAndIous(**kwargs)
    assert kwargs["weight_dict"] == caller_weights, "the caller's weight_dict must not be modified"
    assert loss.weight_dict == ref["weight_dict_effective"]

    frames, targets = _multistep_inputs()
    total = loss(frames, targets)
    assert set(total) == {*LOSS_KEYS, CORE_LOSS_KEY}
    for key, value in ref["total"].items():
        assert _rel(total[key].item(), value) <= REL_TOL, (setting, key, total[key].item(), value)

    num_objects = loss.normalizer(targets)
    assert num_objects == ref["num_objects"]
    for t, frame_ref in enumerate(ref["per_frame"]):
        ours = loss.frame_losses(frames[t], targets[t], num_objects)
        for key, value in frame_ref.items():
            assert _rel(ours[key].item(), value) <= REL_TOL, (setting, t, key)

    step_refs = iter(ref["steps"])
    for t, frame in enumerate(frames):
        for s, terms in enumerate(loss.frame_steps(frame, targets[t], num_objects)):
            step = next(step_refs)
            assert (step["frame"], step["step"], step["num_masks"]) == (t, s, terms.focal_per_mask.shape[1])
            for name in ("focal_per_mask", "dice_per_mask", "iou_loss_per_mask"):
                err = rel_l2(getattr(terms, name), fx.arrays[step[name]["npz_key"]])
                assert err <= REL_TOL, (setting, t, s, name, err)
            assert terms.best_mask_index.tolist() == step["best_mask_index"]
            assert terms.target_present.tolist() == step["target_present"]

    total[CORE_LOSS_KEY].backward()
    step_refs = iter(ref["steps"])
    for frame in frames:
        for s in range(len(frame[FIELDS[0]])):
            step = next(step_refs)
            for name in FIELDS:
                grad, expected = frame[name][s].grad, step[GRAD_KEYS[name]]
                if expected is None:
                    assert grad is None or not grad.any(), (setting, name, "should not enter the loss")
                    continue
                err = rel_l2(grad, fx.arrays[expected["npz_key"]])
                assert err <= REL_TOL, (setting, step["frame"], s, name, err)


def test_loss_multistep_float64_matches_reference_float64():
    ref = load_training_fixture("loss_multistep").spec["settings"]["mose"]
    frames, targets = _multistep_inputs(torch.float64)
    total = MultiStepMultiMasksAndIous(**ref["kwargs"])(frames, targets)
    for key, value in ref["float64_total"].items():
        assert total[key].dtype == torch.float64
        # the reference ran on the float64 originals of the stored float32 inputs (rel ~1e-10 apart);
        # a float32 computation is ~1e-7 away
        assert _rel(total[key].item(), value) <= 1e-8, key


def test_attribute_outputs_equal_mapping_outputs():
    @dataclass
    class FrameOut:
        multistep_pred_multimasks_high_res: list
        multistep_pred_ious: list
        multistep_object_score_logits: list

    frames, targets = _multistep_inputs()
    loss = MultiStepMultiMasksAndIous.from_config(LossConfig())
    as_mapping = loss(frames, targets)
    as_objects = loss([FrameOut(**f) for f in frames], targets)
    for key in as_mapping:
        assert torch.equal(as_mapping[key], as_objects[key])


def test_from_config_defaults_are_mose():
    cfg = LossConfig()
    mose = load_training_fixture("loss_multistep").spec["settings"]["mose"]["kwargs"]
    for key, value in mose.items():
        assert getattr(cfg, key) == value, key
    assert (cfg.focal_alpha, cfg.focal_gamma) == (0.25, 2.0)
    loss = MultiStepMultiMasksAndIous.from_config(cfg)
    assert loss.config == cfg and loss.supervise_all_iou and loss.pred_obj_scores


# ----------------------------------------------------------------------------------- loss_functions

FUNCTIONS = {"sigmoid_focal_loss": sigmoid_focal_loss, "dice_loss": dice_loss, "iou_loss": iou_loss}
TENSOR_ARGS = ("inputs", "targets", "pred_ious")


def _function_cases():
    return [c["id"] for c in load_training_fixture("loss_functions").spec["calls"]
            if c["function"] in FUNCTIONS and "expected" in c]


@pytest.mark.parametrize("call_id", _function_cases())
def test_loss_function_calls(call_id):
    fx = load_training_fixture("loss_functions")
    call = fx.spec["calls"][call_id]
    args = {k: v for k, v in fx.decode_args(call).items() if k != "role"}
    for name in TENSOR_ARGS:
        if name in args:
            args[name] = torch.tensor(args[name], dtype=torch.float32, requires_grad=name == "inputs")
    out = FUNCTIONS[call["function"]](**args)
    assert rel_l2(out, fx.expected(call["expected"])) <= REL_TOL
    if "expected_grad_of_sum_wrt_inputs" in call:
        out.sum().backward()
        assert rel_l2(args["inputs"].grad, fx.expected(call["expected_grad_of_sum_wrt_inputs"])) <= REL_TOL


@pytest.mark.parametrize("call_id", [9, 10])
def test_object_score_term(call_id):
    fx = load_training_fixture("loss_functions")
    call = fx.spec["calls"][call_id]
    assert call["args"]["role"] == "object-score loss"
    logits = torch.tensor(fx.arrays["fn/obj_logits"], requires_grad=True)
    out = object_score_loss(logits, torch.tensor(fx.arrays["fn/obj_targets"]), call["args"]["num_objects"],
                            alpha=call["args"]["alpha"], gamma=call["args"]["gamma"])
    assert rel_l2(out, fx.expected(call["expected"])) <= REL_TOL
    out.backward()
    assert rel_l2(logits.grad, fx.expected(call["expected_grad_of_sum_wrt_inputs"])) <= REL_TOL


def test_iou_of_empty_prediction_and_empty_target_is_zero():
    call = load_training_fixture("loss_functions").spec["calls"][6]
    out = iou_loss(torch.full((1, 1, 6, 5), -5.0), torch.zeros(1, 1, 6, 5), torch.tensor([[0.9]]),
                   call["args"]["num_objects"], loss_on_multimask=True, use_l1_loss=True)
    assert out.shape == (1, 1)
    assert out.item() == pytest.approx(call["expected_inline"][0][0], rel=REL_TOL)
    assert out.item() == pytest.approx(0.9)  # |0.9 - IoU| with IoU = 0


def test_best_of_three_tie_selects_first_candidate():
    fx = load_training_fixture("loss_functions")
    call = fx.spec["calls"][11]
    args = call["args"]
    frame = {FIELDS[0]: [torch.tensor(fx.arrays["fn/tie/masks"])], FIELDS[1]: [torch.tensor(fx.arrays["fn/tie/ious"])],
             FIELDS[2]: [torch.tensor(args["multistep_object_score_logits"][0])]}
    targets = torch.tensor(fx.arrays["fn/tie/targets"])
    loss = MultiStepMultiMasksAndIous(**call["kwargs"])
    total = loss([frame], targets)
    for key, value in call["expected_inline"].items():
        assert _rel(total[key].item(), value) <= REL_TOL, key
    (terms,) = loss.frame_steps(frame, targets[0], loss.normalizer(targets))
    assert terms.best_mask_index.tolist() == [0, 0]
    assert torch.equal(terms.focal_per_mask[:, 0], terms.focal_per_mask[:, 1])


# ----------------------------------------------------------------------------------- edges and errors

def _tiny_frame(num_objects=2, steps=(3, 1), size=(4, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    return {FIELDS[0]: [torch.randn(num_objects, m, *size, generator=g) for m in steps],
            FIELDS[1]: [torch.rand(num_objects, m, generator=g) for m in steps],
            FIELDS[2]: [torch.randn(num_objects, 1, generator=g) for _ in steps]}


def test_all_absent_objects_supervise_only_the_object_score():
    frame = _tiny_frame()
    out = MultiStepMultiMasksAndIous.from_config(LossConfig())([frame], torch.zeros(1, 2, 4, 5, dtype=torch.bool))
    assert out["loss_mask"].item() == out["loss_dice"].item() == out["loss_iou"].item() == 0.0
    assert out["loss_class"].item() > 0 and out[CORE_LOSS_KEY].item() == pytest.approx(out["loss_class"].item())


def test_sum_over_frames_and_steps_without_averaging():
    frame = _tiny_frame()
    targets = torch.rand(1, 2, 4, 5) > 0.5
    loss = MultiStepMultiMasksAndIous.from_config(LossConfig())
    one = loss([frame], targets)[CORE_LOSS_KEY]
    two = loss([frame, frame], targets.expand(2, -1, -1, -1))[CORE_LOSS_KEY]
    assert two.item() == pytest.approx(2 * one.item(), rel=1e-6)


def test_zero_weight_keys_are_skipped_and_loss_class_defaults_to_zero():
    weights = {"loss_mask": 1.0, "loss_dice": 0.0, "loss_iou": 0.0}
    loss = MultiStepMultiMasksAndIous(weights, pred_obj_scores=True)
    assert weights == {"loss_mask": 1.0, "loss_dice": 0.0, "loss_iou": 0.0}
    out = loss([_tiny_frame()], torch.rand(1, 2, 4, 5) > 0.5)
    assert out["loss_class"].item() > 0
    assert out[CORE_LOSS_KEY].item() == pytest.approx(out["loss_mask"].item(), rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"weight_dict": {"loss_mask": 1, "loss_dice": 1}}, "lacks \\['loss_iou'\\]"),
    ({"weight_dict": {"loss_mask": 1, "loss_dice": 1, "loss_iou": 1, "loss_bbox": 1}}, "unknown keys \\['loss_bbox'\\]"),
    ({"weight_dict": {"loss_mask": -1, "loss_dice": 1, "loss_iou": 1}}, "weight_dict\\['loss_mask'\\] must be >= 0"),
    ({"weight_dict": {"loss_mask": float("nan"), "loss_dice": 1, "loss_iou": 1}}, "finite number"),
    ({"focal_gamma": -2.0}, "focal_gamma must be >= 0"),
    ({"focal_alpha": 1.5}, "focal_alpha must be <= 1"),
    ({"focal_alpha_obj_score": "0.25"}, "focal_alpha_obj_score must be a finite number"),
    ({"pred_obj_scores": "yes"}, "pred_obj_scores must be true or false"),
])
def test_bad_config_values_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LossConfig(**kwargs)


def test_bad_inputs_are_named():
    loss = MultiStepMultiMasksAndIous.from_config(LossConfig())
    targets = torch.zeros(2, 2, 4, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="1 frame outputs for 2 target frames"):
        loss([_tiny_frame()], targets)
    with pytest.raises(ValueError, match="must be \\(T, O, H, W\\)"):
        loss([_tiny_frame()], targets[0])
    frame = _tiny_frame()
    frame[FIELDS[1]].pop()
    with pytest.raises(ValueError, match="2 mask, 1 IoU and 2 object-score steps"):
        loss([frame], targets[:1])
    with pytest.raises(KeyError, match="multistep_pred_ious"):
        loss([{FIELDS[0]: [], FIELDS[2]: []}], targets[:1])
    with pytest.raises(ValueError, match="do not fit the targets"):
        loss([_tiny_frame(size=(8, 5))], targets[:1])
    with pytest.raises(ValueError, match="no prediction steps"):
        loss([{name: [] for name in FIELDS}], targets[:1])


def test_object_count_is_clamped_to_one():
    assert MultiStepMultiMasksAndIous.normalizer(torch.zeros(1, 0, 4, 4)) == 1.0


_DIST_SCRIPT = textwrap.dedent("""
    import json, os, sys, torch
    import torch.distributed as dist
    from sam2.training.losses import LossConfig, MultiStepMultiMasksAndIous
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    num_objects = 2 if rank == 0 else 4
    g = torch.Generator().manual_seed(rank)
    frame = {"multistep_pred_multimasks_high_res": [torch.randn(num_objects, 3, 4, 5, generator=g)],
             "multistep_pred_ious": [torch.rand(num_objects, 3, generator=g)],
             "multistep_object_score_logits": [torch.randn(num_objects, 1, generator=g)]}
    targets = torch.rand(1, num_objects, 4, 5, generator=g) > 0.5
    loss = MultiStepMultiMasksAndIous.from_config(LossConfig())
    total = loss([frame], targets)["core_loss"].item()
    local = loss.frame_losses(frame, targets[0], 3.0)["core_loss"].item()
    print(json.dumps({"rank": rank, "normalizer": loss.normalizer(targets), "total": total, "local": local}))
    dist.destroy_process_group()
""")


def test_object_count_is_averaged_over_ranks(tmp_path: Path):
    script = tmp_path / "rank.py"
    script.write_text(_DIST_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    for r in results:
        assert r["normalizer"] == 3.0  # (2 + 4) / 2 objects per rank
        assert r["total"] == pytest.approx(r["local"], rel=1e-6)


def test_no_gradient_through_presence_or_iou_target():
    frame = _tiny_frame(steps=(1,))
    for tensors in frame.values():
        for x in tensors:
            x.requires_grad_(True)
    targets = torch.zeros(1, 2, 4, 5, dtype=torch.bool)
    targets[0, 0, 1:3, 1:3] = True
    out = MultiStepMultiMasksAndIous.from_config(LossConfig())([frame], targets)
    out[CORE_LOSS_KEY].backward()
    mask_grad = frame[FIELDS[0]][0].grad
    assert mask_grad[0].abs().sum() > 0
    assert not mask_grad[1].any(), "an object absent in the GT gets no mask gradient"
    assert not frame[FIELDS[1]][0].grad[1].any()
    assert frame[FIELDS[2]][0].grad[1].abs().sum() > 0

