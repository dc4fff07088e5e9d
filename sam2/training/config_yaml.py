"""Training config files: our YAML (the :class:`TrainConfig` dataclasses as nested keys) and the
official training schema (see :mod:`sam2.training.official_yaml`), told apart by their top-level keys.

``load_train_config("my.yaml")`` reads either; a name without a path (``sam2.1_hiera_b+_MOSE_finetune``)
is one of the presets shipped in ``sam2/configs/training/``. ``dump_train_config`` writes our schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sam2.config_yaml import ConfigError
from sam2.training.config import TrainConfig
from sam2.training.interpolation import load_yaml
from sam2.training.official_yaml import is_official_tree, train_config_from_official
from sam2.training.typed_tree import from_tree, replace_path, to_tree

__all__ = ["PRESET_DIR", "apply_settings", "dump_train_config", "load_train_config", "parse_setting",
           "preset_names", "train_config_from_tree"]

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "training"


def preset_names() -> list[str]:
    """Names of the training presets shipped with the package."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _locate(config: str | Path) -> Path:
    path = Path(config).expanduser()
    if path.is_file():
        return path
    name = str(config).removesuffix(".yaml")
    preset = PRESET_DIR / f"{name}.yaml"
    if "/" not in name and preset.is_file():
        return preset
    raise ConfigError(f"training config {str(config)!r} is neither an existing YAML file nor a preset "
                      f"({', '.join(preset_names())})")


def train_config_from_tree(tree: Any, where: str = "<config>") -> TrainConfig:
    """A :class:`TrainConfig` from a parsed file in our schema or the official one."""
    if is_official_tree(tree):
        return train_config_from_official(tree, where)
    if tree is None:
        tree = {}
    try:
        return from_tree(TrainConfig, tree, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_train_config(config: str | Path) -> TrainConfig:
    """Read a training config file (either schema) or a shipped preset by name."""
    path = _locate(config)
    try:
        tree = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return train_config_from_tree(tree, str(path))


def dump_train_config(cfg: TrainConfig) -> str:
    """YAML text of ``cfg`` in our schema (``load_train_config`` reads it back to an equal config)."""
    return yaml.safe_dump(to_tree(cfg), sort_keys=False, default_flow_style=None, width=110)


def parse_setting(text: str) -> tuple[str, Any]:
    """``"section.key=value"`` -> (dotted key, value parsed as YAML); :class:`ConfigError` if malformed."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{text!r} is not of the form section.key=value (e.g. optim.base_lr=1e-5)")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{text!r}: cannot parse the value: {exc}") from None
    return key, value


def apply_settings(cfg: TrainConfig, settings: list[tuple[str, Any]]) -> TrainConfig:
    """``cfg`` with each ``(dotted key, value)`` applied in order (later ones win)."""
    for key, value in settings:
        cfg = replace_path(cfg, key, value)
    return cfg
