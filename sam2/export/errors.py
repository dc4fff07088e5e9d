"""Errors of the ONNX export and its runtime, each naming the file or argument at fault."""

from __future__ import annotations


class ExportError(Exception):
    """Exporting failed before anything was written (bad model, checkpoint or output path)."""


class ExportFormatError(ExportError):
    """An export folder cannot be used: missing or unreadable manifest, another format version, another
    sam2-kit version, another model than expected, or a missing graph file."""
