"""One progress bar for a whole scale-out job (items done / total, items per second), with Ray Data's own
bars and execution logs turned off so that they do not interleave with it."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def quiet_ray_data() -> None:
    """Turn off Ray Data's progress bars and per-run log lines (the job's own bar replaces them)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    for name in ("enable_progress_bars", "enable_operator_progress_bars", "enable_auto_log_stats",
                 "print_on_execution_start", "verbose_stats_logs", "enable_rich_progress_bars"):
        if hasattr(ctx, name):
            setattr(ctx, name, False)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # "progress bars disabled" and run statistics


class JobProgress:
    """A tqdm bar over the items of a job; items already done by an earlier run count from the start."""

    def __init__(self, total: int, done: int, unit: str, quiet: bool) -> None:
        from tqdm import tqdm

        self._bar: Any = tqdm(total=total, initial=done, unit=unit, desc=f"{unit}s", disable=quiet,
                              dynamic_ncols=True, smoothing=0.1)
        self.failed = 0

    def advance(self, failed: bool = False) -> None:
        if failed:
            self.failed += 1
            self._bar.set_postfix_str(f"{self.failed} failed", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
