"""Automatic mask generation (``sam2 auto``), our code against the official ``sam2`` side by side.

    python benchmarks/amg.py                       # per-stage times, ours then official, one round
    python benchmarks/amg.py --rounds 2 --keep-all # every candidate kept: the most post-processing
    python benchmarks/amg.py --mode generate --points-per-side 32   # the default generate(), end to end
    python benchmarks/amg.py --no-official         # ours only

Both sides load the same synthesized checkpoint (``tests/reference.py``'s weights, written once to
``--workdir``) and segment the same image, each in a fresh process of its own interpreter
(``benchmarks/official.py``): ours from this checkout, the official one from ``--official-python``. The
sides alternate (ours, official, ours, ...) for ``--rounds`` rounds, and medians are reported, because
the machine may be shared. See ``amg_worker.py`` for what each stage contains. ``--json FILE`` keeps every
run. :func:`make_image` and :func:`run_side` are what ``speed.py`` may call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import official  # noqa: E402  (benchmarks/official.py)
from machine import environment  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "amg_worker.py"
TRUCK = Path("/work/shared/reference/fixtures/inputs/images/truck.jpg")


def make_image(width: int = 1500, height: int = 1000, seed: int = 0, source: Path | None = TRUCK) -> np.ndarray:
    """``(height, width, 3)`` uint8 RGB: ``source`` resized (bicubic) when it exists, else random filled
    rectangles and ellipses on a gradient (objects with edges, unlike noise)."""
    from PIL import Image, ImageDraw

    if source is not None and Path(source).exists():
        return np.asarray(Image.open(source).convert("RGB").resize((width, height), Image.BICUBIC))
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    canvas = Image.fromarray(np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(24):
        x0, y0 = rng.integers(0, width - 20), rng.integers(0, height - 20)
        x1, y1 = x0 + rng.integers(20, width // 3), y0 + rng.integers(20, height // 3)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([int(x0), int(y0), int(x1), int(y1)], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return np.asarray(canvas)


def run_side(side: official.Side, spec: dict, workdir: Path, timeout_s: float | None = None) -> dict:
    """Run one worker spec on ``side`` (a ``benchmarks/official.py`` Side); returns its result dict."""
    spec_path = workdir / f"amg_spec_{side.name}.json"
    spec_path.write_text(json.dumps(spec | {"torchvision_shim": side.torchvision_shim}))
    proc = subprocess.run([str(side.python), str(WORKER), str(spec_path)], cwd=side.cwd, env=side.env,
                          capture_output=True, text=True, timeout=timeout_s)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise official.SideError(f"{side.name} amg failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def synthesized_checkpoint(workdir: Path, model: str) -> Path:
    """The reference's synthesized weights for ``model`` (seed 0), written once."""
    path = workdir / f"{model}_seed0.pt"
    if not path.exists():
        sys.path.insert(0, str(REPO))
        from tests import reference

        reference.write_checkpoint(path, model)
    return path


def _estimate(stage: dict, points_per_side: int, points_per_batch: int) -> float:
    """Default-grid time from the stages: encoder + batches x (decoder + post-processing) + NMS."""
    batches = -(-points_per_side**2 // points_per_batch)
    return stage["set_image_s"] + batches * (stage["decoder_s"] + stage["postprocess_s"]) + stage["nms_s"]


def _table(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    sides = list(results)
    if args.mode == "generate":
        rows = [f"| {s} | {statistics.median(r['generate_s'] for r in results[s]):.1f} | "
                f"{results[s][-1]['masks']} |" for s in sides]
        return "| side | generate s (median) | masks |\n|---|---:|---:|\n" + "\n".join(rows)
    keys = ("set_image_s", "decoder_s", "postprocess_s", "nms_s")
    lines = ["| side | set_image s | decoder s / batch | post-processing s / batch | NMS s | candidates -> "
             "IoU pass -> kept | est. default generate s |", "|---|---:|---:|---:|---:|---|---:|"]
    for s in sides:
        med = {k: statistics.median(r[k] for r in results[s]) for k in keys}
        last = results[s][-1]
        est = _estimate(med, 32, args.points_per_batch)
        lines.append(f"| {s} | {med['set_image_s']:.2f} | {med['decoder_s']:.2f} | {med['postprocess_s']:.3f} | "
                     f"{med['nms_s']:.4f} | {last['candidates']} -> {last['passed_iou']} -> {last['survivors']} | "
                     f"{est:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_t", help="reference model name (synthesized weights)")
    p.add_argument("--mode", choices=("stages", "generate"), default="stages")
    p.add_argument("--points-per-side", type=int, default=32)
    p.add_argument("--points-per-batch", type=int, default=64)
    p.add_argument("--keep-all", action="store_true", help="pred_iou_thresh = stability_score_thresh = 0")
    p.add_argument("--size", default="1500x1000", help="image WxH (the reference truck photo, resized)")
    p.add_argument("--rounds", type=int, default=1, help="alternating ours/official rounds")
    p.add_argument("--repeats", type=int, default=3, help="post-processing repeats per run (stages)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-official", action="store_true")
    p.add_argument("--official-python", type=Path, default=official.DEFAULT_OFFICIAL_PYTHON)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sam2_amg_bench")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    image_path = args.workdir / f"image_{width}x{height}.npy"
    np.save(image_path, make_image(width, height))
    generator = {"points_per_side": args.points_per_side, "points_per_batch": args.points_per_batch}
    if args.keep_all:
        generator |= {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    config = f"configs/{'sam2.1' if args.model.startswith('sam2.1') else 'sam2'}/{args.model}.yaml"
    spec = {"config": config, "checkpoint": str(synthesized_checkpoint(args.workdir, args.model)),
            "image": str(image_path), "generator": generator, "mode": args.mode,
            "repeats": args.repeats if args.mode == "stages" else 1}
    sides = [official.ours(args.threads, False)]
    if not args.no_official:
        problem = official.official_install_problem(args.official_python)
        if problem:
            p.error(problem)
        sides.append(official.official(args.threads, args.official_python))
    results: dict[str, list[dict]] = {s.name: [] for s in sides}
    for _ in range(args.rounds):
        for side in sides:
            results[side.name].append(run_side(side, spec, args.workdir))
            print(f"{side.name}: {json.dumps(results[side.name][-1])}", file=sys.stderr, flush=True)
    print(_table(results, args))
    if args.json:
        import torch

        env = environment(torch.device("cpu"))
        args.json.write_text(json.dumps({"environment": env, "spec": spec, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
