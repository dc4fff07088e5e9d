"""One mapping of the official training YAML while it is being read: values are resolved (``${...}``)
when taken, and whatever is left untaken at :meth:`Node.finish` is an unknown key."""

from __future__ import annotations

from typing import Any

from sam2.config_yaml import ConfigError
from sam2.training.interpolation import Interpolator

__all__ = ["Node"]

_MISSING = object()


class Node:
    """Keys of one YAML mapping at dotted ``path`` in file ``where``."""

    def __init__(self, raw: Any, path: str, interp: Interpolator, where: str) -> None:
        self.path, self.interp, self.where = path, interp, where
        self._null = raw is None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: {path or 'the file'} must be a mapping, got {raw!r}")
        self.raw = dict(raw)

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw_is_null(self) -> bool:
        return self._null

    def has(self, key: str) -> bool:
        return key in self.raw

    def keys(self) -> list[str]:
        return [k for k in self.raw if k != "_target_"]

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """Take ``key`` with every interpolation resolved; ``default`` when absent (else an error)."""
        if key not in self.raw:
            if default is _MISSING:
                raise ConfigError(f"{self.where}: {self._key(key)} is missing")
            return default
        return self.interp.resolve(self.raw.pop(key), self._key(key))

    def node(self, key: str) -> Node:
        """Take ``key`` as a child mapping (a ``${...}`` reference to a mapping is followed)."""
        return Node(self.get(key), self._key(key), self.interp, self.where)

    def nodes(self, key: str) -> list[Node]:
        """Take ``key`` as a list of mappings."""
        value = self.get(key)
        if not isinstance(value, list):
            raise ConfigError(f"{self.where}: {self._key(key)} must be a list, got {value!r}")
        return [Node(v, f"{self._key(key)}[{i}]", self.interp, self.where) for i, v in enumerate(value)]

    def target(self, *allowed: str) -> str:
        """Take ``_target_``, which must be one of ``allowed``."""
        got = self.raw.pop("_target_", None)
        if got not in allowed:
            shown = " or ".join(repr(a) for a in allowed)
            raise ConfigError(f"{self.where}: {self._key('_target_')} is {got!r}; sam2-kit supports {shown} here")
        return got

    def ignore(self, *keys: str) -> None:
        """Accept ``keys`` without reading them (they only configure the official machinery)."""
        for key in keys:
            self.raw.pop(key, None)

    def resolve_rest(self) -> dict[str, Any]:
        """Take every remaining key, resolved."""
        return {key: self.get(key) for key in list(self.raw)}

    def finish(self) -> None:
        """:class:`ConfigError` naming the first key nobody took."""
        if self.raw:
            key = next(iter(self.raw))
            raise ConfigError(f"{self.where}: unknown key {self._key(key)}")
