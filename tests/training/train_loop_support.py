"""Shared pieces of the train-loop tests: a tiny generated DAVIS-layout dataset and small configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from sam2.config import with_updates
from sam2.config_yaml import resolve_config
from sam2.training.config import TrainConfig
from sam2.training.config_yaml import apply_settings, load_train_config
from sam2.training.data.batch import VideoBatch
from sam2.training.shapes import ShapesConfig, generate_shapes_dataset

SIZE = 64  # model and frame size of the tests (the micro model at 64 px)
MICRO = "sam2.1_hiera_micro_128"


def make_shapes(root: Path, train_videos: int = 6, val_videos: int = 2) -> Path:
    """A moving-shapes dataset with exactly 2 objects per video, 4 frames of 64x64."""
    generate_shapes_dataset(root, ShapesConfig(train_videos=train_videos, val_videos=val_videos, num_frames=4,
                                               height=SIZE, width=SIZE, objects=(2, 2), seed=3))
    return root


def micro_config(shapes: Path, exp: Path, *settings: tuple[str, Any], dropout: float | None = None) -> TrainConfig:
    """The CPU preset on ``shapes/train`` at 64 px, 3-frame clips, batch 2, into ``exp``."""
    cfg = load_train_config("sam2.1_hiera_micro_cpu")
    base = [("data.datasets.0.img_folder", str(shapes / "train" / "JPEGImages")),
            ("data.datasets.0.gt_folder", str(shapes / "train" / "Annotations")),
            ("data.resolution", SIZE), ("data.datasets.0.num_frames", 3), ("data.datasets.0.max_num_objects", 2),
            ("data.datasets.0.batch_size", 2), ("trainer.max_epochs", 2), ("trainer.experiment_dir", str(exp)),
            ("trainer.log_every_steps", 1), ("trainer.progress_bar", False)]
    cfg = apply_settings(cfg, [*base, *settings])
    if dropout is not None:
        model_cfg = with_updates(resolve_config(str(micro_yaml())).model, memory_attention={"dropout": dropout})
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, model_config=model_cfg))
    return cfg


def micro_yaml() -> Path:
    from sam2.cli.selfcheck import MICRO_CONFIG

    return MICRO_CONFIG


def merge_batches(batches: list[VideoBatch]) -> VideoBatch:
    """One batch holding the videos of ``batches`` (same ``T``), objects listed video by video."""
    offsets, idx = 0, []
    for b in batches:
        moved = b.obj_to_frame_idx.clone()
        moved[..., 1] += offsets
        idx.append(moved)
        offsets += b.num_videos
    return VideoBatch(img_batch=torch.cat([b.img_batch for b in batches], dim=1),
                      obj_to_frame_idx=torch.cat(idx, dim=1), masks=torch.cat([b.masks for b in batches], dim=1),
                      object_identifiers=torch.cat([b.object_identifiers for b in batches], dim=1),
                      frame_orig_size=torch.cat([b.frame_orig_size for b in batches], dim=1),
                      dict_key=batches[0].dict_key)


class ListLoader:
    """A loader serving fixed batches every epoch (resumable by position), for injected-data tests."""

    def __init__(self, batches: list[VideoBatch]) -> None:
        self.batches, self.epoch, self.start = batches, 0, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        start, self.start = self.start, 0
        for i in range(start, len(self.batches)):
            self.start = i + 1
            yield self.batches[i]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start": self.start}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.start = state["epoch"], state["start"]


def model_state(trainer: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.model.state_dict().items()}
