"""The part of a scale-out job shared by ``auto`` and ``vos``: settle what is to do from the ledger, run
it on the workers with one progress bar, collect results and failures; and the per-batch loop of a
worker that turns one item's exception into a failure row instead of stopping the job."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sam2.scale.ledger import Failure, JobSummary, Ledger
from sam2.scale.progress import JobProgress
from sam2.scale.ray_runtime import ScaleOptions, map_items, ray_runtime

log = logging.getLogger(__name__)


def execute(items: list[dict[str, str]], worker_cls: type, job: Any, ledger: Ledger, settings: dict[str, Any],
            options: ScaleOptions, unit: str) -> tuple[JobSummary, dict[str, dict[str, Any]]]:
    """Run the items (rows with a unique ``key``) that the ledger does not hold yet.

    Returns the summary and ``{key: record}`` of the items done by this run (one per key however many
    times Ray retried it). Raises :class:`~sam2.scale.ledger.SettingsMismatch` (nothing run) when the
    output holds an earlier job with other settings and ``options.overwrite`` is off."""
    ledger.check_settings(settings, options.overwrite)
    done = ledger.done_keys()
    todo = [item for item in items if item["key"] not in done]
    summary = JobSummary(total=len(items), skipped=len(items) - len(todo))
    if summary.skipped:
        log.warning("skipping %d %s(s) done by an earlier run into %s (--overwrite redoes them)",
                    summary.skipped, unit, ledger.output)
    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    if todo:
        start = time.perf_counter()
        bar = JobProgress(len(items), summary.skipped, unit, options.quiet)
        try:
            with ray_runtime(options):
                for row in map_items(todo, worker_cls, job, options):
                    key = str(row["key"])
                    if key in results or key in failed:
                        continue  # a retried batch reported again: counted once
                    if row["error"]:
                        failed[key] = str(row["error"])
                        log.error("%s %s failed: %s", unit, key, row["error"])
                    else:
                        results[key] = json.loads(str(row["record"]))
                    bar.advance(failed=bool(row["error"]))
        finally:
            bar.close()
            ledger.sweep_leftovers()
        log.info("%d %s(s) in %.1f s", len(todo), unit, time.perf_counter() - start)
    summary.processed = len(results)
    summary.failures = [Failure(item["key"], failed[item["key"]]) for item in items if item["key"] in failed]
    ledger.write_failures(summary.failures)
    return summary, results


def run_batch(ledger: Ledger, batch: dict[str, np.ndarray], process: Callable[[dict[str, str]], dict[str, Any]]
              ) -> dict[str, list[str]]:
    """Worker side: ``process`` each row of ``batch`` (its outputs written, a JSON-able record returned),
    record it as done in the ledger, and return the result rows (``key``, ``record`` JSON, ``error``).

    An exception from one item (unreadable input, ...) becomes that row's ``error`` and the batch goes on."""
    columns = list(batch)
    keys = [str(k) for k in batch["key"]]
    out: dict[str, list[str]] = {"key": keys, "record": [], "error": []}
    for i, key in enumerate(keys):
        row = {name: str(batch[name][i]) for name in columns}
        try:
            record = process(row)
        except Exception as exc:  # any failure of one input is reported, not raised
            log.warning("%s: %s", key, exc)
            out["record"].append("")
            out["error"].append(f"{type(exc).__name__}: {exc}".strip())
            continue
        ledger.mark_done(key, record)
        out["record"].append(json.dumps(record, allow_nan=False))
        out["error"].append("")
    return out


def set_worker_threads(cpus: float) -> None:
    """Torch threads of a worker: the CPUs it was given (at least 1)."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))
