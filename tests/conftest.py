"""Shared pytest setup: a recorder of the largest parity error per fixture scenario."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

PARITY_ERRORS: dict[str, dict[str, float]] = defaultdict(dict)


@pytest.fixture
def record_error():
    """``record_error(scenario, kind, value)`` keeps the largest value per (scenario, kind)."""

    def record(scenario: str, kind: str, value: float) -> None:
        current = PARITY_ERRORS[scenario].get(kind, 0.0)
        PARITY_ERRORS[scenario][kind] = max(current, float(value))

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not PARITY_ERRORS:
        return
    terminalreporter.section("largest parity error per fixture scenario")
    for scenario in sorted(PARITY_ERRORS):
        parts = ", ".join(f"{k} {v:.2e}" for k, v in sorted(PARITY_ERRORS[scenario].items()))
        terminalreporter.write_line(f"{scenario}: {parts}")
    path = os.environ.get("SAM2_PARITY_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(PARITY_ERRORS, f, indent=1, sort_keys=True)
