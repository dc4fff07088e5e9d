"""Start or join a Ray runtime, and run items through a pool of model-holding workers with Ray Data.

Without an address Ray starts here, embedded in the driver process's session, with bounded resources
(the CPUs and GPUs the workers ask for, :data:`LOCAL_OBJECT_STORE_BYTES` of object store: only file names
and small result rows travel through it). With ``address`` (``--ray-address``, else ``RAY_ADDRESS``) the
job joins that cluster (``host:port`` of its GCS, ``ray://host:10001`` for Ray Client, or ``auto``); an
address that does not answer is reported at once, before Ray is asked. When Ray is already initialised
in this process (a notebook, a test session) that runtime is used and left running.

Workers are Ray Data actors (``map_batches`` with a callable class and an actor pool of fixed size), each
building one model once. A worker process that dies is restarted and its unfinished batches are retried:
Ray Data creates the pool's actors with ``max_restarts=-1`` and ``max_task_retries=-1`` (its defaults,
kept here); what was already recorded in the job's ledger stays done.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
MAX_BLOCKS = 20_000  # tasks per job at most (each task takes one batch of items)
CONNECT_TIMEOUT_S = 3.0
FORWARDED_ENV = ("SAM2_COMPILE", "HF_HUB_OFFLINE")  # settings of the driver that workers must share


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached; the message says what to do, ``flag``
    names the option at fault."""

    def __init__(self, message: str, flag: str = "--ray-address") -> None:
        super().__init__(message)
        self.flag = flag


@dataclass(frozen=True)
class ScaleOptions:
    """How a job is spread: ``workers`` model-holding actors with ``cpus_per_worker`` / ``gpus_per_worker``
    each, ``batch_size`` items per task, on the cluster at ``address`` (None: ``RAY_ADDRESS``, else a
    local runtime). ``overwrite`` redoes items done by an earlier run; ``quiet`` hides the progress bar."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batch_size: int = 1
    address: str | None = None
    overwrite: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.cpus_per_worker > 0 or self.gpus_per_worker < 0:
            raise ValueError(f"cpus_per_worker must be > 0 and gpus_per_worker >= 0, got "
                             f"{self.cpus_per_worker}, {self.gpus_per_worker}")

    @property
    def resolved_address(self) -> str | None:
        return self.address or os.environ.get("RAY_ADDRESS") or None


def for_workers(spec: Any) -> Any:
    """The model spec with local files made absolute: workers do not run in the driver's folder."""
    import dataclasses
    from pathlib import Path

    changes = {name: str(Path(value).absolute()) for name in ("config", "checkpoint")
               if (value := getattr(spec, name)) and Path(value).is_file()}
    return dataclasses.replace(spec, **changes)


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayUnavailable("needs Ray Data, which is not installed: pip install 'sam2-kit[scale]' (ray[data])",
                             flag="--ray") from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """:class:`RayUnavailable` unless ``host:port`` of ``address`` accepts a TCP connection within
    ``timeout`` seconds (``auto`` and addresses without a port are left to Ray)."""
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address!r} ({exc}); check --ray-address / "
                             f"RAY_ADDRESS, or leave both unset to run on this machine") from None


def preflight(options: ScaleOptions) -> None:
    """Fail fast, before anything is written: Ray importable, the cluster address answering."""
    import_ray()
    if options.resolved_address:
        check_reachable(options.resolved_address)


@contextmanager
def ray_runtime(options: ScaleOptions) -> Iterator[Any]:
    """The ``ray`` module, initialised for the job (see the module docstring); shut down afterwards
    when this call started it."""
    preflight(options)
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = options.resolved_address
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING}
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(num_cpus=max(1, math.ceil(options.workers * options.cpus_per_worker)),
                      num_gpus=math.ceil(options.workers * options.gpus_per_worker),
                      object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailable(f"cannot start or join Ray ({'address ' + repr(address) if address else 'local'}): "
                             f"{exc}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def map_items(items: list[dict[str, str]], worker_cls: type, job: Any, options: ScaleOptions) -> Iterator[dict]:
    """Result rows of ``worker_cls(job)`` over ``items`` (rows of strings), in completion order.

    ``worker_cls(job)`` is called once per actor (no more actors than batches); its ``__call__`` takes a
    batch (dict of column -> array of ``options.batch_size`` values) and returns a dict of equal-length
    lists."""
    import ray.data

    from sam2.scale.progress import quiet_ray_data

    quiet_ray_data()
    blocks = min(MAX_BLOCKS, max(1, math.ceil(len(items) / options.batch_size)))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    extra: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}
    pool = ray.data.ActorPoolStrategy(size=min(options.workers, blocks))
    ds = ds.map_batches(worker_cls, fn_constructor_kwargs={"job": job}, batch_size=options.batch_size,
                        batch_format="numpy", compute=pool, num_cpus=options.cpus_per_worker,
                        num_gpus=options.gpus_per_worker or None, **extra)
    yield from ds.iter_rows()
