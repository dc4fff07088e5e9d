"""Training metrics: JSON lines in ``<experiment>/metrics.jsonl`` and, if available, TensorBoard.

Only the main process writes. Every record is one JSON object with a ``"kind"`` (``"train"`` for the
periodic step records, ``"epoch"``, ``"val"``) and the global optimizer ``"step"``. On resume the file is
cut back to the checkpoint's step, so it reads like the log of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog"]

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Append records to ``metrics.jsonl`` (and TensorBoard scalars under ``tensorboard/``)."""

    def __init__(self, experiment_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(experiment_dir) / METRICS_FILE
        self.enabled = enabled
        self._writer: Any = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed: metrics go to %s only", self.path)
            else:
                self._writer = SummaryWriter(log_dir=str(Path(experiment_dir) / "tensorboard"), flush_secs=120)

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after ``step`` (written after the checkpoint a run resumes from)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash
                continue
            if int(record.get("step", 0)) <= step:
                kept.append(line)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        os.replace(tmp, self.path)

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        """One record; numeric values also become TensorBoard scalars ``<kind>/<key>``."""
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, **{k: _clean(v) for k, v in values.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
