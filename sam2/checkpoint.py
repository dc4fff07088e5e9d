"""Loading official ``.pt`` checkpoints (``{"model": state_dict}``) strictly, with clear errors."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn

from sam2.config import PRESETS, TRUNKS
from sam2.registry import RELEASES

log = logging.getLogger(__name__)

# Keys that SAM 2.1 adds to SAM 2.
SAM21_ONLY_KEYS = frozenset({"no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias"})


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


def read_state_dict(ckpt_path: str | Path) -> dict[str, torch.Tensor]:
    """Read ``{"model": state_dict}`` (the official layout) with ``weights_only=True``."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}. Official checkpoints are on the Hugging Face Hub "
            f"(e.g. facebook/sam2.1-hiera-tiny, used by build_sam2_hf / from_pretrained) and at "
            f"{RELEASES[4].url.rsplit('/', 1)[0]}/<name>.pt")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}. "
                              "The file may be truncated or not a PyTorch checkpoint.") from exc
    state = obj.get("model") if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        found = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"checkpoint {path} has no 'model' state dict (official layout "
                              f"{{'model': state_dict}}); found {found}")
    not_tensors = [f"{k} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"checkpoint {path}: the 'model' state dict must map names to tensors; "
                              f"{_shown(not_tensors)} are not tensors")
    return state


def _shown(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _bad_values(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Weights that would load silently but are wrong: a non-floating tensor for a floating
    parameter (its values would be cast) and NaN / infinite values."""
    problems = []
    for key, expected in model.state_dict().items():
        value = state[key]
        if expected.is_floating_point() and not value.is_floating_point():
            problems.append(f"{key}: dtype {value.dtype} where the model holds {expected.dtype}")
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            problems.append(f"{key}: NaN or infinite values")
    return problems


def describe_state_dict(state: dict[str, torch.Tensor]) -> str | None:
    """Name of the official config the weights fit (e.g. ``configs/sam2/sam2_hiera_l.yaml``), if any."""
    patch = state.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None:
        return None
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    is21 = SAM21_ONLY_KEYS <= set(state)
    for size, trunk in TRUNKS.items():
        if trunk.embed_dim == patch.shape[0] and trunk.depth == len(blocks):
            preset = f"{'sam2.1' if is21 else 'sam2'}_hiera_{size}"
            return next(r.config for r in RELEASES if r.preset == preset) if preset in PRESETS else None
    return None


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str, config_name: str) -> None:
    """Strict load with an error that names missing/unexpected/mis-shaped keys and the fitting config."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or mis_shaped:
        lines = [f"checkpoint {source} does not fit config {config_name}:"]
        if set(missing) == SAM21_ONLY_KEYS and not unexpected and not mis_shaped:
            lines.append("it is a SAM 2.0 checkpoint but the config is SAM 2.1.")
        elif set(unexpected) == SAM21_ONLY_KEYS and not missing and not mis_shaped:
            lines.append("it is a SAM 2.1 checkpoint but the config is SAM 2.0.")
        fitting = describe_state_dict(state)
        if fitting:
            lines.append(f"The weights fit the official config {fitting!r}.")
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches", mis_shaped)):
            if keys:
                lines.append(f"{title}: {_shown(keys)}")
        raise CheckpointError("\n".join(lines))
    bad = _bad_values(model, state)
    if bad:
        raise CheckpointError(f"checkpoint {source} holds unusable weights (damaged or not a SAM 2 "
                              f"checkpoint): {_shown(bad)}")
    model.load_state_dict(state, strict=True)
    log.info("loaded checkpoint %s", source)


def load_checkpoint(model: nn.Module, ckpt_path: str | Path | None, config_name: str = "<config>") -> None:
    """Load ``ckpt_path`` into ``model`` strictly; ``None`` leaves the initial weights."""
    if ckpt_path is None:
        return
    load_into(model, read_state_dict(ckpt_path), str(ckpt_path), config_name)
