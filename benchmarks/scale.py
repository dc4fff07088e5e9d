"""Images per second of ``sam2 auto``: one process vs ``--ray`` with 1 and 2 workers, on this machine.

    python benchmarks/scale.py                                   # micro and tiny, 8 images, 8 points/side
    python benchmarks/scale.py --models sam2.1_hiera_t --images 16 --points-per-side 16 --json scale.json

Models get random weights (the run time does not depend on the values); the images are synthetic noise
pictures (640x480), written to a temporary folder. Every run goes through the command's own code path:
the single-process run as ``python -m sam2 auto`` in its own process, the ``--ray`` runs through
``sam2.cli.main.main`` in this process, where Ray is started once (``num_cpus`` = the machine's cores);
Ray's start-up is not counted, the worker processes' start-up and model loading are. Two figures per run:

- ``end-to-end``: images / wall time of the whole command (model loading, for Ray also starting the
  worker processes, the driver's merge);
- ``steady``: images per second once every worker is busy, from the write times of the overlays
  (``(n - k) / (t_last - t_k)``, ``k`` = number of workers).

Single process uses all cores for torch's threads; ``--ray --workers 1`` gives its worker every core;
``--workers 2`` gives each worker half of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import environment  # noqa: E402

log = logging.getLogger("benchmarks.scale")

CONFIGS = {"micro": "sam2/configs/micro/sam2.1_hiera_micro_128.yaml",
           "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml"}


def write_random_checkpoint(config: str, path: Path) -> None:
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    torch.save({"model": build_sam2(config, None, device="cpu").state_dict()}, path)


def write_images(folder: Path, count: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for k in range(count):
        base = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)  # smooth blobs: masks to find
        img = Image.fromarray(base).resize((640, 480), Image.BILINEAR)
        img.save(folder / f"img{k:03d}.jpg", quality=92)


def steady_rate(out: Path, workers: int) -> float:
    times = sorted(p.stat().st_mtime for p in (out / "overlays").iterdir())
    k = min(workers, len(times) - 1)
    span = times[-1] - times[k - 1] if k >= 1 else 0.0
    return (len(times) - k) / span if span > 0 else float("nan")


def run_once(mode: str, config: str, ckpt: Path, images: Path, out: Path, pps: int, cores: int) -> dict:
    from sam2.cli.main import main

    argv = ["auto", str(images), "-o", str(out), "-q", "--config", config, "--checkpoint", str(ckpt),
            "--device", "cpu", "--points-per-side", str(pps), "--pred-iou-thresh", "0",
            "--stability-score-thresh", "0"]
    workers = 1
    start = time.perf_counter()
    if mode == "single":  # its own process, as a user runs it (not beside this process's Ray driver threads)
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # torch uses every core
        code = subprocess.run([sys.executable, "-m", "sam2", *argv], env=env).returncode
    else:
        workers = int(mode.split("-")[1])
        argv += ["--ray", "--workers", str(workers), "--cpus-per-worker", str(max(1, cores // workers))]
        code = main(argv)
    wall = time.perf_counter() - start
    n = len(list((out / "overlays").iterdir()))
    return {"mode": mode, "exit": code, "images": n, "wall_s": round(wall, 2),
            "end_to_end_img_s": round(n / wall, 3), "steady_img_s": round(steady_rate(out, workers), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--points-per-side", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_images(root / "images", args.images)
        t0 = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        try:
            for name in args.models:
                ckpt = root / f"{name}.pt"
                write_random_checkpoint(CONFIGS[name], ckpt)
                for mode in ("single", "ray-1", "ray-2"):
                    row = run_once(mode, CONFIGS[name], ckpt, root / "images", root / f"out-{name}-{mode}",
                                   args.points_per_side, cores)
                    rows.append({"model": name, **row})
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            ray.shutdown()
    load = os.getloadavg()
    print(f"\nray.init: {ray_start:.1f} s (not counted); load average during the run: {load[0]:.1f}; "
          f"{cores} cores; {args.images} images 640x480, points per side {args.points_per_side}\n")
    print("| model | mode | wall s | end-to-end img/s | steady img/s |\n|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['mode']} | {r['wall_s']} | {r['end_to_end_img_s']} | {r['steady_img_s']} |")
    if args.json:
        args.json.write_text(json.dumps({"environment": environment(torch.device("cpu")), "ray_init_s": ray_start,
                                         "loadavg": load, "settings": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
