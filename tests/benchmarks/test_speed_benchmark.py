"""benchmarks/speed.py: its refusals, the machine peak, the nms stand-in, and a real workload run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import official as sides  # noqa: E402
import speed  # noqa: E402
import torchvision_shim  # noqa: E402
from machine import machine_peak  # noqa: E402

MICRO = "sam2.1_hiera_micro"
needs_reference = pytest.mark.skipif(not speed.manifest_path(MICRO).exists(),
                                     reason=f"reference data not found at {speed.REFERENCE}")


def test_bf16_on_cpu_is_refused_with_the_reason(capsys):
    with pytest.raises(SystemExit):
        speed.parse_args(["--bf16"])
    err = capsys.readouterr().err
    assert "--bf16 is CUDA-only" in err and "AVX-512" in err


def test_unknown_workload_filter_is_refused(capsys):
    with pytest.raises(SystemExit):
        speed.parse_args(["--only", "nothing-like-this"])
    assert "no workload matches" in capsys.readouterr().err


def test_missing_official_interpreter_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        speed.parse_args(["--official", "--official-python", str(tmp_path / "python")])
    assert str(tmp_path / "python") in capsys.readouterr().err


def test_machine_peak_reports_both_dtypes():
    peak = machine_peak("cpu", fp32_size=128, bf16_size=32, repeats=2)
    assert peak["fp32_gflops"] > 0 and peak["bf16_gflops"] > 0
    assert (peak["fp32_size"], peak["bf16_size"], peak["threads"]) == (128, 32, torch.get_num_threads())


def _greedy_nms_reference(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
        return inter / (area - inter)

    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda j: -float(scores[j])):
        if all(iou(boxes[i].tolist(), boxes[j].tolist()) <= thr for j in kept):
            kept.append(i)
    return kept


def test_nms_stand_in_matches_greedy_suppression():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(60, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(60, 2, generator=gen) * 20], dim=1)
    scores = torch.rand(60, generator=gen)
    kept = torchvision_shim.nms(boxes, scores, 0.5).tolist()
    assert kept == _greedy_nms_reference(boxes, scores, 0.5)
    assert torchvision_shim.nms(boxes[:0], scores[:0], 0.5).numel() == 0


def test_table_shows_ratio_and_fraction_of_peak():
    rows = [{"workload": "set_image t", "ours": {"median_ms": 500.0, "gflop": 100.0},
             "official": {"median_ms": 750.0}}]
    table = speed.format_table(rows, peak_gflops=400.0, others=["official"])
    assert "| set_image t | 500.0 | 750.0 | 1.50x | 100.0 | 200.0 | 50% |" in table


@needs_reference
def test_workloads_run_in_a_fresh_process_on_the_micro_model(tmp_path):
    speed.write_inputs(tmp_path, {MICRO}, frames=2)
    side = sides.ours(threads=1, compile_=False)
    base = {"config": str(speed.REFERENCE / "configs" / "micro" / f"{MICRO}.yaml"),
            "checkpoint": str(tmp_path / f"{MICRO}.pt"), "device": "cpu", "threads": 1, "repeats": 2,
            "warmup": 1, "bf16": False, "vos_optimized": False, "count_flops": True}
    predict = side.run(tmp_path, base | {"workload": "predict"})
    assert len(predict["times_ms"]) == 2 and predict["gflop"] > 0
    assert Path(predict["sam2_file"]) == speed.REPO / "sam2"
    video = side.run(tmp_path, base | {"workload": "video", "objects": 2, "repeats": 1})
    assert len(video["times_ms"]) == 1 and video["gflop"] > 0  # frame 1 of 0..1
    assert np.load(tmp_path / "image.npy").shape == (1024, 1024, 3)


def test_a_failing_process_is_reported_with_its_side_and_workload(tmp_path):
    side = sides.Side("official", Path("/bin/false"), {}, tmp_path)
    with pytest.raises(sides.SideError, match="official video failed"):
        side.run(tmp_path, {"workload": "video"})
