"""``manifest.json`` of an export folder: what was exported, from which weights, by which version.

The runtime reads it before opening any graph and refuses a folder made by another format or
sam2-kit version, for another model than the caller expects, or whose graph files were swapped or
damaged (each file's SHA-256 is recorded). NumPy and the standard library only (no PyTorch).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sam2 import __version__
from sam2.export.errors import ExportFormatError
from sam2.export.graph_spec import GraphSpec

FORMAT = "sam2-kit-onnx"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
CONSTANTS_FILE = "constants.npz"


@dataclass
class Manifest:
    """The parsed ``manifest.json``. ``config`` is the model's typed config as a dict; ``fingerprint``
    the SHA-256 of config + weights; ``files`` maps every file of the folder to its SHA-256;
    ``variants`` maps a precision (``"fp16"``, ``"int8"``) to ``{role: file}``."""

    model_name: str
    image_size: int
    opset: int
    exporter: str
    fingerprint: str
    config: dict[str, Any]
    graphs: list[GraphSpec]
    files: dict[str, str] = field(default_factory=dict)
    variants: dict[str, dict[str, str]] = field(default_factory=dict)
    sam2_kit_version: str = __version__

    def graph(self, role: str) -> GraphSpec:
        """The graph with this role; :class:`ExportFormatError` if the export has none."""
        for spec in self.graphs:
            if spec.role == role:
                return spec
        roles = ", ".join(g.role for g in self.graphs)
        raise ExportFormatError(f"this export has no {role!r} graph (it has: {roles}); was it exported "
                                "with --no-video?")

    def graph_file(self, role: str, precision: str = "fp32") -> str:
        """File name of ``role`` in ``precision`` (``fp32``, or a variant written at export time)."""
        if precision == "fp32":
            return self.graph(role).file
        if precision not in self.variants:
            have = ", ".join(["fp32", *self.variants]) or "fp32"
            raise ExportFormatError(f"this export has no {precision!r} variant (it has: {have}); export it "
                                    f"with --{precision}")
        return self.variants[precision][role]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "sam2_kit_version": self.sam2_kit_version,
                "model_name": self.model_name, "image_size": self.image_size, "opset": self.opset,
                "exporter": self.exporter, "fingerprint": self.fingerprint, "config": self.config,
                "graphs": [g.to_json() for g in self.graphs], "files": self.files, "variants": self.variants}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(model_name=str(data["model_name"]), image_size=int(data["image_size"]), opset=int(data["opset"]),
                   exporter=str(data["exporter"]), fingerprint=str(data["fingerprint"]), config=dict(data["config"]),
                   graphs=[GraphSpec.from_json(g) for g in data["graphs"]], files=dict(data.get("files", {})),
                   variants=dict(data.get("variants", {})), sam2_kit_version=str(data["sam2_kit_version"]))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Record the SHA-256 of every file already in ``folder`` and write ``manifest.json``."""
    folder = Path(folder)
    manifest.files = {p.name: file_sha256(p) for p in sorted(folder.iterdir())
                      if p.is_file() and p.name != MANIFEST_FILE}
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return path


def _check_header(data: dict[str, Any], path: Path, check_version: bool) -> None:
    if data.get("format") != FORMAT:
        raise ExportFormatError(f"{path} is not a sam2-kit ONNX export manifest (format {data.get('format')!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise ExportFormatError(f"{path} has format version {data.get('format_version')!r}; this sam2-kit "
                                f"({__version__}) reads version {FORMAT_VERSION}: export the model again")
    if check_version and data.get("sam2_kit_version") != __version__:
        raise ExportFormatError(f"{path} was exported by sam2-kit {data.get('sam2_kit_version')!r}, this is "
                                f"{__version__}: export the model again (or pass check_version=False)")


def read_manifest(folder: str | Path, expect_model: str | None = None, check_version: bool = True,
                  verify_files: bool = True) -> Manifest:
    """Read and check ``folder/manifest.json``.

    Raises :class:`ExportFormatError` naming the problem: no folder or manifest, another format or
    sam2-kit version, ``expect_model`` differing from the exported model, a listed file missing or
    (with ``verify_files``) changed since the export.
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ExportFormatError(f"export folder {folder} does not exist or is not a folder")
    if not path.is_file():
        raise ExportFormatError(f"{folder} has no {MANIFEST_FILE}: not an export made by `sam2 export onnx`")
    try:
        data = json.loads(path.read_text())
        _check_header(data, path, check_version)
        manifest = Manifest.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportFormatError(f"{path} is damaged or incomplete: {exc}") from exc
    if expect_model is not None and manifest.model_name != expect_model:
        raise ExportFormatError(f"{folder} holds an export of {manifest.model_name!r}, not {expect_model!r}")
    for name, digest in manifest.files.items():
        file = folder / name
        if not file.is_file():
            raise ExportFormatError(f"{file} is listed in {path} but missing")
        if verify_files and file_sha256(file) != digest:
            raise ExportFormatError(f"{file} differs from the file exported with this manifest (another "
                                    "export's file or a damaged copy)")
    return manifest


def load_constants(folder: str | Path) -> dict[str, np.ndarray]:
    """The small tensors of ``constants.npz`` keyed by their state-dict names."""
    with np.load(Path(folder) / CONSTANTS_FILE) as data:
        return {k: data[k] for k in data.files}
