"""Fine-tuning that visibly learns, on a CPU in minutes: moving shapes, the micro model, J&F before/after.

    python examples/finetune_shapes.py                       # into a temporary folder
    python examples/finetune_shapes.py --workdir shapes_run --epochs 30 --threads 2

1. generate a moving-shapes dataset in the DAVIS layout (train and val splits, ``sam2.training.shapes``);
2. make the starting weights: the package's micro model (``sam2/configs/micro/sam2.1_hiera_micro_128.yaml``,
   Hiera embed_dim 16, 128 px) with PyTorch's random initialisation (seed 0);
3. J&F before: track every validation video from its first-frame masks with the video predictor and score
   it with ``sam2.eval`` (the semi-supervised VOS protocol of ``sam2 vos`` + ``sam2 eval``);
4. fine-tune with ``sam2 train`` (the ``sam2.1_hiera_micro_cpu`` preset: the official prompt simulation with
   clicks, boxes, masks and correction clicks, the official loss, AdamW) for ``--epochs`` epochs;
5. J&F after, on the trained checkpoint, exactly as in 3.

Every step is an ordinary command or function of the package; the training command is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.cli.selfcheck import MICRO_CONFIG
from sam2.eval import evaluate
from sam2.eval.vos import list_videos, vos_inference
from sam2.training.shapes import ShapesConfig, ShapesDataset, generate_shapes_dataset

log = logging.getLogger("finetune_shapes")

DATA = ShapesConfig(train_videos=16, val_videos=4, num_frames=10, height=128, width=128, objects=(2, 3), seed=0)


def initial_checkpoint(path: Path, seed: int = 0) -> Path:
    """The micro model with PyTorch's random initialisation, saved as ``{"model": state_dict}``."""
    torch.manual_seed(seed)
    model = build_sam2(str(MICRO_CONFIG), None, device="cpu")
    torch.save({"model": model.state_dict()}, path)
    return path


def vos_jf(checkpoint: Path, data: ShapesDataset, out_dir: Path) -> dict[str, float]:
    """J&F (percent) of ``checkpoint`` on the validation split, prompted with the first-frame masks."""
    predictor = build_sam2_video_predictor(str(MICRO_CONFIG), str(checkpoint), device="cpu")
    videos = list_videos(data.val.img_folder)
    with torch.inference_mode():
        for video in videos:
            vos_inference(predictor, data.val.img_folder, data.val.gt_folder, out_dir, video)
    result = evaluate(data.val.gt_folder, out_dir, num_processes=1, videos=videos)
    return {"J&F": float(result.jf), "J": float(result.j), "F": float(result.f)}


def train_command(data: ShapesDataset, init: Path, out: Path, epochs: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "sam2", "train", "--config", "sam2.1_hiera_micro_cpu", "--checkpoint", str(init),
            "--img-folder", str(data.train.img_folder), "--gt-folder", str(data.train.gt_folder),
            "--output-dir", str(out), "--epochs", str(epochs), "--device", "cpu", "-q", *extra]


def _train_metrics(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [m for m in map(json.loads, lines) if m["kind"] == "train"]


def run(minutes: float | None = None, workdir: str | os.PathLike | None = None, threads: int | None = None,
        epochs: int = 30, extra: list[str] | None = None) -> dict:
    """The whole example; returns J&F before/after, steps and seconds. ``minutes`` caps the training
    time (the run is stopped with SIGTERM after that and keeps its last checkpoint)."""
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="sam2-shapes-")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    data = generate_shapes_dataset(work / "data", DATA)
    init = initial_checkpoint(work / "init.pt")
    before = vos_jf(init, data, work / "pred_before")
    log.info("J&F before fine-tuning: %.1f", before["J&F"])

    out = work / "run"
    cmd = train_command(data, init, out, epochs, list(extra or []))
    log.info("training: %s", shlex.join(cmd))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start, cpu_start = time.monotonic(), os.times()
    proc = subprocess.Popen(cmd, env=env)
    try:
        proc.wait(timeout=None if minutes is None else minutes * 60)
    except subprocess.TimeoutExpired:
        proc.terminate()  # sam2 train stops after the current step and writes its checkpoint
        proc.wait()
    seconds = time.monotonic() - start
    cpu = os.times()
    cpu_seconds = (cpu.children_user - cpu_start.children_user) + (cpu.children_system - cpu_start.children_system)
    checkpoint = out / "checkpoints" / "checkpoint.pt"
    stopped = proc.returncode in (143, -signal.SIGTERM)
    if proc.returncode != 0 and not stopped:
        raise RuntimeError(f"training failed with exit status {proc.returncode}: {shlex.join(cmd)}")
    if not checkpoint.is_file():
        raise RuntimeError(f"training was stopped after {minutes} minutes, before its first checkpoint; "
                           "allow more --minutes")
    after = vos_jf(checkpoint, data, work / "pred_after")
    metrics = _train_metrics(out)
    result = {"jf_before": before["J&F"], "jf_after": after["J&F"], "before": before, "after": after,
              "steps": int(torch.load(checkpoint, map_location="cpu", weights_only=False)["steps"]["train"]), "train_seconds": seconds,
              "train_cpu_seconds": cpu_seconds, "threads": threads, "stopped_early": stopped,
              "first_loss": metrics[0]["core_loss"] if metrics else None,
              "last_loss": metrics[-1]["core_loss"] if metrics else None,
              "command": shlex.join(cmd), "workdir": str(work)}
    (work / "result.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", help="folder for data, checkpoints and predictions (default: a temporary one)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (8 steps each; default 30)")
    p.add_argument("--minutes", type=float, default=None, help="stop training after this many minutes")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("extra", nargs="*", help="more `sam2 train` options, after --")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    r = run(args.minutes, args.workdir, args.threads, args.epochs, args.extra)
    print(f"validation J&F before: {r['before']['J&F']:.1f} (J {r['before']['J']:.1f}, F {r['before']['F']:.1f})")
    print(f"validation J&F after:  {r['after']['J&F']:.1f} (J {r['after']['J']:.1f}, F {r['after']['F']:.1f})")
    print(f"{r['steps']} steps in {r['train_seconds']:.0f} s ({r['train_cpu_seconds']:.0f} CPU s, "
          f"{r['threads']} threads); loss {r['first_loss']:.1f} -> {r['last_loss']:.2f}; files in {r['workdir']}")


if __name__ == "__main__":
    main()
