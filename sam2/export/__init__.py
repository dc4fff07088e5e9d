"""ONNX export of SAM 2 and the ONNX Runtime predictors (optional extra ``sam2-kit[export]``).

Names are resolved lazily, so ``import sam2.export`` needs neither onnx nor PyTorch:
``to_onnx`` imports torch and onnx, the ``Onnx*Predictor`` classes only onnxruntime and NumPy.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "to_onnx": "sam2.export.onnx_export",
    "OnnxImagePredictor": "sam2.export.runtime_image",
    "OnnxVideoPredictor": "sam2.export.runtime_video",
    "read_manifest": "sam2.export.manifest",
    "ExportError": "sam2.export.errors",
    "ExportFormatError": "sam2.export.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sam2.export' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
