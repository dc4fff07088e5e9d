"""Video-predictor benchmark: ms per frame of ``propagate_in_video``, and peak memory against video length.

    python benchmarks/video.py                                    # sam2.1 t and l, 1 and 3 objects, RSS
    python benchmarks/video.py --models sam2.1_hiera_t --objects 1 --frames 8 --no-rss
    python benchmarks/video.py --no-timing --lengths 100 400 --json video.json

Timing: each model is built with ``build_sam2_video_predictor(config, None)`` (random weights: the run
time does not depend on the weight values; eval mode, postprocessing on, float32). For each object count
a fresh session is opened on a generated in-memory video (``--frames`` frames of ``--size``), every object
gets one click on frame 0, then ``propagate_in_video`` runs over the whole video. The time between two
consecutive yields is the cost of one frame (frame loading and preprocessing included); frame 0 is left
out (it only returns the prompt's output, plus the memory encoding of the prompts). The median over the
other frames is reported.

Memory: for each ``--lengths`` value a fresh Python process opens a generated mp4 of that many frames
(written with PyAV to a temporary folder), clicks one object on frame 0 with ``--rss-model``, tracks
``--rss-track`` frames, then reads every frame of the video once through the session's frame loader (as
a propagation over the whole video would). It reports its peak resident memory (``VmHWM`` of
``/proc/self/status``, else ``ru_maxrss``) and the bytes the session holds (per-frame outputs and the
frame cache). Tracking the whole of a long video with a full-size model takes hours on a CPU, which is
why only ``--rss-track`` frames are tracked; the per-frame state those frames add is reported exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from machine import environment  # noqa: E402  (benchmarks/machine.py)

from sam2.build_sam import build_sam2_video_predictor  # noqa: E402
from sam2.cli.media import Mp4Writer  # noqa: E402
from sam2.registry import find_release  # noqa: E402

DEFAULT_MODELS = ("sam2.1_hiera_t", "sam2.1_hiera_l")
MIB = 1024 * 1024


# ----------------------------------------------------------------------------------- inputs

def make_frame(i: int, width: int, height: int, background: np.ndarray) -> np.ndarray:
    """Frame ``i`` of a synthetic clip: a fixed textured background with three moving discs."""
    frame = background.copy()
    yy, xx = np.ogrid[:height, :width]
    radius = max(height // 8, 4)
    for k, colour in enumerate(((230, 40, 40), (40, 200, 60), (40, 80, 230))):
        cx = (width * (k + 1) // 4 + 4 * i) % width
        cy = height // 2 + int(height / 5 * np.sin(0.1 * i + k))
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = colour
    return frame


def make_background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 160, width, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 12, size=(height, width, 3)).astype(np.float32)
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def object_clicks(num_objects: int, width: int, height: int) -> list[np.ndarray]:
    """One click per object, on the discs of frame 0."""
    return [np.array([[width * (k % 3 + 1) // 4, height // 2 + int(height / 5 * np.sin(k))]], dtype=np.float32)
            for k in range(num_objects)]


def write_mp4(path: Path, num_frames: int, width: int, height: int, seed: int) -> Path:
    background = make_background(width, height, seed)
    with Mp4Writer(path, width, height, fps=24) as writer:
        for i in range(num_frames):
            writer.write(make_frame(i, width, height, background))
    return path


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 854x480, got {text!r}") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size must be even and at least 16x16, got {text!r}")
    return w, h


# ----------------------------------------------------------------------------------- measurements

def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def current_rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def session_bytes(state) -> dict:
    """Bytes held by a session: its per-frame outputs by field (the memory position encoding, one tensor
    shared by every frame, is counted once as ``shared_bytes``), the frame cache (raw + preprocessed
    frames) and the one-frame backbone feature cache."""
    seen: set[int] = set()
    fields: dict[str, int] = {}
    outputs = 0
    for obj in state.objects:
        for store in (obj.cond_outputs, obj.non_cond_outputs):
            for out in store.values():
                outputs += 1
                for name in ("pred_masks", "obj_ptr", "object_score_logits", "maskmem_features", "maskmem_pos_enc"):
                    t = getattr(out, name)
                    if t is None or t.data_ptr() in seen:
                        continue
                    seen.add(t.data_ptr())
                    fields[name] = fields.get(name, 0) + t.numel() * t.element_size()
    shared = fields.get("maskmem_pos_enc", 0)
    per_frame = sum(v for k, v in fields.items() if k != "maskmem_pos_enc")
    loader = state.frames
    raw = tensor = 0
    with loader._lock:  # a benchmark may peek at the cache's entries
        entries = list(loader._cache.values())
    for entry in entries:
        raw += entry.raw.nbytes
        if entry.tensor is not None:
            tensor += entry.tensor.numel() * entry.tensor.element_size()
    features = sum(t.numel() * t.element_size() for t in _tensors(state.cached_features))
    return {"outputs": outputs, "output_fields": fields, "shared_bytes": shared,
            "bytes_per_output": per_frame / max(outputs, 1),
            "frame_cache_frames": len(entries), "frame_cache_size": loader.cache_size,
            "frame_cache_raw_bytes": raw, "frame_cache_tensor_bytes": tensor, "feature_cache_bytes": features}


# ----------------------------------------------------------------------------------- timing

def time_propagation(predictor, num_objects: int, num_frames: int, width: int, height: int, seed: int) -> dict:
    background = make_background(width, height, seed)
    frames = [make_frame(i, width, height, background) for i in range(num_frames)]
    start = time.perf_counter()
    state = predictor.init_state(frames)
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    for k, point in enumerate(object_clicks(num_objects, width, height)):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=k + 1, points=point, labels=np.array([1]))
    prompt_s = time.perf_counter() - start
    per_frame = []
    last = time.perf_counter()
    for _frame_idx, obj_ids, _masks in predictor.propagate_in_video(state):
        now = time.perf_counter()
        per_frame.append((now - last) * 1e3)
        last = now
        assert len(obj_ids) == num_objects
    timed = per_frame[1:]
    median = statistics.median(timed)
    return {"objects": num_objects, "frames": num_frames, "init_state_s": init_s, "prompts_s": prompt_s,
            "first_frame_ms": per_frame[0], "ms_per_frame": median, "mean_ms_per_frame": statistics.fmean(timed),
            "ms_per_object_frame": median / num_objects, "per_frame_ms": per_frame,
            "state": session_bytes(state)}


def bench_timing(models, objects, num_frames, size, seed) -> list[dict]:
    rows = []
    width, height = size
    for name in models:
        release = find_release(name)
        torch.manual_seed(seed)
        predictor = build_sam2_video_predictor(release.config, None, device="cpu")
        predictor.show_progress = False
        for k in objects:
            row = {"model": release.preset, **time_propagation(predictor, k, num_frames, width, height, seed)}
            print(f"# {row['model']}, {k} object(s): {row['ms_per_frame']:.0f} ms/frame "
                  f"(frames {', '.join(f'{t:.0f}' for t in row['per_frame_ms'])} ms)", flush=True)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------------- memory

def rss_child(video: str, model: str, track: int, seed: int) -> dict:
    """Run in a fresh process: open ``video``, track one object for ``track`` frames, read every frame."""
    result = {"peak_mib_start": peak_rss_mib()}
    release = find_release(model)
    torch.manual_seed(seed)
    predictor = build_sam2_video_predictor(release.config, None, device="cpu")
    predictor.show_progress = False
    result["peak_mib_built"] = peak_rss_mib()
    state = predictor.init_state(video)
    result["num_frames"] = state.num_frames
    result["peak_mib_init_state"] = peak_rss_mib()
    point = object_clicks(1, state.video_width, state.video_height)[0]
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=point, labels=np.array([1]))
    rss_after_frame = []
    for _ in predictor.propagate_in_video(state, max_frame_num_to_track=max(track - 1, 0)):
        rss_after_frame.append(current_rss_mib())
    result["rss_mib_after_each_tracked_frame"] = rss_after_frame
    result["peak_mib_tracked"] = peak_rss_mib()
    result["state_after_tracking"] = session_bytes(state)
    start = time.perf_counter()
    max_held = 0
    for i in range(state.num_frames):  # what a propagation over the whole video reads
        state.frames[i]
        max_held = max(max_held, len(state.frames.cached_indices()))
    result["read_all_frames_s"] = time.perf_counter() - start
    result["max_cached_frames_while_reading"] = max_held
    result["peak_mib"] = peak_rss_mib()
    return result


def bench_rss(lengths, model, track, size, seed, workdir: Path) -> list[dict]:
    width, height = size
    rows = []
    for n in lengths:
        video = write_mp4(workdir / f"clip_{n}.mp4", n, width, height, seed)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_rss-child", str(video), "--rss-model", model,
               "--rss-track", str(track), "--seed", str(seed)]
        env = dict(os.environ)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"memory run for {n} frames failed:\n{proc.stderr[-4000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result.update(length=n, mp4_mib=video.stat().st_size / MIB, model=find_release(model).preset)
        print(f"# {n} frames ({result['mp4_mib']:.1f} MiB mp4): peak RSS {result['peak_mib']:.0f} MiB", flush=True)
        rows.append(result)
        video.unlink()
    return rows


# ----------------------------------------------------------------------------------- report

def timing_table(rows: list[dict]) -> str:
    lines = ["| model | objects | frames | ms/frame (median) | ms/frame (mean) | ms per object-frame | "
             "frame 0 ms | init_state s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['objects']} | {r['frames']} | {r['ms_per_frame']:.0f} | "
                     f"{r['mean_ms_per_frame']:.0f} | {r['ms_per_object_frame']:.0f} | {r['first_frame_ms']:.0f} | "
                     f"{r['init_state_s']:.1f} |")
    return "\n".join(lines)


def rss_table(rows: list[dict]) -> str:
    lines = ["| video frames | peak RSS MiB | peak after init_state MiB | model built MiB | tracked frames | "
             "state KiB per tracked frame | frames cached (max, bound) | frame cache MiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        st = r["state_after_tracking"]
        cache = (st["frame_cache_raw_bytes"] + st["frame_cache_tensor_bytes"]) / MIB
        lines.append(f"| {r['length']} | {r['peak_mib']:.0f} | {r['peak_mib_init_state']:.0f} | "
                     f"{r['peak_mib_built']:.0f} | {st['outputs']} | {st['bytes_per_output'] / 1024:.0f} | "
                     f"{r['max_cached_frames_while_reading']} ({st['frame_cache_size']}) | {cache:.1f} |")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        slope = (b["peak_mib"] - a["peak_mib"]) / (b["length"] - a["length"]) * 1024
        lines.append("")
        lines.append(f"peak RSS difference {a['length']} -> {b['length']} frames: "
                     f"{b['peak_mib'] - a['peak_mib']:+.1f} MiB = {slope:+.1f} KiB per video frame")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help="models to time: presets, release names, config names or Hub ids (default: sam2.1 t, l)")
    parser.add_argument("--objects", nargs="+", type=int, default=[1, 3], help="object counts to time (default 1 3)")
    parser.add_argument("--frames", type=int, default=8, help="frames of the timed video (default 8)")
    parser.add_argument("--size", type=parse_size, default=(854, 480), help="video WIDTHxHEIGHT (default 854x480)")
    parser.add_argument("--lengths", nargs="+", type=int, default=[100, 400],
                        help="video lengths (frames) of the memory runs (default 100 400)")
    parser.add_argument("--rss-model", default="sam2.1_hiera_t", help="model of the memory runs (default tiny)")
    parser.add_argument("--rss-track", type=int, default=4, help="frames tracked in each memory run (default 4)")
    parser.add_argument("--no-timing", action="store_true", help="skip the timing runs")
    parser.add_argument("--no-rss", action="store_true", help="skip the memory runs")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--_rss-child", dest="rss_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child, args.rss_model, args.rss_track, args.seed)))
        return 0
    if args.frames < 2 or any(k < 1 for k in args.objects) or any(n < 1 for n in args.lengths) or args.rss_track < 1:
        parser.error("--frames must be >= 2; --objects, --lengths and --rss-track >= 1")
    try:
        models = [find_release(m).preset for m in args.models]
        find_release(args.rss_model)
    except KeyError as exc:
        parser.error(str(exc.args[0]))

    env = environment(torch.device("cpu"))
    width, height = args.size
    print(f"# sam2-kit video benchmark: torch {env['torch']}, cpu, {env['torch_threads']} threads, "
          f"{env.get('cpu', platform.processor())}", flush=True)
    results: dict = {"environment": env, "settings": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items() if k != "rss_child"}}
    if not args.no_timing:
        print(f"# timing: {args.frames}-frame {width}x{height} video, median ms/frame over frames 1..{args.frames - 1}",
              flush=True)
        results["timing"] = bench_timing(models, args.objects, args.frames, args.size, args.seed)
    if not args.no_rss:
        print(f"# memory: {args.rss_model}, 1 object, {width}x{height} mp4, {args.rss_track} tracked frames, "
              "every frame read once, one process per length", flush=True)
        with tempfile.TemporaryDirectory(prefix="sam2_video_bench_") as tmp:
            results["memory"] = bench_rss(args.lengths, args.rss_model, args.rss_track, args.size, args.seed,
                                          Path(tmp))
    if "timing" in results:
        print(timing_table(results["timing"]))
    if "memory" in results:
        print(rss_table(results["memory"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
        print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
