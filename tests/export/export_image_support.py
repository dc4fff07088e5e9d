"""Shared setup of the image export tests: the package's 128-pixel micro model, exported once per session."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import torch

from sam2.build_sam import build_sam2
from sam2.cli.selfcheck import MICRO_CONFIG
from sam2.modeling.sam2_base import SAM2Base


@functools.cache
def micro_model() -> SAM2Base:
    """The 128-pixel micro model with seeded random weights (eval, CPU)."""
    torch.manual_seed(0)
    return build_sam2(str(MICRO_CONFIG), None, device="cpu", compile=False)


@functools.cache
def micro_export() -> Path:
    """Image graphs of :func:`micro_model` with fp16 and int8 variants (no video graphs), once per session."""
    from sam2.export.onnx_export import to_onnx

    root = Path(tempfile.mkdtemp(prefix="sam2-export-image-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return to_onnx(micro_model(), root / "micro", video=False, fp16=True, int8=True)


def copy_export(directory: Path) -> Path:
    """A private copy of :func:`micro_export` that a test may damage."""
    return Path(shutil.copytree(micro_export(), directory / "export"))
