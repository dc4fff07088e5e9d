"""``${...}`` interpolations of the official (OmegaConf / Hydra) training YAML, without OmegaConf.

Supported: references to other keys (``${scratch.resolution}``, absolute dotted paths) and the
resolvers the official launcher registers for arithmetic (``add``, ``subtract``, ``times``, ``divide``,
``pow``, ``int``, ``ceil_int``), nested as in ``${times:${scratch.num_epochs},${scratch.phases_per_epoch}}``.
A string that is exactly one interpolation keeps the value's type; interpolations inside a longer
string are substituted as text. Values are resolved when read, so unused keys may hold anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import yaml

from sam2.config_yaml import ConfigError

__all__ = ["Interpolator", "YamlLoader", "load_yaml"]


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``1e-5`` / ``5e6`` as floats (as OmegaConf does)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`YamlLoader`."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass

_RESOLVERS: dict[str, Callable[..., Any]] = {
    "add": lambda *xs: sum(xs),
    "subtract": lambda a, b: a - b,
    "times": lambda *xs: math.prod(xs),
    "divide": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "int": lambda a: int(a),
    "ceil_int": lambda a: int(math.ceil(a)),
}


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` characters that are not inside a nested ``${...}``."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}" and depth:
            depth -= 1
        elif text[i] == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _find_close(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` at ``start``."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


class Interpolator:
    """Resolve the values of one parsed YAML ``tree``; errors name ``where`` (the file) and the key."""

    def __init__(self, tree: dict, where: str) -> None:
        self.tree, self.where = tree, where
        self._active: list[str] = []

    def lookup(self, dotted: str) -> Any:
        """The raw (unresolved) node at ``dotted``; :class:`ConfigError` if there is none."""
        node: Any = self.tree
        for part in dotted.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ConfigError(f"{self.where}: interpolation refers to {dotted!r}, which is not in the file")
        return node

    def resolve(self, value: Any, key: str) -> Any:
        """``value`` (found at dotted ``key``) with every interpolation replaced, recursively."""
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{key}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return self._string(value, key)
        return value

    def _string(self, text: str, key: str) -> Any:
        start = text.find("${")
        end = _find_close(text, start)
        if end < 0:
            raise ConfigError(f"{self.where}: {key}: unbalanced interpolation in {text!r}")
        if start == 0 and end == len(text) - 1:
            return self._evaluate(text[2:-1], key)
        out, pos = [], 0
        while start >= 0:
            end = _find_close(text, start)
            if end < 0:
                raise ConfigError(f"{self.where}: {key}: unbalanced interpolation in {text!r}")
            out += [text[pos:start], str(self._evaluate(text[start + 2:end], key))]
            pos = end + 1
            start = text.find("${", pos)
        out.append(text[pos:])
        return "".join(out)

    def _evaluate(self, body: str, key: str) -> Any:
        head, sep, rest = body.partition(":")
        if sep and "${" not in head and head.strip().isidentifier():
            name = head.strip()
            if name not in _RESOLVERS:
                raise ConfigError(f"{self.where}: {key}: resolver {name!r} is not supported "
                                  f"(supported: {', '.join(sorted(_RESOLVERS))})")
            args = [self._argument(a, key) for a in _split_top(rest, ",")]
            try:
                return _RESOLVERS[name](*args)
            except (TypeError, ValueError, ZeroDivisionError) as exc:
                raise ConfigError(f"{self.where}: {key}: ${{{body}}} failed: {exc}") from exc
        ref = body.strip()
        if ref in self._active:
            raise ConfigError(f"{self.where}: {key}: circular interpolation through {ref!r}")
        self._active.append(ref)
        try:
            return self.resolve(self.lookup(ref), ref)
        finally:
            self._active.pop()

    def _argument(self, text: str, key: str) -> Any:
        text = text.strip()
        value = self._string(text, key) if "${" in text else text
        if isinstance(value, str):
            try:
                value = load_yaml(value)
            except yaml.YAMLError:
                pass
        return value
