"""``sam2 eval``: results table, CSV file, usage errors (exit 2) and data errors (exit 1)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam2.cli.main import main
from sam2.utils.png_masks import save_ann_png

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """Two 20x20 DAVIS videos; per-frame J and F of object 1 are (1, 1), (0, 1), (0, 0.5)."""
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    for video in ("alpha", "beta"):
        for root in (gt_root, pred_root):
            (root / video).mkdir(parents=True)
        for t, shift in enumerate([0, 0, 1, 2, 0]):
            gt, pred = np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)
            gt[4, 4] = 1
            pred[4, 4 + shift] = 1
            save_ann_png(gt_root / video / f"{t:05d}.png", gt)
            save_ann_png(pred_root / video / f"{t:05d}.png", pred if video == "alpha" else gt)  # beta: perfect
    return gt_root, pred_root


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_subprocess_writes_table_and_default_csv(roots):
    gt_root, pred_root = roots
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "sam2", "eval", "--gt-root", str(gt_root),
                           "--pred_root", str(pred_root), "-n", "2"],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    j, f = 100 / 3 / 2 + 50, (100 * 2.5 / 3) / 2 + 50  # mean of alpha (J 33.3, F 83.3) and beta (100, 100)
    assert f"Global score: J&F: {(j + f) / 2:.1f} J: {j:.1f} F: {f:.1f}" in proc.stdout
    assert "alpha" in proc.stdout and "beta" in proc.stdout
    rows = read_rows(pred_root / "results.csv")
    assert [(r["level"], r["sequence"], r["obj"]) for r in rows] == [
        ("overall", "Global score", ""), ("video", "alpha", ""), ("object", "alpha", "001"),
        ("video", "beta", ""), ("object", "beta", "001")]
    assert float(rows[0]["J"]) == pytest.approx(j, abs=1e-4)
    assert float(rows[0]["F"]) == pytest.approx(f, abs=1e-4)
    assert float(rows[2]["J&F"]) == pytest.approx((100 / 3 + 250 / 3) / 2, abs=1e-4)
    assert float(rows[4]["J&F"]) == 100.0


def test_output_options(roots, tmp_path, capsys):
    gt_root, pred_root = roots
    out = tmp_path / "scores.csv"
    assert main(["eval", "--gt-root", str(gt_root), "--pred-root", str(pred_root), "-n", "1", "-q",
                 "--output-csv", str(out)]) == 0
    assert capsys.readouterr().out.startswith("Global score: J&F:")
    assert len(read_rows(out)) == 5 and not (pred_root / "results.csv").exists()
    assert main(["eval", "--gt-root", str(gt_root), "--pred-root", str(pred_root), "-n", "1", "-q",
                 "--no-csv", "--do-not-skip-first-and-last-frame"]) == 0
    assert not (pred_root / "results.csv").exists()


@pytest.mark.parametrize("args,named", [
    (["--gt-root", "{tmp}/nowhere"], "--gt-root"),
    (["-n", "0"], "-n/--num-processes"),
    (["--output-csv", "{tmp}/no/such/dir/out.csv"], "--output-csv"),
    (["--output-csv", "{tmp}"], "--output-csv"),
    (["--no-csv", "--output-csv", "{tmp}/x.csv"], "--output-csv"),
])
def test_usage_errors_exit_2_without_output(roots, tmp_path, capsys, args, named):
    gt_root, pred_root = roots
    argv = ["eval", "--gt-root", str(gt_root), "--pred-root", str(pred_root)]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert named in capsys.readouterr().err
    assert not (pred_root / "results.csv").exists() and not (tmp_path / "x.csv").exists()


def test_data_errors_exit_1_without_output(roots, caplog):
    gt_root, pred_root = roots
    (pred_root / "beta" / "00002.png").unlink()
    assert main(["eval", "--gt-root", str(gt_root), "--pred-root", str(pred_root), "-q"]) == 1
    assert "beta/00002.png" in caplog.text
    assert not (pred_root / "results.csv").exists()
    (pred_root / "beta" / "00002.png").write_text("garbage")
    assert main(["eval", "--gt-root", str(gt_root), "--pred-root", str(pred_root), "-q", "-n", "2"]) == 1
    assert "cannot read mask PNG" in caplog.text
    (pred_root / "gamma").mkdir()
    assert main(["eval", "--gt-root", str(gt_root), "--pred-root", str(pred_root), "-q", "--strict"]) == 1
    assert "gamma" in caplog.text
    assert not (pred_root / "results.csv").exists()
