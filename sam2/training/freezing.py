"""Freeze parts of a SAM 2 model by name: named groups of official state-dict key prefixes.

Freezing sets ``requires_grad = False``; the optimizer builder leaves such parameters out, so they
keep their initial values and need no optimizer state. The official recipe trains everything and
offers only ``freeze_image_encoder`` (the ``image_encoder`` group here).

Groups (``FREEZE_GROUPS``) name sets of key prefixes of the inner :class:`SAM2Base`; any other
dotted prefix of its parameter names (for example ``image_encoder.trunk.blocks.0``) is accepted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from sam2.modeling.sam2_base import SAM2Base

__all__ = ["FREEZE_GROUPS", "FreezeSummary", "find_sam2", "freeze", "parameter_summary", "resolve_prefixes"]

# Everything the tracking memory uses and a single image never needs.
MEMORY_PREFIXES = (
    "memory_attention", "memory_encoder", "mask_downsample", "obj_ptr_proj", "obj_ptr_tpos_proj",
    "maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial",
)

FREEZE_GROUPS: dict[str, tuple[str, ...]] = {
    "image_encoder": ("image_encoder",),
    "image_encoder.trunk": ("image_encoder.trunk",),
    "image_encoder.neck": ("image_encoder.neck",),
    "sam_prompt_encoder": ("sam_prompt_encoder",),
    "sam_mask_decoder": ("sam_mask_decoder",),
    "memory": MEMORY_PREFIXES,
    # ``no_mem_embed`` is added to the image features of every prompted frame, images included.
    "no_mem_embed": ("no_mem_embed",),
}


@dataclass(frozen=True)
class FreezeSummary:
    """How many parameters (elements and tensors) train and how many are frozen."""

    trainable_params: int
    frozen_params: int
    trainable_tensors: int
    frozen_tensors: int
    frozen_prefixes: tuple[str, ...] = ()

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.frozen_params

    def __str__(self) -> str:
        share = 100.0 * self.trainable_params / max(self.total_params, 1)
        return (f"{self.trainable_params:,} trainable parameters ({share:.1f}%) in {self.trainable_tensors} "
                f"tensors, {self.frozen_params:,} frozen in {self.frozen_tensors} tensors")


def find_sam2(model: nn.Module) -> SAM2Base:
    """The :class:`SAM2Base` inside ``model``: itself, or held as ``.model`` / ``.module`` (DDP)."""
    seen = model
    for _ in range(4):
        if isinstance(seen, SAM2Base):
            return seen
        inner = [getattr(seen, attr, None) for attr in ("module", "model")]
        inner = [m for m in inner if isinstance(m, nn.Module)]
        if not inner:
            break
        seen = inner[0]
    raise TypeError(f"{type(model).__name__} is not a SAM2Base and holds none as .model or .module")


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def resolve_prefixes(model: nn.Module, groups: Iterable[str]) -> tuple[str, ...]:
    """Key prefixes of ``groups`` (group names or prefixes of the model's parameter names).

    Raises ``ValueError`` naming the first entry that is neither a group nor a prefix of any
    parameter of the model (for example a typo, or a module the config does not build).
    """
    names = [name for name, _ in find_sam2(model).named_parameters()]
    prefixes: list[str] = []
    for group in groups:
        if group in FREEZE_GROUPS:
            wanted = [p for p in FREEZE_GROUPS[group] if any(_matches(n, p) for n in names)]
        elif any(_matches(n, group) for n in names):
            wanted = [group]
        else:
            raise ValueError(
                f"unknown freeze group {group!r}: expected one of {sorted(FREEZE_GROUPS)} or a prefix of the "
                "model's parameter names (for example 'image_encoder.trunk.blocks.0')")
        prefixes += [p for p in wanted if p not in prefixes]
    return tuple(prefixes)


def parameter_summary(model: nn.Module, frozen_prefixes: Sequence[str] = ()) -> FreezeSummary:
    """Count trainable and frozen parameters of ``model`` (whatever froze them)."""
    counts = {True: [0, 0], False: [0, 0]}
    for p in model.parameters():
        counts[p.requires_grad][0] += p.numel()
        counts[p.requires_grad][1] += 1
    return FreezeSummary(counts[True][0], counts[False][0], counts[True][1], counts[False][1],
                         tuple(frozen_prefixes))


def freeze(model: nn.Module, groups: Iterable[str]) -> FreezeSummary:
    """Set ``requires_grad = False`` on every parameter under the prefixes of ``groups``.

    ``model`` is a :class:`SAM2Base` or a wrapper holding one; prefixes refer to the official keys of
    the inner model. Unknown groups raise ``ValueError`` before anything is changed. Parameters outside
    the groups keep their current ``requires_grad``.
    """
    prefixes = resolve_prefixes(model, list(groups))
    for name, param in find_sam2(model).named_parameters():
        if any(_matches(name, p) for p in prefixes):
            param.requires_grad_(False)
    return parameter_summary(model, prefixes)
