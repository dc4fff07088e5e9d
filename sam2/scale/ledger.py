"""Bookkeeping of a scale-out job, kept in ``<OUT>/.sam2-scale/``: what makes "nothing lost, nothing twice"
and resuming work.

- ``job.json``: the command and every setting that changes results (model, generator / VOS options). A
  re-run into the same output with other settings is refused (``--overwrite`` starts over), so one output
  never mixes results of two configurations.
- ``done/<key>.json``: written by a worker *after* the item's outputs are in place (one per input item,
  keyed by its name, replaced on a retry). An item is done exactly when its record exists: a worker killed
  before that point leaves the item to be redone, a retry of an item already recorded rewrites the same
  record, and the driver's merge reads one record per key, so nothing is counted twice.
- ``workers/<host>-<pid>.json``: one line per worker process that held a model (host, pid, start time),
  for finding a worker in the logs (or killing one to test recovery).

Failures (an unreadable image or video) are reported in ``<OUT>/failures.jsonl``, one JSON object per line
(``{"item": ..., "reason": ...}``), rewritten by every run (removed when a run has none): failed items are
not done, so the next run tries them again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from sam2.scale.paths import Location

LEDGER_DIR = ".sam2-scale"
FAILURES_FILE = "failures.jsonl"


class SettingsMismatch(ValueError):
    """The output holds results of a job with other settings."""


class InputError(ValueError):
    """The job's input cannot be listed (missing, empty); raised before any work."""


@dataclass(frozen=True)
class Failure:
    """An input item that could not be processed, and why."""

    item: str
    reason: str


@dataclass
class JobSummary:
    """What a job did: items processed now, items already done by an earlier run, failures."""

    total: int
    processed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every item is done, 1 when some failed (the others are written)."""
        return 1 if self.failures else 0


def _file_name(key: str) -> str:
    return quote(key, safe="") + ".json"


@dataclass(frozen=True)
class Ledger:
    """The ledger folder of one output location."""

    output: Location

    @property
    def root(self) -> Location:
        return self.output.child(LEDGER_DIR)

    def check_settings(self, settings: dict[str, Any], overwrite: bool) -> None:
        """Record ``settings`` for this output; with ``overwrite`` forget earlier results first.
        Raises :class:`SettingsMismatch` when earlier results were made with other settings."""
        job = self.root.child("job.json")
        if overwrite:
            self.root.remove()
        elif job.exists():
            before = json.loads(job.read_text())
            if before != json.loads(json.dumps(settings)):
                changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
                raise SettingsMismatch(
                    f"{self.output} holds results of an earlier job with other settings ({', '.join(changed)} "
                    f"differ); pass --overwrite to redo everything, or choose another output folder")
        self.root.mkdir()
        job.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")

    def done_keys(self) -> set[str]:
        """Keys of the items recorded as done (one listing of the folder)."""
        folder = self.root.child("done")
        if not folder.exists():
            return set()
        return {unquote(name[: -len(".json")]) for name in folder.names() if name.endswith(".json")}

    def mark_done(self, key: str, record: dict[str, Any]) -> None:
        """Record ``key`` as done with its result ``record`` (JSON-able); atomic replace."""
        self.root.child("done", _file_name(key)).write_text(json.dumps(record, allow_nan=False))

    def record(self, key: str) -> dict[str, Any]:
        return json.loads(self.root.child("done", _file_name(key)).read_text())

    def register_worker(self) -> None:
        """Note this worker process (host, pid, time) in ``workers/``."""
        host, pid = socket.gethostname(), os.getpid()
        info = {"host": host, "pid": pid, "started": time.time()}
        self.root.child("workers", f"{quote(host, safe='')}-{pid}.json").write_text(json.dumps(info) + "\n")

    def sweep_leftovers(self) -> None:
        """Remove what killed workers may have left in a local output: hidden staging folders
        (``.<name>.partial-*``) and temporary files (``.<name>.*.tmp``) of the folders jobs write into."""
        local = self.output.local
        if local is None:
            return
        for folder in (local, local / "overlays", local / LEDGER_DIR / "done"):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                name = entry.name
                if name.startswith(".") and (".partial-" in name or name.endswith(".tmp")):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)

    def write_failures(self, failures: list[Failure]) -> Location:
        """``<OUT>/failures.jsonl`` with one line per failure (removed when there is none)."""
        target = self.output.child(FAILURES_FILE)
        if not failures:
            target.remove()
        else:
            lines = [json.dumps({"item": f.item, "reason": f.reason}) for f in failures]
            target.write_text("\n".join(lines) + "\n")
        return target
