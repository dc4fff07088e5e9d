"""Facts about the machine a benchmark ran on, recorded next to its figures."""

from __future__ import annotations

import os
import platform
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
