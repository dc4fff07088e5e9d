"""``trainer.data`` and the transform list of the official training YAML -> :class:`DataConfig`."""

from __future__ import annotations

import dataclasses
from typing import Any

from sam2.config_yaml import ConfigError
from sam2.training.data.config import DataConfig, DatasetConfig, TransformConfig
from sam2.training.official_node import Node

__all__ = ["data_from_official", "transforms_from_official"]

_T = "training.dataset.transforms."
_D = "training.dataset."
# The MOSE order of the transforms; a file may leave augmentations out but not reorder them.
_ORDER = ("RandomHorizontalFlip", "RandomAffine", "RandomResizeAPI", "ColorJitter", "RandomGrayscale",
          "ColorJitter/frame", "ToTensorAPI", "NormalizeAPI")
_REQUIRED = ("RandomResizeAPI", "ToTensorAPI", "NormalizeAPI")
_RAW_KINDS = {f"{_D}vos_raw_dataset.PNGRawDataset": "vos", f"{_D}vos_raw_dataset.JSONRawDataset": "sav",
              f"{_D}vos_raw_dataset.SA1BRawDataset": "sa1b"}
_RAW_KEYS = {"img_folder", "gt_folder", "file_list_txt", "excluded_videos_list_txt", "sample_rate", "is_palette",
             "single_object_mode", "truncate_video", "frames_sampling_mult", "rm_unannotated", "ann_every",
             "frames_fps", "num_frames", "mask_area_frac_thresh", "uncertain_iou"}


def _consistent(node: Node, expected: bool, where: str) -> None:
    if bool(node.get("consistent_transform", expected)) != expected:
        raise ConfigError(f"{where}: {node.path}.consistent_transform must be {expected} in sam2-kit's pipeline")


def _one_transform(node: Node, name: str, values: dict[str, Any], where: str) -> str:
    """Read one transform into ``values``; returns its place name in ``_ORDER``."""
    if name == "RandomHorizontalFlip":
        _consistent(node, True, where)
        values["hflip_prob"] = float(node.get("p", 0.5))
    elif name == "RandomAffine":
        _consistent(node, True, where)
        values["affine_degrees"] = float(node.get("degrees"))
        values["affine_shear"] = float(node.get("shear", 0.0) or 0.0)
        values["affine_fill"] = tuple(int(v) for v in node.get("image_mean", (123, 116, 103)))
        values["affine_num_tentatives"] = int(node.get("num_tentatives", 1))
        node.ignore("log_warning")
        for key in ("scale", "translate"):
            if node.get(key, None) is not None:
                raise ConfigError(f"{where}: {node.path}.{key} is not supported (MOSE uses none)")
        if node.get("image_interpolation", "bicubic") != "bilinear":
            raise ConfigError(f"{where}: {node.path}.image_interpolation: only bilinear is supported")
    elif name == "RandomResizeAPI":
        _consistent(node, True, where)
        sizes = node.get("sizes")
        sizes = sizes if isinstance(sizes, list) else [sizes]
        if len(sizes) != 1 or not node.get("square", False) or node.get("max_size", None) is not None:
            raise ConfigError(f"{where}: {node.path}: only a square resize to one size is supported "
                              "(sizes: N, square: true)")
        values["resolution"] = int(sizes[0])
    elif name == "ColorJitter":
        per_frame = not node.get("consistent_transform", True)
        prefix = "frame_" if per_frame else ""
        for key in ("brightness", "contrast", "saturation"):
            values[prefix + key] = float(node.get(key, 0.0) or 0.0)
        if node.get("hue", None):
            raise ConfigError(f"{where}: {node.path}.hue is not supported (MOSE uses none)")
        return "ColorJitter/frame" if per_frame else name
    elif name == "RandomGrayscale":
        _consistent(node, True, where)
        values["grayscale_prob"] = float(node.get("p", 0.5))
    elif name == "NormalizeAPI":
        values["mean"] = tuple(float(v) for v in node.get("mean"))
        values["std"] = tuple(float(v) for v in node.get("std"))
        node.ignore("v2")
    return name


def transforms_from_official(items: list[Node], path: str, where: str) -> tuple[TransformConfig, int]:
    """A ``transforms`` list (of one ``ComposeAPI`` or of the transforms) -> (transforms, resize size)."""
    if len(items) == 1 and items[0].raw.get("_target_") == f"{_T}ComposeAPI":
        compose = items[0]
        compose.target(f"{_T}ComposeAPI")
        items = compose.nodes("transforms")
        compose.finish()
    values: dict[str, Any] = {}
    seen: list[str] = []
    for node in items:
        target = node.raw.get("_target_", "")
        name = target[len(_T):] if target.startswith(_T) else ""
        if name not in {n.split("/")[0] for n in _ORDER}:
            raise ConfigError(f"{where}: {node.path}._target_ {target!r} is not a supported transform "
                              f"(supported: {', '.join(sorted({n.split('/')[0] for n in _ORDER}))})")
        node.target(target)
        seen.append(_one_transform(node, name, values, where))
        node.finish()
    positions = [_ORDER.index(s) for s in seen]
    if positions != sorted(positions) or len(set(seen)) != len(seen):
        raise ConfigError(f"{where}: {path}: transforms must follow the MOSE order {list(_ORDER)}, got {seen}")
    for name in _REQUIRED:
        if name not in seen:
            raise ConfigError(f"{where}: {path} lacks {name}")
    zeros = {"RandomHorizontalFlip": {"hflip_prob": 0.0}, "RandomAffine": {"affine_degrees": 0.0, "affine_shear": 0.0},
             "ColorJitter": {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0},
             "RandomGrayscale": {"grayscale_prob": 0.0},
             "ColorJitter/frame": {"frame_brightness": 0.0, "frame_contrast": 0.0, "frame_saturation": 0.0}}
    for name, defaults in zeros.items():
        if name not in seen:
            values.update(defaults)
    resolution = values.pop("resolution")
    augment = any(name in seen for name in zeros)
    return TransformConfig(augment=augment, **values), resolution


def _unwrap(entry: Node, where: str) -> Node:
    """RepeatFactorWrapper / ConcatDataset of one VOSDataset -> the VOSDataset node."""
    target = entry.raw.get("_target_")
    if target == f"{_D}utils.RepeatFactorWrapper":
        entry.target(target)
        entry.ignore("seed")
        inner = entry.node("dataset")
        entry.finish()
        return _unwrap(inner, where)
    if target == f"{_D}utils.ConcatDataset":
        entry.target(target)
        members = entry.nodes("datasets")
        entry.finish()
        if len(members) != 1:
            raise ConfigError(f"{where}: {entry.path}.datasets: a ConcatDataset of {len(members)} datasets is not "
                              "supported; list them as separate datasets of data.train.datasets")
        return _unwrap(members[0], where)
    return entry


def _dataset(entry: Node, batch_size: int, dict_key: str, where: str) -> tuple[DatasetConfig, TransformConfig, int]:
    vos = _unwrap(entry, where)
    vos.target(f"{_D}vos_dataset.VOSDataset")
    if vos.get("training", True) is not True:
        raise ConfigError(f"{where}: {vos.path}.training must be true")
    transforms, resolution = transforms_from_official(vos.nodes("transforms"), f"{vos.path}.transforms", where)
    raw = vos.node("video_dataset")
    raw_target = raw.raw.get("_target_")
    if raw_target not in _RAW_KINDS:
        raise ConfigError(f"{where}: {raw.path}._target_ {raw_target!r} is not supported "
                          f"(supported: {', '.join(sorted(_RAW_KINDS))})")
    raw.target(raw_target)
    values: dict[str, Any] = {k: raw.get(k) for k in list(raw.raw) if k in _RAW_KEYS}
    raw.finish()
    sampler = vos.node("sampler")
    sampler.target(f"{_D}vos_sampler.RandomUniformSampler")
    values["num_frames"] = int(sampler.get("num_frames"))
    values["max_num_objects"] = int(sampler.get("max_num_objects"))
    values["reverse_time_prob"] = float(sampler.get("reverse_time_prob", 0.0))
    sampler.finish()
    values["multiplier"] = float(vos.get("multiplier", 1))
    values["always_target"] = bool(vos.get("always_target", True))
    vos.ignore("target_segments_available")
    vos.finish()
    try:
        ds = DatasetConfig(kind=_RAW_KINDS[raw_target], batch_size=batch_size, dict_key=dict_key, **values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {raw.path}: {exc}") from None
    return ds, transforms, resolution


def data_from_official(data: Node, where: str) -> DataConfig:
    """``trainer.data`` (``train`` only; validation is ``trainer.validation`` in sam2-kit)."""
    if data.get("val", None) is not None:
        raise ConfigError(f"{where}: trainer.data.val is not supported; validation is set with "
                          "trainer.validation in sam2-kit's own YAML (or --set trainer.validation...)")
    train = data.node("train")
    data.finish()
    train.target(f"{_D}sam2_datasets.TorchTrainMixedDataset")
    if int(train.get("phases_per_epoch", 1)) != 1:
        raise ConfigError(f"{where}: {train.path}.phases_per_epoch: only 1 is supported")
    batch_sizes = train.get("batch_sizes")
    entries = train.nodes("datasets")
    if not isinstance(batch_sizes, list) or len(batch_sizes) != len(entries):
        raise ConfigError(f"{where}: {train.path}.batch_sizes must list one batch size per dataset "
                          f"({len(entries)}), got {batch_sizes!r}")
    collate = train.node("collate_fn")
    collate.target("training.utils.data_utils.collate_fn")
    collate.ignore("_partial_")
    dict_key = str(collate.get("dict_key", "all"))
    collate.finish()
    datasets, transforms, sizes = [], [], []
    for entry, batch_size in zip(entries, batch_sizes):
        ds, tf, size = _dataset(entry, int(batch_size), dict_key, where)
        datasets.append(ds)
        transforms.append(tf)
        sizes.append(size)
    if len({repr(t) for t in transforms}) > 1 or len(set(sizes)) > 1:
        raise ConfigError(f"{where}: {train.path}.datasets: sam2-kit applies one transform list to every dataset; "
                          "these differ")
    values = {k: train.get(k) for k in ("shuffle", "num_workers", "pin_memory", "drop_last", "dataset_prob")
              if train.has(k)}
    train.ignore("worker_init_fn")
    train.finish()
    if not datasets:
        raise ConfigError(f"{where}: {train.path}.datasets is empty")
    return dataclasses.replace(DataConfig(), datasets=datasets, transforms=transforms[0], resolution=sizes[0],
                               **values)
