"""Training checkpoints: the official layout, written atomically, with everything resume needs.

A checkpoint is ``{"model": state_dict, "optimizer", "epoch", "steps": {"train", "val"}, "loss",
"time_elapsed", "best_meter_values"}`` as the official trainer writes it (``"model"`` loads strictly
into ``build_sam2``; LoRA adapters are merged into it), plus what the official one loses:
``"train_dataset"`` (the loader position of every rank), ``"rng"`` (Python, NumPy, torch CPU/CUDA and
the prompt generator of every rank), ``"batches_in_epoch"`` (mid-epoch position), ``"scaler"`` (fp16
only) and ``"lora"`` (the unmerged trainable tensors of a LoRA run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sam2.checkpoint import CheckpointError, load_into, read_state_dict

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "atomic_save", "atomic_text", "capture_rng", "epoch_checkpoint_name",
           "init_from_checkpoint", "preserved_rng", "read_training_checkpoint", "restore_rng"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("model", "optimizer", "epoch", "steps")


def epoch_checkpoint_name(epoch: int) -> str:
    """File kept every ``keep_every_epochs`` epochs (official ``checkpoint_<epoch>.pt``)."""
    return f"checkpoint_{epoch}.pt"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, fsync, then rename over ``path``.

    An interruption at any moment leaves either the old file or the new one, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_text(text: str, path: Path) -> None:
    """Write a small text file atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# ------------------------------------------------------------------------------------------------ RNG

def capture_rng(prompt_rng: Any = None) -> dict[str, Any]:
    """Every random generator of this process as plain Python data (read by ``torch.load(weights_only=True)``
    and sent between processes by ``all_gather_object``)."""
    version, py_state, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(py_state), gauss],
        "numpy": {"bit_generator": np_state["bit_generator"], "key": np_state["state"]["key"].tolist(),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "prompt": prompt_rng,
    }
    return state


def restore_rng(state: dict[str, Any]) -> Any:
    """Restore what :func:`capture_rng` captured; returns the prompt generator state for the model."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    np_state = state["numpy"]
    np.random.set_state({"bit_generator": np_state["bit_generator"],
                         "state": {"key": np.array(np_state["key"], dtype=np.uint32), "pos": np_state["pos"]},
                         "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]})
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
    return state.get("prompt")


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (validation, creating a data iterator) without disturbing this process's generators."""
    saved = capture_rng()
    try:
        yield
    finally:
        restore_rng(saved)


# ------------------------------------------------------------------------------------------------ files

def init_from_checkpoint(model: torch.nn.Module, path: str | Path, config_name: str) -> None:
    """Strictly load the ``"model"`` entry of ``path`` (official layout) into ``model``;
    :class:`~sam2.checkpoint.CheckpointError` naming the file and the keys when it does not fit."""
    load_into(model, read_state_dict(path), str(path), config_name)


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by this trainer, checked for the entries resume needs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from at {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(content, dict):
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint (a {type(content).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in content]
    if missing:
        raise CheckpointError(f"checkpoint {path} cannot be resumed: it lacks {missing} (an inference "
                              "checkpoint? use it as model.checkpoint / --checkpoint to start a new run)")
    return content
