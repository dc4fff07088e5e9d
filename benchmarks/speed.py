"""The speed benchmark: the official-equivalent workloads timed on our code, beside the machine's peak.

    python benchmarks/speed.py                      # our code, CPU, float32, all workloads
    python benchmarks/speed.py --official           # and the official sam2 side by side (interleaved)
    python benchmarks/speed.py --baseline /work/base --only "set_image t" video   # before/after a change
    python benchmarks/speed.py --quick --json speed.json
    python benchmarks/speed.py --device cuda --bf16 --compile

Workloads (sam2.1, synthesized weights written once by ``synth_weights.py``, so every side loads the same
checkpoint): ``set_image`` with tiny and large on a 1024x1024 image; ``predict`` (one foreground click,
three masks) with tiny; video with tiny, 1 and 3 objects clicked on frame 0 of a 960x540 JPEG clip of
``--frames`` frames (ms per tracked frame, frame 0 left out); automatic masks with tiny, default generator
(32x32 points), run through ``benchmarks/amg.py`` (its 1500x1000 image, CPU float32). Every workload runs
in a fresh process (``speed_workloads.py``); with ``--official`` / ``--baseline`` the sides alternate per
workload (ours first, then the others; reversed in the next ``--rounds``), so slow drifts of a shared
machine hit all alike. The machine's fp32 matmul peak (2048x2048, the benchmark's thread count) is
measured at the start and the end; effective GFLOP/s are counted FLOPs (matmuls, convolutions, attention)
over our median time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import official as sides  # noqa: E402  (benchmarks/official.py)
from machine import environment, machine_peak  # noqa: E402  (benchmarks/machine.py)

log = logging.getLogger("speed")
REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("SAM2_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
# Objects are declared present on every frame (a large object-score bias), as in a real clip with the
# object in view: memory encoding and pointers then run in full on both sides.
TRACKING_OVERRIDES = {"sam_mask_decoder.pred_obj_score_head.layers.2.bias": 10.0}
BF16_CPU_REFUSAL = (
    "--bf16 is CUDA-only here: on a CPU without native bfloat16 (AVX2 without AVX-512 BF16 / AMX, like "
    "this one) a bf16 matmul runs about 400x slower than float32 (0.3 vs 133 GFLOP/s at 2048x2048 on "
    "2 cores), so bf16 autocast would make every workload far slower. Use --device cuda.")


@dataclass(frozen=True)
class Workload:
    """One row of the table: a worker ``kind`` on ``model``, with its extra spec entries."""

    name: str
    kind: str
    model: str
    extra: dict

    def spec(self, args: argparse.Namespace, workdir: Path, side: str) -> dict:
        quick = args.quick
        repeats = {"set_image": 1 if quick else 3, "predict": 3 if quick else 10, "video": 1, "amg": 1}
        if self.kind == "set_image" and self.model.endswith("_l") and not quick:
            repeats["set_image"] = 2
        return {"workload": self.kind, "config": f"configs/sam2.1/{self.model}.yaml",
                "checkpoint": str(workdir / f"{self.model}.pt"), "device": args.device,
                "threads": args.threads, "repeats": repeats[self.kind],
                "warmup": 0 if self.kind in ("video", "amg") else 1, "bf16": args.bf16,
                "vos_optimized": args.compile and side == "official",
                "count_flops": side == "ours" and self.kind != "amg"} | self.extra


def workloads(args: argparse.Namespace) -> list[Workload]:
    pps = args.amg_points or (16 if args.quick else 32)
    table = [Workload("set_image t", "set_image", "sam2.1_hiera_t", {}),
             Workload("set_image l", "set_image", "sam2.1_hiera_l", {}),
             Workload("predict t (1 click)", "predict", "sam2.1_hiera_t", {}),
             Workload("video t, 1 object, per frame", "video", "sam2.1_hiera_t", {"objects": 1}),
             Workload("video t, 3 objects, per frame", "video", "sam2.1_hiera_t", {"objects": 3}),
             Workload(f"AMG t ({pps}x{pps} points)", "amg", "sam2.1_hiera_t", {"points_per_side": pps})]
    if args.only:
        table = [w for w in table if any(key in w.name for key in args.only)]
    return table


# ----------------------------------------------------------------------------------- inputs

def scene(width: int, height: int, shift: int, seed: int) -> np.ndarray:
    """A textured background with three discs and a bar (things to segment), moved by ``shift`` px."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 160, width, dtype=np.float32)[None, :, None]
    img = np.clip(ramp + rng.normal(0, 12, size=(height, width, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.ogrid[:height, :width]
    for cx, cy, colour in disc_centres(width, height, shift):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= (height // 8) ** 2] = colour
    img[height * 3 // 4: height * 3 // 4 + height // 12, width // 10: width // 3] = (240, 220, 30)
    return img


def disc_centres(width: int, height: int, shift: int) -> list[tuple[int, int, tuple[int, int, int]]]:
    colours = ((230, 40, 40), (40, 200, 60), (40, 80, 230))
    return [((width * (k + 1) // 4 + shift) % width, height // 2 + int(height / 6 * np.sin(k)), c)
            for k, c in enumerate(colours)]


def write_inputs(workdir: Path, models: set[str], frames: int) -> None:
    """Checkpoints (once per work directory), the 1024x1024 image, the JPEG clip and the clicks."""
    from PIL import Image

    synth = _synth_module()
    for model in sorted(models):
        path = workdir / f"{model}.pt"
        if not path.exists():
            log.info("synthesizing %s weights -> %s", model, path)
            synth.write_checkpoint(str(path), str(manifest_path(model)), seed=0, overrides=TRACKING_OVERRIDES)
    np.save(workdir / "image.npy", scene(1024, 1024, 0, seed=1))
    frame_dir = workdir / "frames"
    frame_dir.mkdir(exist_ok=True)
    for old in frame_dir.glob("*.jpg"):
        old.unlink()
    for i in range(frames):
        Image.fromarray(scene(960, 540, 6 * i, seed=2)).save(frame_dir / f"{i:05d}.jpg", quality=95)
    clicks = [[float(cx), float(cy)] for cx, cy, _ in disc_centres(960, 540, 0)]
    (workdir / "clicks.json").write_text(json.dumps(clicks))


def manifest_path(model: str) -> Path:
    """The key manifest of ``model`` (the micro test models sit in ``manifests/micro``)."""
    return REFERENCE / "manifests" / ("micro" if "micro" in model else "") / f"{model}.json"


def _synth_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth_weights", REFERENCE / "synth_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------- running

def run_all(args: argparse.Namespace, workdir: Path, side_list: list[sides.Side]) -> list[dict]:
    rows = []
    for work in workloads(args):
        row = {"workload": work.name, "kind": work.kind}
        for rnd in range(args.rounds):
            order = side_list if rnd % 2 == 0 else side_list[::-1]
            for side in order:
                log.info("%s: %s (round %d)", work.name, side.name, rnd + 1)
                start = time.perf_counter()
                if work.kind == "amg":
                    result = run_amg(side, workdir, work)
                else:
                    result = side.run(workdir, work.spec(args, workdir, side.name))
                log.info("  %s: median %.1f ms (%d samples, %.0f s with start-up)", side.name,
                         statistics.median(result["times_ms"]), len(result["times_ms"]),
                         time.perf_counter() - start)
                entry = row.setdefault(side.name, {"times_ms": [], "runs": []})
                entry["times_ms"] += result["times_ms"]
                entry["runs"].append(result)
                if result.get("gflop"):
                    entry["gflop"] = result["gflop"]
        for side in side_list:
            row[side.name]["median_ms"] = statistics.median(row[side.name]["times_ms"])
        rows.append(row)
    return rows


def run_amg(side: sides.Side, workdir: Path, work: Workload) -> dict:
    """The automatic mask generator through speed-amg's ``benchmarks/amg.py`` (its image: the reference
    truck photo at 1500x1000, its synthesized tiny weights), ``generate(image)`` once, end to end."""
    import amg  # benchmarks/amg.py

    image = workdir / "amg_image.npy"
    if not image.exists():
        np.save(image, amg.make_image())
    spec = {"config": f"configs/sam2.1/{work.model}.yaml",
            "checkpoint": str(amg.synthesized_checkpoint(workdir, work.model)), "image": str(image),
            "generator": {"points_per_side": work.extra["points_per_side"], "points_per_batch": 64},
            "mode": "generate", "repeats": 1}
    result = amg.run_side(side, spec, workdir)
    return {"times_ms": [t * 1e3 for t in result["generate_runs_s"]], "gflop": None, "masks": result["masks"]}


def format_table(rows: list[dict], peak_gflops: float, others: list[str]) -> str:
    """Markdown table: our median, then each other side's median and its time over ours (``>1x``: we are
    faster), then our counted GFLOP, GFLOP/s and their fraction of the fp32 peak."""
    head = "| workload | ours ms |" + "".join(f" {o} ms | ours vs {o} |" for o in others)
    head += " GFLOP | ours GFLOP/s | of fp32 peak |"
    rule = "|---|---:|" + "---:|---:|" * len(others) + "---:|---:|---:|"
    lines = [head, rule]
    for row in rows:
        ours = row["ours"]
        cells = [row["workload"], f"{ours['median_ms']:,.1f}"]
        for other in others:
            theirs = row[other]["median_ms"]
            cells += [f"{theirs:,.1f}", f"{theirs / ours['median_ms']:.2f}x"]
        gflop = ours.get("gflop")
        if gflop:
            rate = gflop / (ours["median_ms"] / 1e3)
            cells += [f"{gflop:,.1f}", f"{rate:,.1f}", f"{rate / peak_gflops:.0%}"]
        else:
            cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", action="store_true", help="also time the official sam2, interleaved")
    parser.add_argument("--official-python", type=Path, default=sides.DEFAULT_OFFICIAL_PYTHON,
                        help="interpreter of the venv with the official sam2 (default %(default)s)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="also time another sam2-kit checkout (e.g. the code before a change), interleaved")
    parser.add_argument("--quick", action="store_true",
                        help="short run: fewer repeats, 4 video frames, 16x16 AMG points")
    parser.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                        help="run the workloads whose name contains one of these (e.g. 'set_image t' video)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per workload (default 1)")
    parser.add_argument("--frames", type=int, default=None, help="video frames (default 9, --quick 4)")
    parser.add_argument("--amg-points", type=int, default=None, help="AMG points per side (default 32)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA only)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile our model (SAM2_COMPILE=1); official: vos_optimized=True for video")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every process (default 2)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep checkpoints and inputs here (reused by later runs); default a temp dir")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")
    args = parser.parse_args(argv)
    if args.bf16 and not args.device.startswith("cuda"):
        parser.error(BF16_CPU_REFUSAL)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1")
    if args.frames is None:
        args.frames = 4 if args.quick else 9
    if args.frames < 2:
        parser.error("--frames must be at least 2 (frame 0 is not timed)")
    if args.official:
        problem = sides.official_install_problem(args.official_python)
        if problem:
            parser.error(f"--official: {problem}")
    if args.baseline and not (args.baseline / "sam2" / "__init__.py").exists():
        parser.error(f"--baseline {args.baseline}: not a sam2-kit checkout (no sam2/__init__.py)")
    if not workloads(args):
        parser.error(f"--only {args.only}: no workload matches")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="# %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    side_list = [sides.ours(args.threads, args.compile)]
    if args.official:
        side_list.append(sides.official(args.threads, args.official_python))
    if args.baseline:
        side_list.append(sides.ours(args.threads, args.compile, checkout=args.baseline, name="baseline"))
    env = environment(device)
    peak_start = machine_peak(device)
    log.info("machine peak: fp32 %.1f GFLOP/s (%dx%d, %d threads), bf16 %.2f GFLOP/s (%dx%d)",
             peak_start["fp32_gflops"], peak_start["fp32_size"], peak_start["fp32_size"], peak_start["threads"],
             peak_start["bf16_gflops"], peak_start["bf16_size"], peak_start["bf16_size"])
    with tempfile.TemporaryDirectory(prefix="sam2-speed-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        write_inputs(workdir, {w.model for w in workloads(args)}, args.frames)
        rows = run_all(args, workdir, side_list)
    peak_end = machine_peak(device)
    peak = max(peak_start["fp32_gflops"], peak_end["fp32_gflops"])
    mode = f"{args.device}, {'bf16 autocast' if args.bf16 else 'float32'}{', compiled' if args.compile else ''}"
    print(f"sam2-kit speed benchmark ({mode}, {args.threads} threads, {env.get('gpu') or env.get('cpu')}, "
          f"torch {env['torch']}); fp32 matmul peak {peak:.1f} GFLOP/s "
          f"(start {peak_start['fp32_gflops']:.1f}, end {peak_end['fp32_gflops']:.1f}), "
          f"bf16 {peak_start['bf16_gflops']:.2f} GFLOP/s\n")
    print(format_table(rows, peak, [side.name for side in side_list[1:]]))
    if args.json:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"environment": env, "settings": settings, "peak_start": peak_start,
                                         "peak_end": peak_end, "results": rows}, indent=1))
        log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
