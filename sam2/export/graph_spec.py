"""Descriptions of the ONNX graphs in an export folder, shared by the exporter and the runtime predictors.

An export folder holds one ``.onnx`` file per graph, ``constants.npz`` (small tensors the Python runtime
layer needs, keyed by their state-dict names) and ``manifest.json``; every graph is described there by a
:class:`GraphSpec`. Dimension entries are ints for fixed sizes and strings for dynamic ones
(``"num_points"``, ``"num_memories"``...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, shape (ints or dynamic-axis names) and numpy dtype name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=str(data["name"]), shape=tuple(data["shape"]), dtype=str(data["dtype"]))


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph of an export: its role (e.g. ``"image_encoder"``), file name, inputs and outputs."""

    role: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GraphSpec:
        return cls(
            role=str(data["role"]),
            file=str(data["file"]),
            inputs=tuple(TensorSpec.from_json(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in data["outputs"]),
            notes=dict(data.get("notes", {})),
        )
