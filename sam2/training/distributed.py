"""Multi-process training under ``torchrun``: process group from the environment, DDP, rank-0 writes.

No launcher of our own: ``torchrun --nproc_per_node=N -m sam2 train ...`` (or ``srun torchrun ...`` on a
cluster) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. One process
without those variables trains alone, without a process group. Backend: NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "context_from_env", "init_distributed", "shutdown", "wrap_ddp"]

log = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(minutes=30)  # the official default


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (every rank gets the list)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` is set on any rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def mean(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """Per-key mean over ranks (every rank passes the same keys)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


def context_from_env() -> DistContext:
    """Rank, world size and local rank from the ``torchrun`` environment (1 process without it)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise RuntimeError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistContext(rank=rank, world_size=world, local_rank=local)


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group of a ``torchrun`` job (gloo on CPU, NCCL on CUDA); no-op for 1 process."""
    ctx = context_from_env()
    if not ctx.enabled or dist.is_initialized():
        return ctx
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise RuntimeError(f"WORLD_SIZE={ctx.world_size} but {name} is not set: start the processes with "
                               "torchrun (e.g. torchrun --nproc_per_node=2 -m sam2 train ...)")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    dist.init_process_group(backend=backend, timeout=TIMEOUT, rank=ctx.rank, world_size=ctx.world_size)
    log.info("rank %d of %d joined the %s process group", ctx.rank, ctx.world_size, backend)
    return ctx


def process_device(ctx: DistContext, device: torch.device) -> torch.device:
    """The device of this process: ``cuda:<local_rank>`` for CUDA jobs, else ``device``."""
    if device.type == "cuda" and ctx.enabled:
        return torch.device("cuda", ctx.local_rank)
    return device


def wrap_ddp(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` (``find_unused_parameters=True``: some modules get no gradient in
    some steps, e.g. the memory modules on image batches), or ``module`` itself for one process."""
    if not ctx.enabled:
        return module
    ids = [device.index if device.index is not None else ctx.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
