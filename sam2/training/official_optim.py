"""``trainer.optim`` of the official training YAML -> :class:`~sam2.training.optimizer.OptimConfig`.

Supported shape (that of MOSE): AdamW; ``GradientClipper``; at most one ``layer_decay_param_modifier``;
``options.lr`` = a default scheduler plus at most one with ``param_names`` (the vision lr), both cosine
or both constant; ``options.weight_decay`` = a constant default plus at most one constant 0.0 entry
with ``param_names`` and/or ``module_cls_names`` (the exclusions).
"""

from __future__ import annotations

from typing import Any

from sam2.config_yaml import ConfigError
from sam2.training.official_node import Node
from sam2.training.optimizer import OptimConfig

__all__ = ["optim_from_official"]

_SCHED = "fvcore.common.param_scheduler."


def _scheduler(node: Node, where: str) -> tuple[str, float, float | None]:
    """(kind, start, end) of a ``scheduler`` node."""
    target = node.target(f"{_SCHED}CosineParamScheduler", f"{_SCHED}ConstantParamScheduler")
    if target.endswith("CosineParamScheduler"):
        out = ("cosine", float(node.get("start_value")), float(node.get("end_value")))
    else:
        out = ("constant", float(node.get("value")), None)
    node.finish()
    return out


def _entries(node: Node, key: str, where: str) -> tuple[Any, Any]:
    """(default entry, named entry) of ``options.<key>``; each ``(kind, start, end, names, classes)``."""
    default, named = None, None
    for entry in node.nodes(key):
        sched = _scheduler(entry.node("scheduler"), where)
        names = tuple(entry.get("param_names", ()) or ())
        classes = tuple(entry.get("module_cls_names", ()) or ())
        entry.finish()
        if not names and not classes:
            if default is not None:
                raise ConfigError(f"{where}: {entry.path}: a second default scheduler (without param_names)")
            default = (*sched, names, classes)
        elif named is not None:
            raise ConfigError(f"{where}: {entry.path}: sam2-kit supports one scheduler with param_names per "
                              f"option (the vision lr / the weight-decay exclusions)")
        else:
            named = (*sched, names, classes)
    if default is None:
        raise ConfigError(f"{where}: {node.path}.{key} needs a default scheduler (an entry without param_names)")
    return default, named


def optim_from_official(optim: Node, where: str) -> OptimConfig:
    values: dict[str, Any] = {}
    if optim.has("amp"):
        amp = optim.node("amp")
        values["amp_enabled"] = bool(amp.get("enabled", False))
        values["amp_dtype"] = str(amp.get("amp_dtype", "float16"))
        amp.finish()
    else:
        values["amp_enabled"] = False
    opt = optim.node("optimizer")
    opt.target("torch.optim.AdamW")
    opt.ignore("lr", "weight_decay")  # overwritten by the schedulers
    if opt.has("betas"):
        values["betas"] = tuple(opt.get("betas"))
    if opt.has("eps"):
        values["eps"] = float(opt.get("eps"))
    opt.finish()
    clip = optim.get("gradient_clip", None)
    if clip is None:
        values["gradient_clip_max_norm"] = None
    else:
        clip_node = Node(clip, f"{optim.path}.gradient_clip", optim.interp, where)
        clip_node.target("training.optimizer.GradientClipper")
        values["gradient_clip_max_norm"] = clip_node.get("max_norm", 1.0)
        values["gradient_clip_norm_type"] = float(clip_node.get("norm_type", 2))
        clip_node.finish()
    modifiers = optim.nodes("param_group_modifiers") if optim.has("param_group_modifiers") else []
    modifiers = [m for m in modifiers if not m.raw_is_null()]
    if len(modifiers) > 1:
        raise ConfigError(f"{where}: {optim.path}.param_group_modifiers: at most one is supported")
    values["layer_decay"] = None
    for mod in modifiers:
        mod.target("training.optimizer.layer_decay_param_modifier")
        mod.ignore("_partial_")
        values["layer_decay"] = float(mod.get("layer_decay_value"))
        values["layer_decay_apply_to"] = str(mod.get("apply_to"))
        values["layer_decay_min"] = mod.get("layer_decay_min", None)
        overrides = mod.get("overrides", []) or []
        values["layer_decay_overrides"] = {str(o["pattern"]): float(o["value"]) for o in overrides}
        mod.finish()
    options = optim.node("options")
    lr_default, lr_named = _entries(options, "lr", where)
    tenth = lambda start, end: None if end == start / 10 else end  # noqa: E731 - None: the default tenth
    values["lr_schedule"] = lr_default[0]
    values["base_lr"], values["base_lr_end"] = lr_default[1], tenth(lr_default[1], lr_default[2])
    if lr_named is None:
        values["vision_lr"] = None
    else:
        if lr_named[0] != lr_default[0] or lr_named[4]:
            raise ConfigError(f"{where}: {options.path}.lr: the named scheduler must be of the same kind as the "
                              "default and select by param_names only")
        values["vision_lr"], values["vision_lr_end"] = lr_named[1], tenth(lr_named[1], lr_named[2])
        values["vision_param_names"] = lr_named[3]
    wd_default, wd_named = _entries(options, "weight_decay", where)
    if wd_default[0] != "constant" or (wd_named is not None and (wd_named[0] != "constant" or wd_named[1] != 0.0)):
        raise ConfigError(f"{where}: {options.path}.weight_decay: only a constant default and a constant 0.0 "
                          "exclusion entry are supported")
    values["weight_decay"] = wd_default[1]
    values["no_weight_decay_param_names"] = wd_named[3] if wd_named else ()
    values["no_weight_decay_module_cls_names"] = wd_named[4] if wd_named else ()
    options.finish()
    optim.finish()
    try:
        return OptimConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {optim.path}: {exc}") from None
