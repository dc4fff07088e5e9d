"""Parameter groups of the official recipe, computed from parameter names (SPEC-training §5.1-5.4).

Two learning-rate sets (``base_lr`` for everything, ``vision_lr`` for ``image_encoder.*``), each split
by layer-wise lr decay of the Hiera trunk, crossed with two weight-decay sets (0.0 for ``*bias*`` and
parameters owned directly by ``torch.nn.LayerNorm`` modules, ``weight_decay`` otherwise). The group order
is the official one: lr sets outer (names sorted lexicographically inside the vision set, one group per
layer id in order of first appearance), weight-decay sets inner, empty combinations skipped, parameters
in ``named_parameters`` order. Every parameter is assigned, frozen or not, so the table of a full model is
the official one; the optimizer then leaves frozen parameters out.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from sam2.training.schedules import ConstantSchedule, CosineSchedule, Schedule

if TYPE_CHECKING:
    from sam2.training.optimizer import OptimConfig

__all__ = ["ParamGroupSpec", "ParamSpec", "param_groups", "per_parameter", "strip_prefix", "trunk_layer_id"]

LayerId = int | str | None


@dataclass(frozen=True)
class ParamGroupSpec:
    """One optimizer parameter group.

    names: the parameters (checkpoint names, ``named_parameters`` order); base_lr_name: ``"base_lr"`` or
    ``"vision_lr"``; lr_scale: the layer-decay multiplier; lr_schedule: the unscaled lr schedule (the
    group's lr is ``lr_schedule(where) * lr_scale``); weight_decay: constant; layer_id: the layer-decay
    key (an int, ``"override <pattern>"``, or None without layer decay).
    """

    index: int
    names: tuple[str, ...]
    base_lr_name: str
    lr_scale: float
    lr_schedule: Schedule
    weight_decay: float
    layer_id: LayerId

    def lr_at(self, where: float) -> float:
        return self.lr_schedule(where) * self.lr_scale


@dataclass(frozen=True)
class ParamSpec:
    """Where one parameter went: its group index, lr multiplier, base lr name, weight decay, layer id."""

    name: str
    group: int
    lr_scale: float
    base_lr_name: str
    weight_decay: float
    layer_id: LayerId


@dataclass
class _LrEntry:
    names: set[str]
    base_lr_name: str
    schedule: Schedule
    scale: float = 1.0
    layer_id: LayerId = None


def strip_prefix(name: str, prefix: str) -> str:
    return name[len(prefix):] if prefix and name.startswith(prefix) else name


def param_groups(model: nn.Module, cfg: OptimConfig, prefix: str = "") -> list[ParamGroupSpec]:
    """The official group table of ``model`` (the inner SAM2Base, or a wrapper whose parameter names
    start with ``prefix``, e.g. ``"model."`` or ``"module."``; names are reported without it)."""
    all_names = [strip_prefix(n, prefix) for n, _ in model.named_parameters()]
    if not all_names:
        raise ValueError("the model has no parameters to optimize")
    name_set = set(all_names)
    lr_entries = _lr_entries(name_set, cfg)
    if cfg.layer_decay is not None:
        lr_entries = _apply_layer_decay(lr_entries, model, cfg, prefix)
    decayed, not_decayed = _weight_decay_sets(model, name_set, cfg, prefix)
    wd_entries = [(decayed, float(cfg.weight_decay)), (not_decayed, 0.0)]
    groups: list[ParamGroupSpec] = []
    for lr in lr_entries:
        for wd_names, wd in wd_entries:
            members = tuple(n for n in all_names if n in lr.names and n in wd_names)
            if members:
                groups.append(ParamGroupSpec(len(groups), members, lr.base_lr_name, lr.scale, lr.schedule, wd,
                                             lr.layer_id))
    return groups


def per_parameter(groups: list[ParamGroupSpec]) -> dict[str, ParamSpec]:
    """``name -> ParamSpec`` for every parameter of the table."""
    return {name: ParamSpec(name, g.index, g.lr_scale, g.base_lr_name, g.weight_decay, g.layer_id)
            for g in groups for name in g.names}


def _schedule(cfg: OptimConfig, start: float, end: float | None) -> Schedule:
    if cfg.lr_schedule == "constant":
        return ConstantSchedule(start)
    return CosineSchedule(start, start / 10 if end is None else end)


def _lr_entries(names: set[str], cfg: OptimConfig) -> list[_LrEntry]:
    """The default (``base_lr``) set first, then the ``vision_lr`` set (config order of the recipe)."""
    if cfg.vision_lr is None:
        return [_LrEntry(set(names), "base_lr", _schedule(cfg, cfg.base_lr, cfg.base_lr_end))]
    vision = _match_globs(names, cfg.vision_param_names, "vision_param_names")
    return [_LrEntry(names - vision, "base_lr", _schedule(cfg, cfg.base_lr, cfg.base_lr_end)),
            _LrEntry(vision, "vision_lr", _schedule(cfg, cfg.vision_lr, cfg.vision_lr_end))]


def _match_globs(names: set[str], globs: tuple[str, ...], what: str) -> set[str]:
    matched: set[str] = set()
    for pattern in globs:
        hits = set(fnmatch.filter(names, pattern))
        if not hits:
            raise ValueError(f"optimizer {what}: pattern {pattern!r} matches no parameter of the model")
        matched |= hits
    return matched


def _weight_decay_sets(model: nn.Module, names: set[str], cfg: OptimConfig, prefix: str
                       ) -> tuple[set[str], set[str]]:
    """(decayed, not decayed): the second is the ``*bias*``-style globs plus the parameters owned
    directly by modules of exactly the listed classes."""
    excluded = _match_globs(names, cfg.no_weight_decay_param_names, "no_weight_decay_param_names")
    for class_name in cfg.no_weight_decay_module_cls_names:
        cls = _resolve_class(class_name)
        owned = {strip_prefix(f"{module_name}.{p}" if module_name else p, prefix)
                 for module_name, module in model.named_modules() if type(module) is cls
                 for p, _ in module.named_parameters(recurse=False)}
        if not owned:
            raise ValueError(f"optimizer no_weight_decay_module_cls_names: {class_name!r} owns no parameter "
                             "of the model")
        excluded |= owned & names
    return names - excluded, excluded


def _resolve_class(dotted: str) -> type:
    module_name, _, attr = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr) if module_name else None
    except (ImportError, AttributeError):
        cls = None
    if not isinstance(cls, type):
        raise ValueError(f"optimizer no_weight_decay_module_cls_names: {dotted!r} is not an importable class "
                         "(write it as 'package.module.Class', e.g. 'torch.nn.LayerNorm')")
    return cls


def trunk_layer_id(name: str, num_blocks: int) -> int:
    """Layer id of a Hiera trunk parameter: ``pos_embed`` / ``patch_embed`` 0, ``blocks.k`` k + 1,
    ``rel_pos`` and anything else ``num_blocks + 1``."""
    if "rel_pos" in name:
        return num_blocks + 1
    if "pos_embed" in name or "patch_embed" in name:
        return 0
    if "blocks" in name:
        return int(name.split("blocks", 1)[1].split(".")[1]) + 1
    return num_blocks + 1


def _num_trunk_blocks(model: nn.Module, cfg: OptimConfig, prefix: str) -> int:
    try:
        trunk = model.get_submodule(prefix + cfg.layer_decay_apply_to)
    except AttributeError:
        raise ValueError(f"optimizer layer_decay_apply_to: the model has no module "
                         f"{cfg.layer_decay_apply_to!r}") from None
    if hasattr(trunk, "get_num_layers"):
        return int(trunk.get_num_layers())
    blocks = getattr(trunk, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError(f"optimizer layer_decay_apply_to: {cfg.layer_decay_apply_to!r} has no 'blocks' list "
                         "to count layers in")
    return len(blocks)


def _apply_layer_decay(entries: list[_LrEntry], model: nn.Module, cfg: OptimConfig, prefix: str
                       ) -> list[_LrEntry]:
    """Split every lr set by layer id (sorted names, ids in order of first appearance); trunk parameters
    get ``layer_decay ** (L - id)`` with ``L = #blocks + 1``, the first matching override replaces it."""
    num_layers = _num_trunk_blocks(model, cfg, prefix) + 1
    scales = [cfg.layer_decay ** (num_layers - i) for i in range(num_layers + 1)]
    if cfg.layer_decay_min is not None:
        scales = [max(s, cfg.layer_decay_min) for s in scales]
    out: list[_LrEntry] = []
    for entry in entries:
        by_layer: dict[LayerId, _LrEntry] = {}
        for name in sorted(entry.names):
            layer_id: LayerId = num_layers
            scale = scales[num_layers]
            if name.startswith(cfg.layer_decay_apply_to):
                layer_id = trunk_layer_id(name, num_layers - 1)
                scale = scales[layer_id]
                for pattern, value in cfg.layer_decay_overrides.items():
                    if fnmatch.fnmatchcase(name, pattern):
                        layer_id, scale = f"override {pattern}", float(value)
                        break
            if layer_id not in by_layer:
                by_layer[layer_id] = _LrEntry(set(), entry.base_lr_name, entry.schedule, scale, layer_id)
            by_layer[layer_id].names.add(name)
        out.extend(by_layer.values())
    return out
