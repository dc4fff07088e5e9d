"""The training loader: :func:`build_train_loader` -> :class:`TrainLoader` of :class:`VideoBatch`.

Each batch comes from one dataset (as the official ``MixedDataLoader``) and is built whole by one
DataLoader worker from the epoch plan (:mod:`.epoch_plan`), so the data of an epoch depends only on
(seed, epoch, sample position), whatever ``num_workers``. ``state_dict()`` records the epoch and the
number of batches already served; after ``load_state_dict()`` the loader serves exactly the batches an
uninterrupted run would still have served in that epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from sam2.training.data.batch import VideoBatch
from sam2.training.data.collate import collate
from sam2.training.data.config import DataConfig
from sam2.training.data.epoch_plan import PlannedBatch, dataset_batches, plan_epoch
from sam2.training.data.sampler import RandomUniformSampler
from sam2.training.data.validate import validate_dataset
from sam2.training.data.vos_dataset import VOSDataset, sample_rng

logger = logging.getLogger(__name__)

STATE_VERSION = 1


class _PlannedBatches(Dataset):
    """Map-style dataset whose item ``i`` is the collated ``i``-th planned batch."""

    def __init__(self, datasets: list[VOSDataset], dict_keys: list[str], plan: list[PlannedBatch],
                 seed: int, epoch: int) -> None:
        self.datasets, self.dict_keys, self.plan = datasets, dict_keys, plan
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> VideoBatch:
        b = self.plan[i]
        samples = [self.datasets[b.dataset].get(item, sample_rng(self.seed, self.epoch, b.dataset, pos))
                   for pos, item in zip(b.positions, b.items, strict=True)]
        return collate(samples, self.dict_keys[b.dataset])


def _identity(batch: VideoBatch) -> VideoBatch:
    return batch


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)


def _pin(batch: VideoBatch) -> VideoBatch:
    names = ("img_batch", "obj_to_frame_idx", "masks", "object_identifiers", "frame_orig_size")
    return replace(batch, **{n: getattr(batch, n).pin_memory() for n in names})


class TrainLoader:
    """Batches of one rank, epoch by epoch: ``set_epoch(e)`` then iterate; resumable mid-epoch."""

    def __init__(self, cfg: DataConfig, datasets: list[VOSDataset], *, rank: int, world_size: int,
                 seed: int) -> None:
        self.cfg, self.datasets = cfg, datasets
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.epoch = 0
        self._start = 0  # batches of the epoch to skip on the next iteration
        self._consumed = 0
        self._resume_pending = False
        self._plans: dict[int, list[PlannedBatch]] = {}

    def plan(self, epoch: int | None = None) -> list[PlannedBatch]:
        """The batches of ``epoch`` (default: the current one) on this rank, in order."""
        epoch = self.epoch if epoch is None else epoch
        if epoch not in self._plans:
            self._plans = {epoch: plan_epoch(
                [len(d) for d in self.datasets], [d.multiplier for d in self.cfg.datasets],
                [d.batch_size for d in self.cfg.datasets], shuffle=self.cfg.shuffle,
                drop_last=self.cfg.drop_last, dataset_prob=self.cfg.dataset_prob, seed=self.seed,
                epoch=epoch, rank=self.rank, world_size=self.world_size)}
        return self._plans[epoch]

    def __len__(self) -> int:
        """Batches per epoch on this rank (the current epoch: fractional multipliers make it vary)."""
        return len(self.plan())

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``; keeps a position restored by :meth:`load_state_dict` for that epoch."""
        if self._resume_pending and epoch == self.epoch:
            return
        self.epoch, self._start, self._consumed, self._resume_pending = int(epoch), 0, 0, False

    def __iter__(self) -> Iterator[VideoBatch]:
        start, epoch = self._start, self.epoch
        self._start, self._resume_pending, self._consumed = 0, False, start
        remaining = self.plan(epoch)[start:]
        if not remaining:
            return
        source = _PlannedBatches(self.datasets, [d.dict_key for d in self.cfg.datasets], remaining,
                                 self.seed, epoch)
        workers = min(self.cfg.num_workers, len(remaining))
        loader = DataLoader(source, batch_size=None, shuffle=False, num_workers=workers,
                            collate_fn=_identity, worker_init_fn=_worker_init if workers else None,
                            generator=torch.Generator().manual_seed(self.seed))  # not the global RNG
        pin = self.cfg.pin_memory and torch.cuda.is_available()
        for batch in loader:
            self._consumed += 1
            yield _pin(batch) if pin else batch

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "batches_consumed", ...}``: where the next batch of this run comes from."""
        return {"version": STATE_VERSION, "epoch": self.epoch, "batches_consumed": self._consumed,
                "seed": self.seed, "world_size": self.world_size, "num_batches": len(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where ``state`` was taken; the next iteration (after ``set_epoch`` of the same epoch, or
        none) serves the epoch's remaining batches."""
        missing = {"epoch", "batches_consumed", "seed", "world_size"} - set(state)
        if missing:
            raise ValueError(f"data loader state lacks {sorted(missing)}")
        for key in ("seed", "world_size"):
            if state[key] != getattr(self, key):
                raise ValueError(f"data loader state was saved with {key}={state[key]} but this loader has "
                                 f"{key}={getattr(self, key)}; the remaining batches would differ")
        self.epoch, consumed = int(state["epoch"]), int(state["batches_consumed"])
        if "num_batches" in state and state["num_batches"] != len(self):
            raise ValueError(f"data loader state has {state['num_batches']} batches per epoch but this loader "
                             f"has {len(self)}; the datasets or batch sizes changed")
        if not 0 <= consumed <= len(self):
            raise ValueError(f"data loader state: batches_consumed={consumed} outside 0..{len(self)}")
        self._start = self._consumed = consumed
        self._resume_pending = True


def build_train_loader(cfg: DataConfig, *, rank: int = 0, world_size: int = 1, seed: int = 0) -> TrainLoader:
    """Check the config and every dataset (folders, files, first frames), then build the loader.

    Raises ``ValueError`` (a :class:`DatasetError` for files) naming the problem before any training.
    """
    cfg.check()
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} and world_size {world_size}: need 0 <= rank < world_size")
    datasets = []
    for ds_cfg in cfg.datasets:
        raw = validate_dataset(ds_cfg)
        sampler = RandomUniformSampler(ds_cfg.frames_per_clip, ds_cfg.max_num_objects, ds_cfg.reverse_time_prob)
        vos = VOSDataset(raw, sampler, cfg.resolution, cfg.transforms, training=True)
        datasets.append(vos)
        logger.info("%s: %d videos/images", ds_cfg.describe(), len(vos))
    loader = TrainLoader(cfg, datasets, rank=rank, world_size=world_size, seed=seed)
    for d, ds_cfg in enumerate(cfg.datasets):
        batches = dataset_batches(d, len(datasets[d]), ds_cfg.multiplier, ds_cfg.batch_size, cfg.shuffle,
                                  cfg.drop_last, seed, 0, rank, world_size)
        if not batches:
            raise ValueError(f"{ds_cfg.describe()} gives no batch: {len(datasets[d])} items x multiplier "
                             f"{ds_cfg.multiplier} over {world_size} ranks with batch_size {ds_cfg.batch_size}"
                             f"{' and drop_last' if cfg.drop_last else ''}")
    return loader
