"""``sam2 selfcheck``: passes offline without the reference data; a failing step gives exit status 1."""

from __future__ import annotations

import re

from sam2.cli import selfcheck
from sam2.cli.main import main
from tests.cli.conftest import run_cli

STEPS = ["build", "checkpoint", "image", "automatic", "video", "command line"]


def test_selfcheck_passes_offline(tmp_path, offline_env):
    env = {**offline_env, "SAM2_REFERENCE_DIR": str(tmp_path / "no_reference")}
    proc = run_cli("selfcheck", "--device", "cpu", "-q", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [re.match(r"PASS  (.+?)\s+\d+\.\d\d s", line).group(1) for line in lines[:-1]] == STEPS
    assert re.fullmatch(r"selfcheck: all passed in \d+\.\d s \(torch device cpu\)", lines[-1])
    assert "propagate" not in proc.stderr  # -q hides the progress bars


def test_a_failing_step_is_reported_and_gives_exit_1(monkeypatch, capsys):
    def broken(self):
        raise ValueError("simulated breakage")

    monkeypatch.setattr(selfcheck.Checker, "build", broken)
    assert main(["selfcheck", "--device", "cpu", "-q"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"FAIL  build\s+\d+\.\d\d s  ValueError: simulated breakage", out[0])
    assert [line.split()[0] for line in out[1:-1]] == ["SKIP"] * (len(STEPS) - 1)
    assert out[-1].startswith(f"selfcheck: {len(STEPS)} of {len(STEPS)} FAILED")
