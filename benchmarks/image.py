"""Image-predictor benchmark: ``set_image`` and ``predict`` latency per model, and effective GFLOP/s.

    python benchmarks/image.py                                   # sam2.1 t, s, b+, l on the CPU
    python benchmarks/image.py --models sam2.1_hiera_t sam2.1_hiera_l --repeats 5 --json out.json

Models are built with ``build_sam2`` (postprocessing on, eval mode, float32) from their official config
and randomly initialised: the run time does not depend on the weight values, so no checkpoint is needed.
The image is a random 1024x1024 RGB uint8 array; ``predict`` gets one foreground click with
``multimask_output=True``. Each timed phase is warmed up first; the median of ``--repeats`` runs is
reported. FLOPs are counted once per phase with ``torch.utils.flop_counter.FlopCounterMode`` (matrix
multiplications, convolutions and attention; element-wise work is not counted), so GFLOP/s is the
*effective* rate of the counted work.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from machine import environment  # noqa: E402  (benchmarks/machine.py)

from sam2.build_sam import build_sam2  # noqa: E402
from sam2.registry import find_release  # noqa: E402
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

DEFAULT_MODELS = ("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l")


def _attention_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """Q @ K^T and P @ V of scaled dot-product attention (2 FLOPs per multiply-add)."""
    batch = math.prod(q_shape[:-2])
    s_q, d_qk = q_shape[-2], q_shape[-1]
    s_k, d_v = k_shape[-2], v_shape[-1]
    return 2 * batch * s_q * s_k * (d_qk + d_v)


def _flop_counter() -> FlopCounterMode:
    """FlopCounterMode that also counts the fused CPU attention kernel (not in torch's own table)."""
    extra = {}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        extra[cpu_sdpa] = _attention_flops
    return FlopCounterMode(display=False, custom_mapping=extra)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_ms(fn, device: torch.device, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _count_flops(fn) -> int:
    # inference_mode: under plain no_grad, views of parameters (the prompt encoder's "no mask" embedding)
    # still require grad, which the module tracker inside FlopCounterMode cannot handle.
    counter = _flop_counter()
    with torch.inference_mode(), counter:
        fn()
    return int(counter.get_total_flops())


def bench_model(name: str, device: torch.device, repeats: int, warmup: int, image_size: int,
                seed: int) -> dict:
    release = find_release(name)
    torch.manual_seed(seed)
    start = time.perf_counter()
    model = build_sam2(release.config, None, device=device)
    build_s = time.perf_counter() - start
    predictor = SAM2ImagePredictor(model)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8)
    point = np.array([[image_size * 0.4, image_size * 0.6]], dtype=np.float32)
    label = np.array([1], dtype=np.int32)

    def set_image():
        predictor.set_image(image)

    def predict():
        predictor.predict(point, label, multimask_output=True)

    set_times = _time_ms(set_image, device, repeats, warmup)
    predict_times = _time_ms(predict, device, repeats, warmup)
    set_flops = _count_flops(set_image)
    predict_flops = _count_flops(predict)
    set_ms, predict_ms = statistics.median(set_times), statistics.median(predict_times)
    row = {
        "model": release.preset,
        "config": release.config,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "build_s": build_s,
        "set_image_ms": set_ms,
        "set_image_ms_all": set_times,
        "set_image_gflop": set_flops / 1e9,
        "set_image_gflops": set_flops / 1e9 / (set_ms / 1e3),
        "predict_ms": predict_ms,
        "predict_ms_all": predict_times,
        "predict_gflop": predict_flops / 1e9,
        "predict_gflops": predict_flops / 1e9 / (predict_ms / 1e3),
    }
    return row


def format_table(rows: list[dict]) -> str:
    header = ("| model | params (M) | set_image ms | set_image GFLOP | set_image GFLOP/s "
              "| predict ms | predict GFLOP | predict GFLOP/s |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params_m']:.1f} | {r['set_image_ms']:.1f} | {r['set_image_gflop']:.1f} "
                     f"| {r['set_image_gflops']:.1f} | {r['predict_ms']:.1f} | {r['predict_gflop']:.2f} "
                     f"| {r['predict_gflops']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                        help="presets, release names, config names or Hub ids (default: sam2.1 t s b+ l)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per phase (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per phase before timing")
    parser.add_argument("--image-size", type=int, default=1024, help="side of the square input image")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    try:
        releases = [find_release(m) for m in args.models]
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")

    env = environment(device)
    print(f"# sam2-kit image benchmark: torch {env['torch']}, {env['device']}, {env['torch_threads']} threads, "
          f"{env.get('gpu') or env.get('cpu') or env['processor']}", flush=True)
    print(f"# image {args.image_size}x{args.image_size}, warmup {args.warmup}, median of {args.repeats}", flush=True)
    rows = []
    for release in releases:
        row = bench_model(release.preset, device, args.repeats, args.warmup, args.image_size, args.seed)
        print(f"# {row['model']}: set_image {row['set_image_ms']:.1f} ms, predict {row['predict_ms']:.1f} ms",
              flush=True)
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "settings": vars(args) | {"json": str(args.json)},
                                         "results": rows}, indent=1))
        print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
