"""The training-mode model against the official ``SAM2Train`` (fixtures ``train_a..d``), plus its edges.

Each scenario runs one forward + backward of the micro model at ``S = 256`` (cached per module). The
recorded prompts are injected through :class:`PromptSamplers`; the same replay also runs our own
samplers on our own predictions (same method, same torch generator) and records whether they agree.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from reference import (
    ABS_SCORE,
    REL_L2_IMAGE,
    assert_close_array,
    assert_scores,
    load_training_fixture,
    requires_reference,
    to_numpy,
)

from sam2.checkpoint import load_checkpoint
from sam2.config_yaml import resolve_config
from sam2.modeling.sam2_base import SAM2Base
from sam2.training.data.batch import VideoBatch
from sam2.training.losses import LossConfig, MultiStepMultiMasksAndIous
from sam2.training.model import PromptSimulationConfig, TrainFrameOutput, TrainingModel
from sam2.training.optimizer import OptimConfig, build_optimizer
from sam2.training.prompt_plan import PromptSamplers
from sam2.training.prompt_sampling import get_next_point, sample_box_points

pytestmark = requires_reference

SCENARIOS = ["train_a_points_center", "train_b_mask_two_cond", "train_c_box_uniform_seeded",
             "train_d_image_single_frame"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
REL_LOSS = 1e-5
REL_NORM = 1e-4
REL_FULL_GRAD = 5e-3


def micro_model(fx, directory: Path) -> SAM2Base:
    """The fixture's micro model: its YAML at ``image_size`` 256, memory-attention dropout 0, the
    synthesized weights loaded strictly from an official-layout checkpoint."""
    assert fx.spec["model_node_changes"]["image_size"] == 256
    cfg = resolve_config(fx.config).model
    cfg = dataclasses.replace(cfg, tracker=dataclasses.replace(cfg.tracker, image_size=256),
                              memory_attention=dataclasses.replace(cfg.memory_attention, dropout=0.0))
    model = SAM2Base(cfg)
    load_checkpoint(model, fx.checkpoint(directory))
    return model


def fixture_batch(fx) -> VideoBatch:
    spec = fx.spec["input"]
    u8 = torch.from_numpy(fx.arrays[spec["resized_uint8"]["npz_key"]]).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    img = ((u8 - mean) / std)[:, None]
    masks = torch.from_numpy(fx.arrays[spec["targets"]["npz_key"]])
    ids = torch.tensor(spec["unique_objects_identifier"], dtype=torch.int64)
    sizes = torch.tensor([180, 320]).expand(*masks.shape[:2], 2)
    return VideoBatch(img, torch.tensor(spec["obj_to_frame_idx"], dtype=torch.int32), masks, ids, sizes)


class Replay:
    """Returns the recorded prompts in order; also runs our sampler with the method the official
    harness used and records whether our click / box equals the recorded one."""

    def __init__(self, calls: list[dict]) -> None:
        self.calls, self.i = calls, 0
        self.agree: list[bool] = []
        self.methods: list[str] = []
        self.reference_none: list[bool] = []

    def _next(self, kind: str) -> dict:
        call = self.calls[self.i]
        self.i += 1
        assert call["sampler"] == kind, f"call {self.i - 1}: model asked for {kind}, fixture has {call['sampler']}"
        return call

    def box(self, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        call = self._next("sample_box_points")
        points, labels = torch.tensor(call["points"]), torch.tensor(call["labels"], dtype=torch.int32)
        ours, our_labels = sample_box_points(gt)
        self.agree.append(bool((ours - points).abs().max() <= 1e-4 and torch.equal(our_labels, labels)))
        return points, labels

    def click(self, gt: torch.Tensor, pred: torch.Tensor | None, method: str) -> tuple[torch.Tensor, torch.Tensor]:
        call = self._next("get_next_point")
        self.methods.append(method)
        self.reference_none.append(pred is None)
        points, labels = torch.tensor(call["points"]), torch.tensor(call["labels"], dtype=torch.int32)
        ours, our_labels = get_next_point(gt, pred, call["method_used"])
        self.agree.append(bool(torch.equal(ours, points) and torch.equal(our_labels, labels)))
        return points, labels


@dataclass
class Run:
    fx: object
    model: TrainingModel
    replay: Replay
    outputs: list[TrainFrameOutput]
    loss: dict[str, float]
    per_frame: list[dict[str, float]]
    grads: dict[str, torch.Tensor | None]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    return {}


@pytest.fixture
def run(request, runs, tmp_path_factory) -> Run:
    name = request.param
    if name not in runs:
        fx = load_training_fixture(name)
        model = micro_model(fx, tmp_path_factory.mktemp(name))
        replay = Replay(fx.spec["prompt_plan"]["sampler_calls"])
        tm = TrainingModel(model, PromptSimulationConfig(**fx.spec["train_kwargs"]),
                           samplers=PromptSamplers(box=replay.box, click=replay.click))
        tm.train()
        batch = fixture_batch(fx)
        seed = fx.spec["harness"]["torch_manual_seed_before_forward"]
        if seed is not None:
            torch.manual_seed(seed)
        outputs = tm(batch)
        loss_fn = MultiStepMultiMasksAndIous.from_config(LossConfig())
        total = loss_fn(outputs, batch.masks)
        n = loss_fn.normalizer(batch.masks)
        per_frame = [{k: float(v.detach()) for k, v in loss_fn.frame_losses(o, m, n).items()}
                     for o, m in zip(outputs, batch.masks)]
        total["core_loss"].backward()
        grads = {k: (None if p.grad is None else p.grad.detach().clone()) for k, p in tm.model.named_parameters()}
        runs[name] = Run(fx, tm, replay, outputs, {k: float(v.detach()) for k, v in total.items()}, per_frame, grads)
    return runs[name]


def by_scenario(names=SCENARIOS):
    return pytest.mark.parametrize("run", names, indirect=True)


# ----------------------------------------------------------------------------------- plan and prompts

@by_scenario()
def test_plan_and_prompts_follow_the_official_draws(run):
    """Our rng (seed 42) makes the recorded plan; every recorded sampler call was asked for in order,
    with the training method ("uniform") and, in c, the recorded from-GT choices (p = 0.1)."""
    plan, ref = run.model.last_plan, run.fx.spec["prompt_plan"]
    assert plan.use_pt_input == ref["use_pt_input"]
    assert plan.init_cond_frames == ref["init_cond_frames"]
    assert plan.frames_not_in_init_cond == ref["frames_not_in_init_cond"]
    assert plan.frames_to_add_correction_pt == ref["frames_to_add_correction_pt"]
    assert plan.processing_order == ref["processing_order"]
    assert run.replay.i == len(ref["sampler_calls"])
    clicks = [c for c in ref["sampler_calls"] if c["sampler"] == "get_next_point"]
    assert run.replay.methods == [c["method_requested"] for c in clicks]
    assert run.replay.reference_none == [c["pred_masks_none"] for c in clicks]


@by_scenario()
def test_own_samplers_reproduce_the_recorded_prompts(run):
    """Centre clicks (a, b, d) and, in c, the seeded box and uniform clicks from our samplers on our
    predictions equal the official ones."""
    assert all(run.replay.agree), run.replay.agree


@by_scenario()
def test_frame_flags_steps_and_clicks(run):
    for ref, out in zip(run.fx.spec["frames"], run.outputs):
        assert out.frame_idx == ref["frame"]
        assert out.is_init_cond_frame == ref["is_init_cond_frame"]
        assert out.stored_as_cond_frame == ref["stored_as_cond_frame"]
        assert (out.mask_inputs is not None, out.point_inputs is not None) == (
            ref["input"] == "mask", ref["input"] == "points")
        assert out.num_steps == ref["num_steps"] == out.multistep_pred_masks.shape[1]
        for k, step in enumerate(ref["steps"]):
            assert out.multistep_pred_multimasks[k].shape[1] == step["num_masks"]
            assert out.multistep_pred_multimasks_high_res[k].shape[1] == step["num_masks"]
            points = out.multistep_point_inputs[k]
            if step["point_coords"] is None:
                assert points is None
            else:
                assert np.array_equal(to_numpy(points.point_coords), np.asarray(step["point_coords"]))
                assert np.array_equal(to_numpy(points.point_labels), np.asarray(step["point_labels"]))


# ----------------------------------------------------------------------------------- forward numbers

def assert_logits(ours: torch.Tensor, ref: np.ndarray, what: str) -> None:
    assert_close_array(ours, ref, REL_L2_IMAGE, what)
    ours_np = to_numpy(ours)
    flipped = (ours_np > 0) != (ref > 0)
    assert not flipped.any() or np.abs(ref[flipped]).max() < 1e-3, f"{what}: sign differs where |ref| >= 1e-3"


@by_scenario()
def test_per_step_logits_ious_and_object_scores(run):
    fx = run.fx
    for ref, out in zip(fx.spec["frames"], run.outputs):
        for k, step in enumerate(ref["steps"]):
            where = f"frame {ref['frame']} step {k}"
            assert_logits(out.multistep_pred_multimasks[k], fx.expected(step["low_res_multimasks"]), where)
            assert_scores(out.multistep_pred_ious[k], fx.expected(step["ious"]), ABS_SCORE, f"{where} ious")
            assert_scores(out.multistep_object_score_logits[k], fx.expected(step["object_score_logits"]),
                          ABS_SCORE, f"{where} object scores")


@by_scenario()
def test_pred_masks_pointers_and_memory(run):
    fx = run.fx
    for ref, out in zip(fx.spec["frames"], run.outputs):
        assert_logits(out.pred_masks, fx.expected(ref["pred_masks"]), f"frame {ref['frame']} pred_masks")
        assert_close_array(out.obj_ptr, fx.expected(ref["obj_ptr"]), REL_L2_IMAGE, "obj_ptr")
        assert_close_array(out.maskmem_features, fx.expected(ref["maskmem_features"]), REL_L2_IMAGE, "memory")
        assert not out.obj_ptr.requires_grad and not out.maskmem_features.requires_grad


@by_scenario()
def test_high_res_logits_are_the_upsampled_low_res_ones(run):
    for ref, out in zip(run.fx.spec["frames"], run.outputs):
        for low, high in zip(out.multistep_pred_multimasks, out.multistep_pred_multimasks_high_res):
            if ref["input"] == "mask":
                continue
            up = torch.nn.functional.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
            assert torch.equal(up, high)
        if ref["input"] == "mask":
            gt = out.mask_inputs.float()
            assert torch.equal(out.pred_masks_high_res, gt * 20 - 10)


# ----------------------------------------------------------------------------------- loss and gradients

@by_scenario()
def test_mose_loss_total_and_per_frame(run):
    ref = run.fx.spec["loss"]
    for key, value in ref["total"].items():
        assert run.loss[key] == pytest.approx(value, rel=REL_LOSS, abs=1e-12), key
    for t, frame in enumerate(ref["per_frame"]):
        for key, value in frame.items():
            assert run.per_frame[t][key] == pytest.approx(value, rel=REL_LOSS, abs=1e-12), f"frame {t} {key}"


@by_scenario()
def test_parameters_without_gradient(run):
    ours = sorted(k for k, g in run.grads.items() if g is None)
    assert ours == sorted(run.fx.spec["gradients"]["params_without_grad"])


@by_scenario()
def test_gradient_norms(run):
    ref = run.fx.spec["gradients"]
    total = ref["total_norm"]
    ours_total = math.sqrt(sum(float(g.double().pow(2).sum()) for g in run.grads.values() if g is not None))
    assert ours_total == pytest.approx(total, rel=REL_NORM)
    bad = []
    for name, norm in ref["per_param_norm"].items():
        g = run.grads[name]
        if norm is None:
            assert g is None, name
            continue
        ours = float(g.double().norm())
        if abs(ours - norm) > 1e-3 * norm + 1e-5 * total:
            bad.append((name, ours, norm))
    assert not bad, bad


@by_scenario()
def test_full_gradients(run):
    """Scenario a stores its full gradients after the optimizer step's clipping (norm 5098 -> 0.1)."""
    fx = run.fx
    full = fx.spec["gradients"]["full"]
    assert full
    scale = 1.0
    if "optimizer_step" in fx.spec:
        step = fx.spec["optimizer_step"]
        scale = step["grad_total_norm_after_clip"] / step["grad_total_norm_before_clip"]
    for name, entry in full.items():
        assert_close_array(run.grads[name] * scale, fx.expected(entry), REL_FULL_GRAD, f"grad {name}")


@by_scenario(["train_a_points_center"])
def test_one_optimizer_step(run):
    """MOSE optimizer on the micro model: groups, lr / weight decay per parameter, clipping, updates."""
    ref = run.fx.spec["optimizer_step"]
    model = run.model.model
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    for k, p in model.named_parameters():
        p.grad = None if run.grads[k] is None else run.grads[k].clone()
    opt = build_optimizer(model, OptimConfig())
    assert len(opt.optimizer.param_groups) == ref["num_param_groups"]
    names = {id(p): k for k, p in model.named_parameters()}
    placed = {names[id(p)]: (i, g["lr"], g["weight_decay"]) for i, g in enumerate(opt.optimizer.param_groups)
              for p in g["params"]}
    for name, entry in ref["per_param"].items():
        group, lr, wd = placed[name]
        assert group == entry["group"], name
        assert lr == pytest.approx(entry["lr"], rel=1e-12) and wd == entry["weight_decay"], name
    norm_before, norm_after = opt.clip_gradients()
    assert norm_before == pytest.approx(ref["grad_total_norm_before_clip"], rel=REL_NORM)
    assert norm_after == pytest.approx(ref["grad_total_norm_after_clip"], rel=REL_NORM)
    opt.step()
    try:
        for name, entry in ref["deltas"].items():
            p_before = before[name].double()
            delta = dict(model.named_parameters())[name].detach().double() - p_before
            ulp = torch.from_numpy(np.spacing(np.abs(before[name].numpy()))).double()
            allowed = 4 * ulp + 1e-2 * entry["lr"]
            err = (delta - torch.from_numpy(run.fx.expected(entry["delta"])).double()).abs()
            assert bool((err <= allowed).all()), f"{name}: update differs by up to {float(err.max()):.3g}"
    finally:
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(before[k])
