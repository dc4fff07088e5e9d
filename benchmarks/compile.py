"""Eager vs ``torch.compile`` on the same weights: compile time, then interleaved timings.

    python benchmarks/compile.py                                  # tiny: set_image, predict, video 1 object
    python benchmarks/compile.py --parts image --rounds 5 --json compile.json
    python benchmarks/compile.py --device cuda                    # the official GPU settings (max-autotune)

Two copies of one randomly initialised model are built: eager, and compiled (``compile=CompileOptions(
strict=True)``: the device's default components, see ``sam2.compilation.default_components``; a failure
is an error). The first call of the compiled copy compiles; it
is timed and reported on its own (``compile_s``: first compiled call minus one eager call). Then each
phase runs ``--rounds`` times alternating eager, compiled, eager, ... so that a busy machine slows both
alike; medians and the eager/compiled ratio are reported. Video: ``--frames`` generated frames of
``--size``, one object clicked on frame 0, ``propagate_in_video``; ms/frame excludes the first frame.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import environment  # noqa: E402
from video import make_background, make_frame, parse_size  # noqa: E402

from sam2.build_sam import build_sam2, build_sam2_video_predictor  # noqa: E402
from sam2.compilation import CompileOptions  # noqa: E402
from sam2.registry import find_release  # noqa: E402
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402


def _timed(fn, device: torch.device) -> float:
    """Seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _interleave(phases: dict[str, dict], rounds: int, device: torch.device) -> dict:
    """``phases[name] = {"eager": fn, "compiled": fn}`` -> per phase medians (ms) and the ratio."""
    times = {name: {"eager": [], "compiled": []} for name in phases}
    for _ in range(rounds):
        for name, fns in phases.items():
            for kind in ("eager", "compiled"):
                times[name][kind].append(_timed(fns[kind], device) * 1e3)
    out = {}
    for name, t in times.items():
        eager, compiled = statistics.median(t["eager"]), statistics.median(t["compiled"])
        out[name] = {"eager_ms": eager, "compiled_ms": compiled, "speedup": eager / compiled, "runs_ms": t}
    return out


def image_phases(config: str, device: torch.device, seed: int, options: CompileOptions) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    eager = build_sam2(config, None, device=device)
    compiled = build_sam2(config, None, device=device, compile=options)
    compiled.load_state_dict(eager.state_dict())
    image = np.random.default_rng(seed).integers(0, 256, size=(1024, 1024, 3), dtype=np.uint8)
    point, label = np.array([[410.0, 614.0]], dtype=np.float32), np.array([1], dtype=np.int32)
    preds = {"eager": SAM2ImagePredictor(eager), "compiled": SAM2ImagePredictor(compiled)}
    first = {kind: _timed(lambda p=p: p.set_image(image), device) for kind, p in preds.items()}
    first_predict = {kind: _timed(lambda p=p: p.predict(point, label), device) for kind, p in preds.items()}
    compile_s = {"set_image": first["compiled"] - first["eager"],
                 "predict": first_predict["compiled"] - first_predict["eager"]}
    phases = {"set_image": {k: (lambda p=p: p.set_image(image)) for k, p in preds.items()},
              "predict": {k: (lambda p=p: p.predict(point, label)) for k, p in preds.items()}}
    return phases, compile_s


def video_phases(config: str, device: torch.device, seed: int, options: CompileOptions, frames: int,
                 size: tuple[int, int]) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    eager = build_sam2_video_predictor(config, None, device=device)
    compiled = build_sam2_video_predictor(config, None, device=device, compile=options)
    compiled.model.load_state_dict(eager.model.state_dict())
    width, height = size
    background = make_background(width, height, seed)
    video = [make_frame(i, width, height, background) for i in range(frames)]
    click = np.array([[width * 0.5, height * 0.5]], dtype=np.float32)

    def track(predictor) -> float:
        """ms/frame of propagation after the first frame (the whole run is what ``_timed`` sees)."""
        predictor.show_progress = False
        state = predictor.init_state(video)
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=click, labels=np.array([1]))
        stamps = [time.perf_counter()]
        for _ in predictor.propagate_in_video(state):
            stamps.append(time.perf_counter())
        return (stamps[-1] - stamps[1]) * 1e3 / max(len(stamps) - 2, 1)

    first = {"eager": _timed(lambda: track(eager), device), "compiled": _timed(lambda: track(compiled), device)}
    per_frame: dict[str, list[float]] = {"eager": [], "compiled": []}
    phases = {"video_1_object_run": {k: (lambda k=k, p=p: per_frame[k].append(track(p)))
                                     for k, p in (("eager", eager), ("compiled", compiled))}}
    return phases, {"video": first["compiled"] - first["eager"], "_per_frame": per_frame}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1_hiera_t", help="release or preset name, or a YAML config (default tiny)")
    parser.add_argument("--parts", nargs="+", choices=("image", "video"), default=["image", "video"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved eager/compiled rounds (default 3)")
    parser.add_argument("--frames", type=int, default=5, help="video frames (default 5)")
    parser.add_argument("--size", type=parse_size, default=(480, 270), help="video WIDTHxHEIGHT (default 480x270)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default=None, help="torch.compile mode (default: max-autotune on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = args.model if Path(args.model).is_file() else find_release(args.model).config
    options = CompileOptions(mode=args.mode, strict=True)
    results: dict = {"environment": environment(device), "model": args.model, "rounds": args.rounds}
    if "image" in args.parts:
        phases, compile_s = image_phases(config, device, args.seed, options)
        results["image"] = {"compile_s": compile_s, **_interleave(phases, args.rounds, device)}
    if "video" in args.parts:
        phases, extra = video_phases(config, device, args.seed, options, args.frames, args.size)
        per_frame = extra.pop("_per_frame")
        _interleave(phases, args.rounds, device)
        eager, compiled = statistics.median(per_frame["eager"]), statistics.median(per_frame["compiled"])
        results["video"] = {"compile_s": extra["video"], "eager_ms_per_frame": eager,
                            "compiled_ms_per_frame": compiled, "speedup": eager / compiled, "runs": per_frame}
    print("| phase | eager ms | compiled ms | eager / compiled | compile s (first call) |")
    print("|---|---:|---:|---:|---:|")
    for name in ("set_image", "predict"):
        if "image" in results:
            r = results["image"][name]
            print(f"| {name} | {r['eager_ms']:.1f} | {r['compiled_ms']:.1f} | {r['speedup']:.2f}x "
                  f"| {results['image']['compile_s'][name]:.0f} |")
    if "video" in results:
        r = results["video"]
        print(f"| video ms/frame, 1 object | {r['eager_ms_per_frame']:.1f} | {r['compiled_ms_per_frame']:.1f} "
              f"| {r['speedup']:.2f}x | {r['compile_s']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
