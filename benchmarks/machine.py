"""Facts about the machine a benchmark ran on, recorded next to its figures."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch


def environment(device: torch.device) -> dict:
    """Versions, CPU model, thread count and device: enough to tell whether two runs are comparable."""
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "dtype": "float32",
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                env["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def matmul_gflops(size: int = 2048, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                  repeats: int = 5, warmup: int = 1) -> float:
    """Best-of-``repeats`` rate of one ``(size, size) @ (size, size)`` matmul in GFLOP/s (``2 size^3`` FLOPs
    per product), with torch's current thread count: the machine's practical peak for dense work.

    The best run rather than the median: the peak is what the machine can do, and on a shared machine the
    slower runs measure the neighbours."""
    device = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    best = float("inf")
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def machine_peak(device: torch.device | str = "cpu", fp32_size: int = 2048, bf16_size: int | None = None,
                 repeats: int = 5) -> dict:
    """fp32 matmul peak at ``fp32_size`` and, for the record, bf16 at ``bf16_size``.

    On a CPU without native bf16 (AVX2, no AVX-512 BF16/AMX) a bf16 matmul runs a few hundred times slower
    than fp32, so the bf16 size defaults to 512 there (one 2048 product would take about a minute) and to
    ``fp32_size`` on CUDA."""
    device = torch.device(device)
    if bf16_size is None:
        bf16_size = fp32_size if device.type == "cuda" else 512
    return {
        "threads": torch.get_num_threads(),
        "fp32_size": fp32_size,
        "fp32_gflops": matmul_gflops(fp32_size, torch.float32, device, repeats),
        "bf16_size": bf16_size,
        "bf16_gflops": matmul_gflops(bf16_size, torch.bfloat16, device, repeats=min(repeats, 2)),
    }
