"""LoRA adapters through peft and their merge into a plain, strictly loadable checkpoint (sam2.training.lora)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2.build_sam import build_sam2
from sam2.cli.selfcheck import MICRO_CONFIG, scene
from sam2.modeling.sam2_base import SAM2Base
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.training.lora import LoraSettings, adapter_state_dict, add_lora, has_lora, lora_targets, merge_lora

pytest.importorskip("peft")

SIZE = 128


def _micro(seed: int = 0) -> SAM2Base:
    torch.manual_seed(seed)
    return build_sam2(str(MICRO_CONFIG), None, device="cpu", mode="train")


def _decoder_logits(model: SAM2Base, images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Image encoder + prompt encoder + mask decoder: ``(B, 3, S, S)``, clicks ``(B, 1, 2)`` ->
    multimask low-res logits ``(B, 3, S/4, S/4)``."""
    b = images.shape[0]
    _, feats, _, sizes = model._prepare_backbone_features(model.forward_image(images))
    maps = [f.permute(1, 2, 0).reshape(b, -1, *s) for f, s in zip(feats, sizes)]
    top = (feats[-1] + model.no_mem_embed).permute(1, 2, 0).reshape(b, -1, *sizes[-1])
    labels = torch.ones(b, 1, dtype=torch.int32)
    sparse, dense = model.sam_prompt_encoder(points=(points, labels), boxes=None, masks=None)
    out = model.sam_mask_decoder(image_embeddings=top, image_pe=model.sam_prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                 multimask_output=True, repeat_image=False, high_res_features=maps[:2])
    return out.masks


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, SIZE, SIZE, generator=g)
    points = torch.tensor([[[40.0, 50.0]], [[90.0, 70.0]]])
    target = torch.zeros(2, 3, SIZE // 4, SIZE // 4)
    target[:, :, 5:20, 5:20] = 1.0
    return images, points, target


def _train(model: SAM2Base, steps: int = 3) -> None:
    images, points, target = _batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(_decoder_logits(model, images, points), target)
        loss.backward()
        optimizer.step()


def test_only_adapters_train_and_targets_are_the_chosen_layers():
    model = _micro()
    names = lora_targets(model, ["trunk_attn", "decoder_attn"])
    trunk_blocks = len(model.image_encoder.trunk.blocks)
    assert sum(n.startswith("image_encoder.trunk.") for n in names) == 2 * trunk_blocks
    assert all(n.endswith(("attn.qkv", "attn.proj", "_proj")) for n in names)
    summary = add_lora(model, LoraSettings(rank=4, alpha=8))
    assert has_lora(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert summary.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert summary.frozen_params > 50 * summary.trainable_params


def test_train_mask_decoder_option():
    model = _micro()
    add_lora(model, LoraSettings(rank=2, targets=("trunk_attn",), train_mask_decoder=True))
    for name, p in model.named_parameters():
        expected = name.startswith("sam_mask_decoder.") or ".lora_" in name
        assert p.requires_grad == expected, name


def test_merged_checkpoint_loads_strictly_and_reproduces_the_adapted_model(tmp_path):
    official_keys = list(_micro().state_dict())
    model = _micro()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, LoraSettings(rank=4, alpha=8, dropout=0.1))
    _train(model, steps=3)
    assert any(v.abs().max() > 0 for k, v in adapter_state_dict(model).items() if ".lora_B." in k)

    merged = merge_lora(model)
    assert list(merged) == official_keys
    path = tmp_path / "merged.pt"
    torch.save({"model": merged}, path)
    loaded = build_sam2(str(MICRO_CONFIG), str(path), device="cpu")  # strict: raises on any key mismatch

    model.eval()
    images, points, _ = _batch(seed=7)
    with torch.no_grad():
        adapted = _decoder_logits(model, images, points)
        plain = _decoder_logits(loaded, images, points)
        original = _micro()
        original.load_state_dict(base)
        untouched = _decoder_logits(original.eval(), images, points)
    assert (adapted - plain).abs().max().item() <= 1e-5 * max(1.0, adapted.abs().max().item())
    assert (adapted - untouched).abs().max().item() > 1e-3  # the adapters did change the model

    # the same through the public image predictor
    ours, theirs = SAM2ImagePredictor(model), SAM2ImagePredictor(loaded)
    for predictor in (ours, theirs):
        predictor.set_image(scene())
    click = dict(point_coords=np.array([[25.0, 30.0]]), point_labels=np.array([1]), return_logits=True)
    a, sa, _ = ours.predict(**click)
    b, sb, _ = theirs.predict(**click)
    assert np.abs(a - b).max() <= 1e-4 and np.abs(sa - sb).max() <= 1e-5


def test_merge_without_adapters_is_the_plain_state():
    model = _micro()
    merged = merge_lora(model)
    assert list(merged) == list(model.state_dict())
    assert all(torch.equal(merged[k], v) for k, v in model.state_dict().items())


def test_bad_settings_and_targets_are_clear_errors():
    model = _micro()
    with pytest.raises(ValueError, match="'attn.nothing'"):
        add_lora(model, LoraSettings(targets=("attn.nothing",)))
    with pytest.raises(ValueError, match="not a valid regular expression"):
        lora_targets(model, ["blocks.(("])
    with pytest.raises(ValueError, match="rank"):
        LoraSettings(rank=0)
    with pytest.raises(ValueError, match="targets are empty"):
        LoraSettings(targets=())
    assert not has_lora(model)
    add_lora(model, LoraSettings(rank=2, targets=("memory_attn",)))
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, LoraSettings(rank=2))
