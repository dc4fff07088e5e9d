"""Optional LoRA adapters (through ``peft``, the ``[train]`` extra) on Linear layers of a SAM 2 model.

:func:`add_lora` replaces the chosen ``nn.Linear`` layers of the inner :class:`SAM2Base` in place by
``peft`` LoRA layers (``W x + (alpha / r) B A x``, ``B`` starting at zero, so the model is unchanged
until it trains) and leaves only the adapters trainable (plus, optionally, the whole mask decoder).
:func:`merge_lora` folds the adapters back: a plain state dict with exactly the official keys, which
loads strictly into ``build_sam2`` and gives the adapted model's outputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sam2.training.freezing import FreezeSummary, find_sam2, parameter_summary

__all__ = ["LORA_TARGET_PRESETS", "LoraSettings", "add_lora", "adapter_state_dict", "has_lora", "lora_targets",
           "merge_lora"]

# Named sets of module-name patterns (regular expressions matched in full against official names).
LORA_TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "trunk_attn": (r"image_encoder\.trunk\.blocks\.\d+\.attn\.(qkv|proj)",),
    "decoder_attn": (r"sam_mask_decoder\.transformer\.(layers\.\d+\.)?"
                     r"(self_attn|cross_attn_token_to_image|cross_attn_image_to_token|final_attn_token_to_image)"
                     r"\.(q|k|v|out)_proj",),
    "memory_attn": (r"memory_attention\.layers\.\d+\.(self_attn|cross_attn_image)\.(q|k|v|out)_proj",),
}
DEFAULT_TARGETS = ("trunk_attn", "decoder_attn")
_ADAPTER_KEY = re.compile(r"\.lora_(A|B|embedding_A|embedding_B|magnitude_vector)\.")


@dataclass(frozen=True)
class LoraSettings:
    """LoRA options. ``targets``: preset names of ``LORA_TARGET_PRESETS`` and/or regular expressions
    matched in full against the official module names (``image_encoder.trunk.blocks.3.attn.qkv``)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS
    train_mask_decoder: bool = False

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if not self.targets:
            raise ValueError("LoRA targets are empty: name a preset "
                             f"({sorted(LORA_TARGET_PRESETS)}) or a module-name pattern")


def lora_targets(model: nn.Module, targets: Sequence[str]) -> list[str]:
    """Official names of the ``nn.Linear`` modules selected by ``targets`` (presets or patterns).

    Raises ``ValueError`` naming a pattern that is invalid or selects no Linear layer.
    """
    modules = [(name, m) for name, m in find_sam2(model).named_modules() if isinstance(m, nn.Linear)]
    chosen: list[str] = []
    for target in targets:
        for pattern in LORA_TARGET_PRESETS.get(target, (target,)):
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"LoRA target {target!r} is not a valid regular expression: {exc}") from exc
            hits = [name for name, _ in modules if regex.fullmatch(name)]
            if not hits:
                raise ValueError(
                    f"LoRA target {target!r} matches no Linear layer of the model; use a preset "
                    f"({sorted(LORA_TARGET_PRESETS)}) or a pattern over names like 'image_encoder.trunk."
                    "blocks.0.attn.qkv'")
            chosen += [name for name in hits if name not in chosen]
    return chosen


def has_lora(model: nn.Module) -> bool:
    """Whether ``model`` carries LoRA adapters."""
    return any(_ADAPTER_KEY.search(name) for name, _ in find_sam2(model).named_parameters())


def add_lora(model: nn.Module, settings: LoraSettings = LoraSettings()) -> FreezeSummary:
    """Insert LoRA adapters into the inner :class:`SAM2Base` of ``model`` (in place).

    Afterwards only the adapters require gradients (and the mask decoder when
    ``settings.train_mask_decoder``); returns the trainable / frozen counts.
    """
    try:
        import peft
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("LoRA needs the 'peft' package: pip install 'sam2-kit[train]'") from exc
    sam = find_sam2(model)
    if has_lora(sam):
        raise ValueError("the model already has LoRA adapters")
    names = lora_targets(sam, settings.targets)
    config = peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                             target_modules=names, bias="none")
    peft.inject_adapter_in_model(config, sam)
    for name, param in sam.named_parameters():
        adapter = _ADAPTER_KEY.search(name) is not None
        decoder = settings.train_mask_decoder and name.startswith("sam_mask_decoder.")
        param.requires_grad_(adapter or decoder)
    return parameter_summary(model)


def merge_lora(model: nn.Module) -> dict[str, torch.Tensor]:
    """Plain state dict of ``model`` with every adapter folded into its base weight.

    The keys are exactly those of an official checkpoint (``...attn.qkv.weight``, no ``base_layer`` or
    ``lora_`` entries); the model itself is not changed. A model without adapters gives its own state.
    """
    from peft.tuners.lora import LoraLayer

    sam = find_sam2(model)
    deltas: dict[str, torch.Tensor] = {}
    for name, module in sam.named_modules():
        if isinstance(module, LoraLayer):
            weight = module.get_base_layer().weight
            delta = torch.zeros_like(weight, dtype=torch.float32)
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    delta += module.get_delta_weight(adapter).detach().float()
            deltas[f"{name}.weight"] = delta
    merged: dict[str, torch.Tensor] = {}
    for key, value in sam.state_dict().items():
        if _ADAPTER_KEY.search(key):
            continue
        official = key.replace(".base_layer.", ".")
        value = value.detach()
        if official in deltas:
            value = (value.float() + deltas[official]).to(value.dtype)
        merged[official] = value.clone()
    return merged


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors (``...lora_A.default.weight`` etc.), e.g. to keep a small copy."""
    return {k: v.detach().clone() for k, v in find_sam2(model).state_dict().items() if _ADAPTER_KEY.search(k)}
