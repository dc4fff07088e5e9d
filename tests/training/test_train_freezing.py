"""Freezing named groups of a SAM 2 model by official key prefixes (sam2.training.freezing)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sam2.build_sam import build_sam2
from sam2.cli.selfcheck import MICRO_CONFIG
from sam2.training.freezing import FREEZE_GROUPS, find_sam2, freeze, parameter_summary


@pytest.fixture()
def micro() -> nn.Module:
    torch.manual_seed(0)
    return build_sam2(str(MICRO_CONFIG), None, device="cpu", mode="train")


class Holder(nn.Module):
    """A wrapper that holds the model as ``.model`` (like the training model)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


def _frozen_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def test_image_encoder_group_freezes_exactly_its_keys(micro):
    summary = freeze(micro, ["image_encoder"])
    expected = {n for n, _ in micro.named_parameters() if n.startswith("image_encoder.")}
    assert _frozen_names(micro) == expected
    frozen = sum(p.numel() for n, p in micro.named_parameters() if n in expected)
    total = sum(p.numel() for p in micro.parameters())
    assert (summary.frozen_params, summary.trainable_params) == (frozen, total - frozen)
    assert summary.frozen_tensors == len(expected)
    assert summary.frozen_prefixes == ("image_encoder",)
    assert "trainable" in str(summary)


def test_memory_group_covers_every_memory_module(micro):
    freeze(micro, ["memory"])
    frozen = _frozen_names(micro)
    for prefix in ("memory_attention.", "memory_encoder.", "mask_downsample.", "obj_ptr_proj.",
                   "obj_ptr_tpos_proj."):
        names = {n for n, _ in micro.named_parameters() if n.startswith(prefix)}
        assert names and names <= frozen, prefix
    for name in ("maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial"):
        assert name in frozen
    trainable = {n for n, p in micro.named_parameters() if p.requires_grad}
    assert all(n.startswith(("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed"))
               for n in trainable)


def test_groups_combine_and_prefixes_work_through_a_wrapper(micro):
    holder = Holder(micro)
    assert find_sam2(holder) is micro
    summary = freeze(holder, ["sam_prompt_encoder", "image_encoder.trunk.blocks.0"])
    frozen = _frozen_names(micro)
    assert frozen == {n for n, _ in micro.named_parameters()
                      if n.startswith(("sam_prompt_encoder.", "image_encoder.trunk.blocks.0."))}
    assert summary.frozen_tensors == len(frozen)
    # "blocks.0" must not swallow "blocks.1x" (prefixes end at a dot)
    assert not any(n.startswith("image_encoder.trunk.blocks.1") for n in frozen)


def test_every_named_group_matches_parameters(micro):
    for group in FREEZE_GROUPS:
        model = build_sam2(str(MICRO_CONFIG), None, device="cpu")
        assert freeze(model, [group]).frozen_params > 0, group


def test_unknown_group_is_a_clear_error_and_changes_nothing(micro):
    with pytest.raises(ValueError, match="unknown freeze group 'image_encoderr'"):
        freeze(micro, ["sam_mask_decoder", "image_encoderr"])
    assert not _frozen_names(micro)
    with pytest.raises(ValueError, match="'image_encoder.trunk.blocks.99'"):
        freeze(micro, ["image_encoder.trunk.blocks.99"])
    with pytest.raises(TypeError, match="not a SAM2Base"):
        freeze(nn.Linear(2, 2), ["image_encoder"])


def test_frozen_parameters_get_no_gradient_and_do_not_move(micro):
    freeze(micro, ["image_encoder"])
    before = {n: p.detach().clone() for n, p in micro.named_parameters()}
    trainable = [p for p in micro.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    images = torch.randn(2, 3, 128, 128)
    out = micro.forward_image(images)  # the decoder's conv_s0 / conv_s1 train, the encoder does not
    loss = sum(f.square().mean() for f in out["backbone_fpn"])
    loss.backward()
    optimizer.step()
    for name, p in micro.named_parameters():
        if name.startswith("image_encoder."):
            assert p.grad is None and torch.equal(p, before[name]), name
    assert not torch.equal(micro.sam_mask_decoder.conv_s0.weight, before["sam_mask_decoder.conv_s0.weight"])
    assert parameter_summary(micro).frozen_params == sum(
        p.numel() for n, p in micro.named_parameters() if n.startswith("image_encoder."))


def test_the_optimizer_builder_leaves_frozen_parameters_out(micro):
    from sam2.training.optimizer import OptimConfig, build_optimizer

    freeze(micro, ["image_encoder", "memory"])
    optimizer = build_optimizer(micro, OptimConfig())
    optimized = {id(p) for group in optimizer.optimizer.param_groups for p in group["params"]}
    for name, p in micro.named_parameters():
        assert (id(p) in optimized) == p.requires_grad, name
    freeze(micro, [group for group in FREEZE_GROUPS])
    with pytest.raises(ValueError, match="frozen"):
        build_optimizer(micro, OptimConfig())
