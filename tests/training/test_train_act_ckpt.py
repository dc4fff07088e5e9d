"""Activation checkpointing of the Hiera trunk: same numbers, blocks recomputed only when it matters."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sam2.build_sam import build_sam2
from sam2.cli.selfcheck import MICRO_CONFIG
from sam2.modeling.hiera import Hiera
from sam2.modeling.sam2_base import SAM2Base


def _micro() -> SAM2Base:
    torch.manual_seed(0)
    return build_sam2(str(MICRO_CONFIG), None, device="cpu", mode="train")


def _count_block_calls(model: SAM2Base) -> list[int]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    for block in model.image_encoder.trunk.blocks:
        block.register_forward_pre_hook(hook)  # a recomputation may stop early
    return calls


def _loss(model: SAM2Base, images: torch.Tensor) -> torch.Tensor:
    out = model.forward_image(images)
    weights = [torch.linspace(-1, 1, f.numel()).reshape(f.shape) for f in out["backbone_fpn"]]
    return sum((f * w).sum() + f.square().mean() for f, w in zip(out["backbone_fpn"], weights))


def _grads(model: SAM2Base, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = _loss(model, images)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradients_equal_with_and_without_checkpointing():
    model = _micro()
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    trunk = model.image_encoder.trunk
    assert trunk.activation_checkpointing is False  # off by default
    calls = _count_block_calls(model)
    loss_plain, plain = _grads(model, images)
    plain_calls, calls[0] = calls[0], 0
    trunk.activation_checkpointing = True
    loss_ckpt, ckpt = _grads(model, images)
    assert plain_calls == len(trunk.blocks)
    assert calls[0] == 2 * len(trunk.blocks)  # every block recomputed during backward
    assert torch.allclose(loss_ckpt, loss_plain, rtol=1e-7, atol=0)
    assert set(ckpt) == set(plain) and any(n.startswith("image_encoder.trunk.blocks.") for n in plain)
    for name, grad in plain.items():
        rel = (ckpt[name] - grad).norm() / grad.norm().clamp_min(1e-30)
        assert rel <= 1e-6, f"{name}: relative difference {rel:.2e}"


@pytest.mark.parametrize("mode", ["eval", "no_grad"])
def test_no_recomputation_in_eval_or_without_grad(mode):
    model = _micro()
    model.image_encoder.trunk.activation_checkpointing = True
    calls = _count_block_calls(model)
    images = torch.randn(1, 3, 128, 128)
    if mode == "eval":
        model.eval()
        out = model.forward_image(images)
        assert out["vision_features"].requires_grad  # gradients still flow, no checkpoint wrapper
        out["vision_features"].sum().backward()
    else:
        with torch.no_grad():
            model.forward_image(images)
    assert calls[0] == len(model.image_encoder.trunk.blocks)


def test_same_gradients_with_stochastic_depth():
    """Recomputation replays the random drop-path draws of the forward pass (saved generator state)."""
    trunk = Hiera(replace(_micro().cfg.trunk, drop_path_rate=0.5)).train()
    images = torch.randn(3, 3, 128, 128, generator=torch.Generator().manual_seed(5))

    def run(checkpointed: bool, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        trunk.activation_checkpointing = checkpointed
        trunk.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        outs = trunk(images)
        loss = sum((o * torch.linspace(-1, 1, o.numel()).reshape(o.shape)).sum() for o in outs)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in trunk.named_parameters() if p.grad is not None}

    loss_plain, plain = run(False, seed=11)
    loss_ckpt, ckpt = run(True, seed=11)
    loss_other, _ = run(False, seed=12)
    assert not torch.allclose(loss_other, loss_plain)  # drop path is active: another seed, another loss
    assert torch.allclose(loss_ckpt, loss_plain, rtol=1e-7, atol=0)
    for name, grad in plain.items():
        rel = (ckpt[name] - grad).norm() / grad.norm().clamp_min(1e-30)
        assert rel <= 1e-6, f"{name}: relative difference {rel:.2e}"
