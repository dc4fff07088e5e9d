"""Checks of a resolved :class:`~sam2.config.ModelConfig` before any module is built.

A YAML file or an override can put a value of the wrong type (``num_maskmem: seven``) or an impossible
one (an image size the trunk cannot pool evenly) into the config; the model would then fail deep
inside a layer. :func:`config_problems` lists such problems in words that name the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from sam2.config import ModelConfig


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint`` (int, float, bool, str, tuples, ``X | None``)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(args) == len(value) and all(_type_ok(v, h) for v, h in zip(value, args))
    return True  # annotations this checker does not know are not checked


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def config_problems(cfg: ModelConfig) -> list[str]:
    """Every wrong-typed field (``model.<section>.<key>``) and impossible value of ``cfg``."""
    problems = []
    for section in dataclasses.fields(cfg):
        part = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(part):
            continue
        hints = typing.get_type_hints(type(part))
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            if not _type_ok(value, hints[f.name]):
                problems.append(f"{f.name} must be {_type_name(hints[f.name])}, got {value!r}")
    if problems:
        return problems  # the value checks below need the right types
    t = cfg.tracker
    stride = 4 * 2**cfg.trunk.q_pool  # patch embedding stride times the trunk's poolings
    if t.image_size <= 0 or t.image_size % stride:
        problems.append(f"image_size must be a positive multiple of {stride} (the trunk's total stride: "
                        f"patch stride 4 x 2**q_pool), got {t.image_size}")
    if t.memory_temporal_stride_for_eval < 1:
        problems.append(f"memory_temporal_stride_for_eval must be >= 1, got {t.memory_temporal_stride_for_eval}")
    return problems
