"""Training benchmarks: peak memory of one training step with and without activation checkpointing,
and the moving-shapes fine-tuning example (validation J&F before and after).

    python benchmarks/training.py memory                          # sam2.1_hiera_t at 512 px, 4 frames, 2 objects
    python benchmarks/training.py memory --resolution 1024 --frames 2
    python benchmarks/training.py learn --threads 1               # examples/finetune_shapes.py, J&F before/after
    python benchmarks/training.py memory learn --json training.json

Memory: for each setting (checkpointing off, on) a fresh Python process builds the model from its
official config with random weights (``build_sam2(config, None)``; memory does not depend on the weight
values) at ``--resolution`` (``++model.image_size``), wraps it in the training model (GT-mask prompts on
frame 0, every other frame tracked: the same work in both settings), makes one random batch of
``--frames`` frames and ``--objects`` disc-shaped objects, allocates the gradients and the AdamW state,
then runs one training step (forward, the MOSE loss, backward, AdamW step). It reports its peak resident
memory (``ru_maxrss``) at the end, the increase of that peak over the step (the activations kept for the
backward pass and the temporaries: what checkpointing acts on) and the step time. PyTorch's CPU allocator returns memory to the system, so the peak
resident size is the honest measure on a CPU; ``tracemalloc`` does not see tensor memory.

Learn: runs :func:`finetune_shapes.run` of ``examples/finetune_shapes.py`` (generated moving-shapes data,
micro model) and reports its before/after J&F, steps and seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from machine import environment  # noqa: E402  (benchmarks/machine.py)

MIB = 1024 * 1024


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _random_batch(frames: int, objects: int, size: int, seed: int = 0):
    """A :class:`VideoBatch` of one video: random frames, one moving disc per object."""
    from sam2.training.data.batch import VideoBatch

    g = torch.Generator().manual_seed(seed)
    images = torch.randn(frames, 1, 3, size, size, generator=g)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    masks = torch.zeros(frames, objects, size, size, dtype=torch.bool)
    for t in range(frames):
        for o in range(objects):
            cx, cy = size * (0.25 + 0.5 * o / max(objects - 1, 1)) + 4 * t, size * 0.5
            masks[t, o] = (xs - cx) ** 2 + (ys - cy) ** 2 < (size / 8) ** 2
    t_idx = torch.arange(frames, dtype=torch.int32)[:, None].expand(frames, objects)
    obj_to_frame = torch.stack([t_idx, torch.zeros_like(t_idx)], dim=-1)
    ids = torch.zeros(frames, objects, 3, dtype=torch.int64)
    sizes = torch.full((frames, objects, 2), size, dtype=torch.int64)
    return VideoBatch(images, obj_to_frame, masks, ids, sizes)


def memory_child(args: argparse.Namespace) -> None:
    """One training step in this (fresh) process; prints one JSON line."""
    from sam2.build_sam import build_sam2
    from sam2.training.losses import LossConfig, MultiStepMultiMasksAndIous
    from sam2.training.model import PromptSimulationConfig, TrainingModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_sam2(args.config, None, device="cpu", mode="train",
                       hydra_overrides_extra=[f"++model.image_size={args.resolution}"])
    model.image_encoder.trunk.activation_checkpointing = bool(args.act_ckpt)
    training = TrainingModel(model, PromptSimulationConfig()).train()
    loss_fn = MultiStepMultiMasksAndIous.from_config(LossConfig(supervise_all_iou=True, iou_use_l1_loss=True,
                                                                pred_obj_scores=True))
    optimizer = torch.optim.AdamW([p for p in training.parameters() if p.requires_grad], lr=1e-5)
    batch = _random_batch(args.frames, args.objects, args.resolution)
    for p in training.parameters():  # gradients and AdamW state exist before the measured step
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    optimizer.step()
    before = _peak_rss_bytes()
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=False)
    loss = loss_fn(training(batch), batch.masks)["core_loss"]
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - start
    peak = _peak_rss_bytes()
    print(json.dumps({"activation_checkpointing": bool(args.act_ckpt), "peak_rss_mib": peak / MIB,
                      "step_increase_mib": (peak - before) / MIB, "setup_peak_mib": before / MIB,
                      "step_seconds": seconds, "loss": float(loss)}))


def memory(args: argparse.Namespace) -> list[dict]:
    rows = []
    for act_ckpt in (0, 1):
        cmd = [sys.executable, str(Path(__file__).resolve()), "_memory_child", "--config", args.config,
               "--resolution", str(args.resolution), "--frames", str(args.frames), "--objects", str(args.objects),
               "--threads", str(args.threads), "--act-ckpt", str(act_ckpt)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"\nOne training step of {args.config} at {args.resolution} px, {args.frames} frames, "
          f"{args.objects} objects (float32, CPU, {args.threads} threads):\n")
    print("| activation checkpointing | peak RSS (MiB) | step increase (MiB) | step s | loss |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {'on' if r['activation_checkpointing'] else 'off'} | {r['peak_rss_mib']:.0f} | "
              f"{r['step_increase_mib']:.0f} | {r['step_seconds']:.1f} | {r['loss']:.4f} |")
    return rows


def learn(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT / "examples"))
    import finetune_shapes

    result = finetune_shapes.run(minutes=args.minutes, workdir=args.workdir, threads=args.threads,
                                 epochs=args.epochs)
    print(f"\nMoving shapes, micro model: J&F {result['jf_before']:.1f} -> {result['jf_after']:.1f} after "
          f"{result['steps']} steps in {result['train_seconds']:.0f} s of training "
          f"({result['train_cpu_seconds']:.0f} CPU s, {result['threads']} threads)")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="+", choices=["memory", "learn", "_memory_child"])
    p.add_argument("--config", default="configs/sam2.1/sam2.1_hiera_t.yaml", help="model config (memory)")
    p.add_argument("--resolution", type=int, default=512, help="model image size (memory; default 512)")
    p.add_argument("--frames", type=int, default=4, help="frames per clip (memory)")
    p.add_argument("--objects", type=int, default=2, help="objects per clip (memory)")
    p.add_argument("--act-ckpt", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    p.add_argument("--epochs", type=int, default=30, help="training epochs of the learn example (8 steps each)")
    p.add_argument("--minutes", type=float, default=None, help="cap on the learn example's training time")
    p.add_argument("--workdir", default=None, help="folder for the learn example (default: a temporary one)")
    p.add_argument("--json", default=None, help="write the environment and results to this file")
    args = p.parse_args()
    if args.what == ["_memory_child"]:
        memory_child(args)
        return
    results: dict = {"environment": environment(torch.device("cpu")), "settings": vars(args)}
    if "memory" in args.what:
        results["memory"] = memory(args)
    if "learn" in args.what:
        results["learn"] = learn(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
