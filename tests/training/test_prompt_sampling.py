"""Prompt samplers (fixture ``samplers``, with the recorded draws) and the prompt plan (``default_rng(42)``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import load_training_fixture, requires_reference

from sam2.training.model import PromptSimulationConfig
from sam2.training.prompt_plan import PromptSamplers, box_prompt, draw_prompt_plan, initial_prompts
from sam2.training.prompt_sampling import (
    _distance_to_background,
    concat_points,
    get_next_point,
    mask_to_box,
    sample_box_points,
    sample_one_point_from_error_center,
    sample_random_points_from_errors,
)

TRAIN_SCENARIOS = ["train_a_points_center", "train_b_mask_two_cond", "train_c_box_uniform_seeded",
                   "train_d_image_single_frame"]


def sampler_calls() -> list[dict]:
    return load_training_fixture("samplers").spec["calls"]


def arg(fx, value):
    return torch.from_numpy(fx.expected(value)) if isinstance(value, dict) else value


def call_ours(fx, call: dict, use_draws: bool):
    """Our function of ``call`` on its arguments, fed the recorded draws or seeded as recorded."""
    a, f = call["args"], call["function"]
    if call["id"] == 2:  # "row 0 of center/gt", no prediction
        return sample_one_point_from_error_center(torch.from_numpy(fx.arrays["center/gt"][:1]), None)
    draws = None
    if "uniform_draws" in call:
        d = call["uniform_draws"]
        draws = torch.from_numpy(fx.expected(d)) if "npz_key" in d else torch.tensor(d["array"])
        if not use_draws:
            torch.manual_seed(call["torch_manual_seed_before_call"])
            draws = None
    if f == "mask_to_box":
        return mask_to_box(arg(fx, a["masks"]))
    if f == "sample_box_points":
        kwargs = {k: a[k] for k in ("noise", "noise_bound") if k in a}
        return sample_box_points(arg(fx, a["masks"]), draws=draws, **kwargs)
    if f == "sample_random_points_from_errors":
        return sample_random_points_from_errors(arg(fx, a["gt_masks"]), arg(fx, a["pred_masks"]), a["num_pt"],
                                                draws=draws)
    return sample_one_point_from_error_center(arg(fx, a["gt_masks"]), arg(fx, a["pred_masks"]), a["padding"])


@requires_reference
@pytest.mark.parametrize("use_draws", [True, False], ids=["recorded_draws", "torch_seed"])
@pytest.mark.parametrize("call", sampler_calls(), ids=lambda c: f"{c['id']}_{c['function']}")
def test_samplers_match_the_official_ones(call, use_draws):
    fx = load_training_fixture("samplers")
    out = call_ours(fx, call, use_draws)
    if call["function"] == "mask_to_box":
        assert out.dtype == torch.int32
        assert np.array_equal(out.numpy(), np.asarray(call["expected"]))
        return
    points, labels = out
    assert labels.dtype == torch.int32
    assert np.array_equal(labels.numpy(), np.asarray(call["expected"]["labels"]))
    ref = np.asarray(call["expected"]["points"])
    assert points.shape == ref.shape
    if call["function"] == "sample_box_points":
        assert np.abs(points.numpy() - ref).max() <= 1e-4
    else:
        assert points.dtype == torch.float32 and np.array_equal(points.numpy(), ref)


@requires_reference
def test_exact_distance_transform_equals_opencv():
    """The padded distance maps of the centre sampler equal OpenCV's exact DIST_L2 ones."""
    fx = load_training_fixture("samplers")
    call = sampler_calls()[0]
    gt, pred = fx.arrays["center/gt"][:, 0], fx.arrays["center/pred"][:, 0]
    for name, region in (("fn", gt & ~pred), ("fp", ~gt & pred)):
        ref = fx.expected(call["debug_edt_padded"][name])
        ours = np.stack([_distance_to_background(r, padding=True) for r in region])
        assert np.array_equal(ours, ref), name


def test_sampler_inputs_are_checked():
    gt = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match="gt_masks must be a bool tensor"):
        sample_random_points_from_errors(gt.float(), None)
    with pytest.raises(ValueError, match="pred_masks .* differ in shape"):
        sample_one_point_from_error_center(gt, torch.zeros(2, 1, 8, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"draws must have shape \(2, 1, 8, 8, 2\)"):
        sample_random_points_from_errors(gt, None, draws=torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"draws must have shape \(2, 1, 4\)"):
        sample_box_points(gt, draws=torch.rand(2, 4))
    with pytest.raises(ValueError, match="masks must be a bool tensor"):
        mask_to_box(gt[:, 0])
    with pytest.raises(ValueError, match="unknown point sampling method 'random'"):
        get_next_point(gt, None, "random")


def test_concat_points_appends_along_the_point_dimension():
    first = concat_points(None, torch.ones(2, 1, 2), torch.ones(2, 1, dtype=torch.int32))
    both = concat_points(first, torch.zeros(2, 1, 2), torch.zeros(2, 1, dtype=torch.int32))
    assert both.point_coords.shape == (2, 2, 2) and both["point_labels"].tolist() == [[1, 0], [1, 0]]


def test_box_prompt_of_an_absent_object_is_a_negative_click():
    """Official boxes of empty masks are meaningless (SPEC §3.2); ours give one negative click in the
    background plus a padding point, and leave the other objects' boxes exactly as the sampler's."""
    gt = torch.zeros(3, 1, 32, 48, dtype=torch.bool)
    gt[0, 0, 4:20, 10:30] = True
    gt[2, 0, 20:30, 30:40] = True
    torch.manual_seed(3)
    prompt = box_prompt(gt, PromptSamplers(), "uniform")
    torch.manual_seed(3)
    boxes, _ = sample_box_points(gt)
    assert torch.equal(prompt.point_coords[[0, 2]], boxes[[0, 2]])
    assert prompt.point_labels.tolist() == [[2, 3], [0, -1], [2, 3]]
    x, y = prompt.point_coords[1, 0].long().tolist()
    assert 0 <= x < 48 and 0 <= y < 32 and prompt.point_coords[1, 1].tolist() == [0.0, 0.0]


# ----------------------------------------------------------------------------------- the plan

@requires_reference
@pytest.mark.parametrize("name", TRAIN_SCENARIOS)
def test_plan_from_seed_42_matches_the_fixture(name):
    fx = load_training_fixture(name)
    settings = PromptSimulationConfig(**fx.spec["train_kwargs"]).settings(training=True)
    num_frames = len(fx.spec["frames"])
    plan = draw_prompt_plan(np.random.default_rng(42), num_frames, settings)
    ref = fx.spec["prompt_plan"]
    assert plan.use_pt_input == ref["use_pt_input"]
    assert plan.init_cond_frames == ref["init_cond_frames"]
    assert plan.frames_not_in_init_cond == ref["frames_not_in_init_cond"]
    assert plan.frames_to_add_correction_pt == ref["frames_to_add_correction_pt"]
    assert plan.processing_order == ref["processing_order"]
    boxes = [c["sampler"] == "sample_box_points" for c in ref["sampler_calls"] if c["frame"] is None]
    assert [plan.use_box[t] for t in plan.init_cond_frames if plan.use_pt_input] == boxes


def test_plan_draw_order_of_train_a():
    """SPEC §2.6: 0.774 -> points, 0.439 -> click (no box), choice([1, 2]) = 1 -> corrected [0, 1]."""
    rng = np.random.default_rng(42)
    settings = PromptSimulationConfig(prob_to_use_pt_input_for_train=1.0, num_frames_to_correct_for_train=2,
                                      rand_init_cond_frames_for_train=False).settings(True)
    plan = draw_prompt_plan(rng, 3, settings)
    assert (plan.init_cond_frames, plan.frames_to_add_correction_pt, plan.use_box) == ([0], [0, 1], {0: False})
    check = np.random.default_rng(42)
    assert check.random() == pytest.approx(0.774, abs=1e-3) and check.random() == pytest.approx(0.439, abs=1e-3)
    check.choice([1, 2], 1, replace=False)
    assert rng.random() == check.random()  # the plan consumed exactly these draws


def test_mose_plan_distribution():
    """SPEC §2.5 table: masks 1/2 ({0} or {0, r}); points with 1 initial frame 1/4 (corrected {0} or
    {0, r'}); points with 2 initial frames 1/4; box per initial frame 1/2."""
    rng = np.random.default_rng(0)
    settings = PromptSimulationConfig.mose().settings(training=True)
    plans = [draw_prompt_plan(rng, 8, settings) for _ in range(4000)]
    masks = [p for p in plans if not p.use_pt_input]
    points = [p for p in plans if p.use_pt_input]
    assert len(masks) / 4000 == pytest.approx(0.5, abs=0.03)
    assert all(not p.frames_to_add_correction_pt and p.init_cond_frames[0] == 0 for p in masks)
    assert np.mean([len(p.init_cond_frames) == 2 for p in masks]) == pytest.approx(0.5, abs=0.04)
    one = [p for p in points if len(p.init_cond_frames) == 1]
    two = [p for p in points if len(p.init_cond_frames) == 2]
    assert len(one) / 4000 == pytest.approx(0.25, abs=0.03) and len(two) / 4000 == pytest.approx(0.25, abs=0.03)
    assert all(p.frames_to_add_correction_pt == p.init_cond_frames for p in two)
    assert np.mean([len(p.frames_to_add_correction_pt) == 2 for p in one]) == pytest.approx(0.5, abs=0.05)
    assert np.mean([b for p in points for b in p.use_box.values()]) == pytest.approx(0.5, abs=0.03)
    seconds = {p.init_cond_frames[1] for p in plans if len(p.init_cond_frames) == 2}
    assert seconds == set(range(1, 8))


def test_single_frame_clips_are_always_clicked_and_corrected():
    settings = PromptSimulationConfig.mose(prob_to_use_pt_input_for_train=0.0).settings(training=True)
    plan = draw_prompt_plan(np.random.default_rng(1), 1, settings)
    assert plan.use_pt_input and plan.init_cond_frames == plan.frames_to_add_correction_pt == [0]
    gt = [torch.zeros(2, 1, 16, 16, dtype=torch.bool)]
    gt[0][:, :, 4:9, 5:12] = True
    points, masks = initial_prompts(plan, gt, PromptSamplers(), "uniform")
    assert not masks and points[0].point_coords.shape[0] == 2


def test_settings_errors_name_the_argument():
    with pytest.raises(ValueError, match="prob_to_use_box_input_for_train must be a probability"):
        PromptSimulationConfig(prob_to_use_box_input_for_train=1.5)
    with pytest.raises(ValueError, match="num_frames_to_correct_for_train .* must be >= num_init_cond_frames"):
        PromptSimulationConfig(prob_to_use_pt_input_for_train=0.5, num_init_cond_frames_for_train=2)
    with pytest.raises(ValueError, match="pt_sampling_for_eval"):
        PromptSimulationConfig(pt_sampling_for_eval="random")
    with pytest.raises(ValueError, match=r"num_init_cond_frames \(3\) exceeds the 2 frames per clip"):
        draw_prompt_plan(np.random.default_rng(0), 2, PromptSimulationConfig(
            num_init_cond_frames_for_train=3, rand_init_cond_frames_for_train=False).settings(True))


def test_mose_values_and_eval_settings():
    cfg = PromptSimulationConfig.mose()
    assert (cfg.prob_to_use_pt_input_for_train, cfg.prob_to_use_box_input_for_train) == (0.5, 0.5)
    assert (cfg.num_frames_to_correct_for_train, cfg.num_init_cond_frames_for_train) == (2, 2)
    assert cfg.add_all_frames_to_correct_as_cond and cfg.prob_to_sample_from_gt_for_train == 0.1
    train, evals = cfg.settings(True), cfg.settings(False)
    assert train.point_sampling == "uniform" and evals.point_sampling == "center"
    assert evals.prob_to_use_pt_input == 0.0 and evals.prob_to_sample_from_gt == 0.0
    default = PromptSimulationConfig()
    assert default.rand_init_cond_frames_for_train and default.num_correction_pt_per_frame == 7
