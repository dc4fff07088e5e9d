"""Plain nested dicts (parsed YAML) <-> typed config dataclasses, with errors naming the dotted key.

``from_tree(cls, tree, "trainer")`` builds a dataclass from a mapping whose keys are its field names,
recursively for nested dataclasses, checking and converting each value against the field's type
annotation (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``tuple[X, ...]``, ``list[X]``,
``dict[str, X]``, ``Literal[...]``, nested dataclasses). ``to_tree`` is the inverse and
``replace_path(cfg, "optim.base_lr", 1e-5)`` returns a copy with one nested field replaced.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from sam2.config_yaml import ConfigError  # one error type for model and training configs

__all__ = ["ConfigError", "convert", "from_tree", "replace_path", "to_tree"]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, list[Any]]:
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = list(get_args(tp))
        return type(None) in args, [a for a in args if a is not type(None)]
    return False, [tp]


def _describe(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def convert(tp: Any, value: Any, path: str) -> Any:
    """``value`` checked and converted to the annotation ``tp``; :class:`ConfigError` naming ``path``."""
    if tp is Any:
        return value
    optional, options = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path}: a value is required (got null)")
    if len(options) > 1:  # a union such as ``str | int``: the first option that accepts it
        for option in options:
            try:
                return convert(option, value, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: {value!r} is not a {_describe(tp)}")
    tp = options[0]
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_tree(tp, value, path)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
            items = [convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [convert(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {convert(key_tp, k, path): convert(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def from_tree(cls: type, tree: Any, path: str) -> Any:
    """Instance of dataclass ``cls`` from a mapping of its field names; unknown keys are errors."""
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of {cls.__name__} fields, got {tree!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in tree if k not in fields]
    if unknown:
        raise ConfigError(f"unknown key {_join(path, unknown[0])} (known keys of {path or 'the config'}: "
                          f"{', '.join(sorted(fields))})")
    hints = _hints(cls)
    values = {name: convert(hints[name], value, _join(path, name)) for name, value in tree.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path or 'config'}: {exc}") from exc


def to_tree(obj: Any) -> Any:
    """Plain YAML-friendly data of a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_tree(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_tree(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_tree(v) for k, v in obj.items()}
    return obj


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def replace_path(obj: Any, dotted: str, value: Any, _prefix: str = "") -> Any:
    """Copy of dataclass ``obj`` with the field at ``dotted`` (``"optim.base_lr"``) set to ``value``,
    converted to the field's type; a mapping value for a dataclass field merges key by key."""
    head, _, rest = dotted.partition(".")
    here = _join(_prefix, head)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name for f in dataclasses.fields(obj) if f.init}
        if head not in fields:
            raise ConfigError(f"unknown key {here} (known keys of {_prefix or 'the config'}: "
                              f"{', '.join(sorted(fields))})")
        current = getattr(obj, head)
        tp = _hints(type(obj))[head]
        if rest:
            if current is None:
                _, options = _is_optional(tp)
                current = options[0]() if dataclasses.is_dataclass(options[0]) else None
            if current is None or not (dataclasses.is_dataclass(current) or isinstance(current, (dict, list))):
                raise ConfigError(f"{here} has no sub-key {rest!r}")
            new = replace_path(current, rest, value, here)
            if isinstance(current, list):  # entries given as mappings become the list's element type
                new = convert(tp, new, here)
        elif isinstance(value, dict) and dataclasses.is_dataclass(current):
            new = current
            for key, sub in value.items():
                new = replace_path(new, key, sub, here)
        else:
            new = convert(tp, value, here)
        try:
            return dataclasses.replace(obj, **{head: new})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{here}: {exc}") from exc
    if isinstance(obj, list):
        if not head.isdigit() or int(head) > len(obj) or (rest and int(head) == len(obj)):
            raise ConfigError(f"{here}: no such list entry (the list has {len(obj)}; index {len(obj)} appends)")
        out_list = list(obj)
        index = int(head)
        if index == len(obj):
            out_list.append(value)
        else:
            out_list[index] = replace_path(obj[index], rest, value, here) if rest else value
        return out_list
    if isinstance(obj, dict):
        out = dict(obj)
        out[head] = replace_path(obj[head], rest, value, here) if rest and head in obj else value
        return out
    raise ConfigError(f"{_prefix or dotted}: cannot set a sub-key of {obj!r}")
