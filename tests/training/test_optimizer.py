"""Optimizer construction of the official recipe: the b+ group table (``optimizer_sam2.1_hiera_b+_mose``),
the micro model's groups and one AdamW step of ``train_a``, schedules, clipping, freezing, state dicts
and bad configurations."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sam2.build_sam import build_sam2
from sam2.config_yaml import resolve_config
from sam2.modeling.sam2_base import SAM2Base
from sam2.training.optimizer import (
    OptimConfig,
    build_optimizer,
    param_groups,
    per_parameter,
    training_progress,
)
from sam2.training.schedules import CosineSchedule
from tests.reference import config_for, load_training_fixture, requires_reference, write_checkpoint

pytestmark = requires_reference

LR_REL = 1e-12  # README: lr / weight decay per parameter exact (rel 1e-12), group order exact
B_PLUS = "optimizer_sam2.1_hiera_b+_mose"
TRAIN_A = "train_a_points_center"


@functools.cache
def _b_plus_meta() -> SAM2Base:
    """The b+ model on the meta device: names, shapes and module classes, no memory."""
    with torch.device("meta"):
        return SAM2Base(resolve_config("configs/sam2.1/sam2.1_hiera_b+.yaml").model)


def _micro(tmp_path: Path | None = None) -> SAM2Base:
    """The micro model of the train fixtures, with their synthesized weights when ``tmp_path`` is given."""
    fx = load_training_fixture(TRAIN_A)
    ckpt = None
    if tmp_path is not None:
        ckpt = write_checkpoint(tmp_path / "micro.pt", fx.model, fx.spec["weights"]["seed"],
                                fx.spec["weights"]["overrides"])
    return build_sam2(config_for(fx.model), ckpt, device="cpu", mode="train", apply_postprocessing=False)


def _close(ours: float, ref: float) -> bool:
    return abs(ours - ref) <= LR_REL * abs(ref)


# ----------------------------------------------------------------------------------- group tables

def test_b_plus_group_table_matches_official():
    fx = load_training_fixture(B_PLUS).spec
    groups = param_groups(_b_plus_meta(), OptimConfig())
    assert len(groups) == len(fx["param_groups"]) == 55
    for ours, ref in zip(groups, fx["param_groups"]):
        assert ours.index == ref["index"] and len(ours.names) == ref["num_params"]
        assert ours.weight_decay == ref["weight_decay"] == ref["weight_decay_value"]
        assert _close(ours.lr_scale, ref["lr_scale"]) and _close(ours.lr_at(0.0), ref["lr"])
        assert isinstance(ours.lr_schedule, CosineSchedule)
        assert _close(ours.lr_schedule.start, ref["lr_start_value"])
        assert _close(ours.lr_schedule.end, ref["lr_end_value"])
    table = per_parameter(groups)
    for name, ref in fx["params"].items():
        if not ref["optimized"]:
            assert name not in table, f"{name} is a buffer"
            continue
        ours = table[name]
        assert (ours.group, ours.weight_decay, ours.layer_id) == (ref["group"], ref["weight_decay"], ref["layer_id"]), name
        assert f"scratch.{ours.base_lr_name}" == ref["base_lr_name"], name
        assert _close(ours.lr_scale, ref["lr_scale"]) and _close(groups[ours.group].lr_at(0.0), ref["lr"]), name
    assert sum(len(g.names) for g in groups) == len(table) == sum(r["optimized"] for r in fx["params"].values())


def test_b_plus_group_members_are_in_named_parameters_order():
    model = _b_plus_meta()
    order = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    for group in param_groups(model, OptimConfig()):
        assert [order[n] for n in group.names] == sorted(order[n] for n in group.names)


def test_micro_groups_match_train_a():
    step = load_training_fixture(TRAIN_A).spec["optimizer_step"]
    opt = build_optimizer(_micro(), OptimConfig())
    assert len(opt.groups) == step["num_param_groups"] == 31
    for torch_group, ref in zip(opt.optimizer.param_groups, step["param_groups"]):
        assert len(torch_group["params"]) == ref["num_params"]
        assert _close(torch_group["lr"], ref["lr"]) and torch_group["weight_decay"] == ref["weight_decay"]
        assert list(torch_group["betas"]) == ref["betas"] and torch_group["eps"] == ref["eps"]
        assert torch_group["amsgrad"] is ref["amsgrad"]
    table = per_parameter(opt.groups)
    for name, ref in step["per_param"].items():
        assert table[name].group == ref["group"] and table[name].weight_decay == ref["weight_decay"], name
        assert _close(opt.groups[ref["group"]].lr_at(0.0), ref["lr"]), name


def test_one_adamw_step_of_train_a_with_recorded_gradients(tmp_path):
    """set_progress(0), clipping and the AdamW step on the recorded gradients of the parameters whose
    update the fixture stores; one filler gradient gives the recorded total norm.

    The ``gradients.full`` arrays of ``train_a`` were captured after clipping (their norms are
    ``per_param_norm * 0.1 / total_norm``), so the raw gradients are rebuilt by undoing the clip."""
    fx = load_training_fixture(TRAIN_A)
    step, grads = fx.spec["optimizer_step"], fx.spec["gradients"]
    total = step["grad_total_norm_before_clip"]
    unclip = (total + 1e-6) / 0.1  # clip_grad_norm_ multiplies by max_norm / (norm + 1e-6)
    model = _micro(tmp_path)
    params = dict(model.named_parameters())
    checked = [n for n in step["deltas"] if n in grads["full"]]
    assert len(checked) >= 3
    for name in checked:
        raw = torch.from_numpy(fx.expected(grads["full"][name])).double() * unclip
        assert raw.norm().item() == pytest.approx(grads["per_param_norm"][name], rel=1e-4, abs=1e-6), name
        params[name].grad = raw.float()
    rest = sum(float(params[n].grad.double().square().sum()) for n in checked)
    filler = params["sam_mask_decoder.iou_token.weight"]
    filler.grad = torch.zeros_like(filler)
    filler.grad.view(-1)[0] = math.sqrt(total ** 2 - rest)
    before = {n: params[n].detach().clone() for n in checked}

    opt = build_optimizer(model, OptimConfig())
    norm_before, norm_after = opt.clip_gradients()
    assert norm_before == pytest.approx(total, rel=1e-4)
    assert norm_after == pytest.approx(step["grad_total_norm_after_clip"], rel=1e-4)
    opt.step()
    for name in checked:
        ref = step["deltas"][name]
        delta = params[name].detach().double() - before[name].double()
        ulp = np.spacing(np.abs(before[name].numpy())).astype(np.float64)
        bound = 4 * ulp + 1e-2 * ref["lr"]
        err = np.abs(delta.numpy() - fx.expected(ref["delta"]).astype(np.float64))
        assert (err <= bound).all(), f"{name}: update differs by {err.max():.3g}"


# ----------------------------------------------------------------------------------- schedules

def test_schedule_values_match_official():
    fx = load_training_fixture(B_PLUS).spec["schedule"]
    groups = param_groups(_b_plus_meta(), OptimConfig())
    base, vision = groups[0], groups[2]
    assert (base.base_lr_name, vision.base_lr_name) == ("base_lr", "vision_lr")
    for row in fx["values"]:
        assert _close(base.lr_at(row["where"]), row["base_lr"])
        assert _close(vision.lr_at(row["where"]), row["vision_lr"])
    last = training_progress(fx["mose_max_epochs"] - 1, fx["mose_iters_per_epoch_per_gpu"] - 1,
                             fx["mose_iters_per_epoch_per_gpu"], fx["mose_max_epochs"])
    assert last == fx["values"][-1]["where"]
    assert training_progress(0, 0, 312, 40) == 0.0
    with pytest.raises(ValueError, match="iteration 312 of epoch 0 is outside 0..311"):
        training_progress(0, 312, 312, 40)
    with pytest.raises(ValueError, match="must be > 0"):
        training_progress(0, 0, 0, 40)


def test_set_progress_applies_every_group_and_keeps_values_at_the_end(caplog):
    model = _micro()
    opt = build_optimizer(model, OptimConfig())
    opt.set_progress(0.5)
    for spec, group in zip(opt.groups, opt.optimizer.param_groups):
        end = spec.lr_schedule.end
        assert group["lr"] == pytest.approx((end + 0.5 * (spec.lr_schedule.start - end)) * spec.lr_scale, rel=1e-12)
        assert group["weight_decay"] == spec.weight_decay
    lrs = opt.lrs()
    opt.set_progress(1.0)
    assert opt.lrs() == lrs and opt.where == 0.5
    assert "keeping the current learning rates" in caplog.text
    for bad in (-0.1, 1.5, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="'where' must be in \\[0, 1\\]"):
            opt.set_progress(bad)


def test_constant_schedule_and_explicit_end_lrs():
    model = _micro()
    constant = build_optimizer(model, OptimConfig(lr_schedule="constant"))
    constant.set_progress(0.9)
    assert constant.lrs()[0] == 5e-6 and constant.lrs()[2] == 3e-6
    ends = build_optimizer(model, OptimConfig(base_lr_end=1e-6, vision_lr_end=0.0))
    assert ends.groups[0].lr_at(0.5) == pytest.approx(3e-6) and ends.groups[2].lr_at(0.5) == pytest.approx(1.5e-6)


def test_without_vision_lr_and_layer_decay_everything_gets_base_lr():
    groups = param_groups(_b_plus_meta(), OptimConfig(vision_lr=None, layer_decay=None))
    assert len(groups) == 2 and {g.weight_decay for g in groups} == {0.1, 0.0}
    assert all(g.lr_scale == 1.0 and g.base_lr_name == "base_lr" and g.layer_id is None for g in groups)


def test_layer_decay_min_floors_the_multipliers():
    groups = param_groups(_b_plus_meta(), OptimConfig(layer_decay_min=0.5))
    assert min(g.lr_scale for g in groups) == 0.5


# ----------------------------------------------------------------------------------- clipping

def _toy(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 10
    return model


_TOY = OptimConfig(vision_lr=None, layer_decay=None)


def test_clipping_scales_to_max_norm_and_reports_both_norms():
    model = _toy()
    grads = [p.grad.clone() for p in model.parameters()]
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
    before, after = build_optimizer(model, _TOY).clip_gradients()
    assert before == pytest.approx(total, rel=1e-6) and after == pytest.approx(0.1, rel=1e-5)
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g * (0.1 / (total + 1e-6)))


def test_clipping_off_or_below_the_norm_leaves_gradients_alone():
    model = _toy()
    grads = [p.grad.clone() for p in model.parameters()]
    before, after = build_optimizer(model, OptimConfig(vision_lr=None, layer_decay=None,
                                                       gradient_clip_max_norm=None)).clip_gradients()
    assert before == after > 1
    big = build_optimizer(model, OptimConfig(vision_lr=None, layer_decay=None, gradient_clip_max_norm=1e6))
    assert big.clip_gradients()[0] == pytest.approx(before)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


def test_clipping_unscales_through_a_grad_scaler():
    model = _toy()
    for p in model.parameters():
        p.grad = None
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(model(torch.ones(1, 4)).sum()).backward()
    unscaled = torch.linalg.vector_norm(torch.stack([p.grad.norm() / 1024 for p in model.parameters()])).item()
    opt = build_optimizer(model, _TOY)
    before, _ = opt.clip_gradients(scaler)
    assert before == pytest.approx(unscaled, rel=1e-5)
    opt.step(scaler)
    scaler.update()


# ----------------------------------------------------------------------------------- freezing, wrapping, state

def test_frozen_parameters_are_left_out_but_the_table_is_unchanged():
    model = _micro()
    full = build_optimizer(model, OptimConfig())
    for p in model.image_encoder.parameters():
        p.requires_grad_(False)
    frozen = build_optimizer(model, OptimConfig())
    assert [g.names for g in frozen.groups] == [g.names for g in full.groups]
    assert len(frozen.optimizer.param_groups) == len(full.optimizer.param_groups)
    in_optimizer = {id(p) for p in frozen.params}
    assert not any(id(p) in in_optimizer for p in model.image_encoder.parameters())
    assert all(not g["params"] for g in frozen.optimizer.param_groups[2:])
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter of the model is frozen"):
        build_optimizer(model, OptimConfig())


def test_wrapped_model_with_prefix_gives_the_same_table():
    class Wrapper(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

    inner = _micro()
    plain = param_groups(inner, OptimConfig())
    wrapped = param_groups(Wrapper(inner), OptimConfig(), prefix="model.")
    assert [(g.names, g.lr_scale, g.weight_decay) for g in wrapped] == \
        [(g.names, g.lr_scale, g.weight_decay) for g in plain]


def test_state_dict_round_trip_continues_the_same_updates():
    def run(opt, model, steps, first=0):
        for k in range(first, first + steps):  # a different input per step, so the moments matter
            opt.zero_grad()
            model(torch.randn(2, 4, generator=torch.Generator().manual_seed(k))).square().sum().backward()
            opt.clip_gradients()
            opt.step()

    def next_update(opt, model):
        before = [p.detach().clone() for p in model.parameters()]
        run(opt, model, 1, first=2)
        return torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])

    a = _toy(1)
    opt_a = build_optimizer(a, _TOY)
    run(opt_a, a, 2)
    resumed, fresh = _toy(2), _toy(3)
    resumed.load_state_dict(a.state_dict())
    fresh.load_state_dict(a.state_dict())
    opt_resumed, opt_fresh = build_optimizer(resumed, _TOY), build_optimizer(fresh, _TOY)
    opt_resumed.load_state_dict(opt_a.state_dict())
    expected = next_update(opt_a, a)
    # bit-level noise only (CPU kernels may round the last ulp differently for copied tensors)
    torch.testing.assert_close(next_update(opt_resumed, resumed), expected, rtol=1e-4, atol=1e-12)
    assert (next_update(opt_fresh, fresh) - expected).abs().max() > 1e-2 * expected.abs().max()
    other = build_optimizer(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), _TOY)
    with pytest.raises(ValueError, match="does not fit this model"):
        other.load_state_dict(opt_a.state_dict())
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        other.load_state_dict({"model": {}})


def test_weight_decay_exclusions_follow_exact_classes():
    table = per_parameter(param_groups(_b_plus_meta(), OptimConfig()))
    assert table["memory_attention.layers.0.norm1.weight"].weight_decay == 0.0      # nn.LayerNorm
    assert table["sam_mask_decoder.output_upscaling.1.weight"].weight_decay == 0.1  # LayerNorm2d
    assert table["memory_encoder.fuser.layers.0.gamma"].weight_decay == 0.1
    assert table["sam_mask_decoder.iou_prediction_head.layers.2.bias"].weight_decay == 0.0


# ----------------------------------------------------------------------------------- bad configuration

@pytest.mark.parametrize("kwargs, match", [
    ({"base_lr": -1e-5}, "base_lr must be >= 0"),
    ({"vision_lr": float("inf")}, "vision_lr must be a finite number"),
    ({"weight_decay": "0.1"}, "weight_decay must be a finite number"),
    ({"amp_dtype": "float8"}, "amp_dtype must be one of \\['bfloat16', 'float16'\\]"),
    ({"lr_schedule": "linear"}, "lr_schedule must be one of"),
    ({"layer_decay": 1.5}, "layer_decay must be in \\(0, 1\\]"),
    ({"layer_decay": 0.0}, "layer_decay must be > 0"),
    ({"gradient_clip_max_norm": 0}, "gradient_clip_max_norm must be > 0"),
    ({"betas": (0.9,)}, "betas must be two numbers"),
    ({"eps": 0.0}, "eps must be > 0"),
    ({"amp_enabled": "yes"}, "amp_enabled must be true or false"),
    ({"vision_param_names": "image_encoder.*"}, "vision_param_names must be a list of strings"),
    ({"layer_decay_overrides": [("*pos_embed*", 1.0)]}, "layer_decay_overrides must map"),
])
def test_bad_config_values_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        OptimConfig(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"vision_param_names": ("vision.*",)}, "pattern 'vision.\\*' matches no parameter"),
    ({"no_weight_decay_module_cls_names": ("torch.nn.Nope",)}, "'torch.nn.Nope' is not an importable class"),
    ({"no_weight_decay_module_cls_names": ("torch.nn.BatchNorm2d",)}, "owns no parameter"),
    ({"layer_decay_apply_to": "image_encoder.body"}, "has no module 'image_encoder.body'"),
])
def test_config_that_does_not_fit_the_model_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        param_groups(_b_plus_meta(), OptimConfig(**kwargs))


def test_defaults_are_the_mose_recipe():
    cfg = OptimConfig()
    assert (cfg.base_lr, cfg.vision_lr, cfg.weight_decay, cfg.layer_decay) == (5e-6, 3e-6, 0.1, 0.9)
    assert cfg.gradient_clip_max_norm == 0.1 and cfg.gradient_clip_norm_type == 2
    assert cfg.amp_enabled and cfg.autocast_dtype is torch.bfloat16
    assert cfg.layer_decay_overrides == {"*pos_embed*": 1.0} and cfg.layer_decay_apply_to == "image_encoder.trunk"
