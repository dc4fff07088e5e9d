"""Build the raw dataset of a :class:`DatasetConfig` and check it before training.

:func:`validate_dataset` (run by ``build_train_loader``) checks folders, file lists and annotation files,
and reads the headers of the first frame and masks of every video. :func:`check_dataset` decodes every
frame and mask (slow; for ``sam2 train --check-data`` style use).
"""

from __future__ import annotations

import logging

from sam2.training.data.config import DataConfig, DatasetConfig
from sam2.training.data.raw_common import DatasetError, RawDataset

logger = logging.getLogger(__name__)


def build_raw_dataset(cfg: DatasetConfig) -> RawDataset:
    """The raw dataset of ``cfg`` (layout checks only); errors name the folder or file."""
    cfg.check()
    if cfg.kind == "vos":
        from sam2.training.data.raw_png import PNGRawDataset

        return PNGRawDataset(cfg.img_folder, cfg.gt_folder, cfg.file_list_txt, cfg.excluded_videos_list_txt,
                             sample_rate=cfg.sample_rate, is_palette=cfg.is_palette,
                             single_object_mode=cfg.single_object_mode, truncate_video=cfg.truncate_video,
                             frames_sampling_mult=cfg.frames_sampling_mult)
    if cfg.kind == "sav":
        from sam2.training.data.raw_sav import JSONRawDataset

        return JSONRawDataset(cfg.img_folder, cfg.gt_folder, cfg.file_list_txt, cfg.excluded_videos_list_txt,
                              sample_rate=cfg.sample_rate, rm_unannotated=cfg.rm_unannotated,
                              ann_every=cfg.ann_every, frames_fps=cfg.frames_fps)
    if cfg.kind == "sa1b":
        from sam2.training.data.raw_images import SA1BRawDataset

        return SA1BRawDataset(cfg.img_folder, cfg.gt_folder, cfg.file_list_txt, cfg.excluded_videos_list_txt,
                              num_frames=cfg.frames_per_clip, mask_area_frac_thresh=cfg.mask_area_frac_thresh,
                              uncertain_iou=cfg.uncertain_iou)
    from sam2.training.data.raw_images import COCORawDataset

    return COCORawDataset(cfg.img_folder, cfg.ann_file, num_frames=cfg.frames_per_clip,
                          include_crowd=cfg.include_crowd, mask_area_frac_thresh=cfg.mask_area_frac_thresh)


def validate_dataset(cfg: DatasetConfig) -> RawDataset:
    """Build the raw dataset and run the cheap checks; returns it. Raises :class:`DatasetError`."""
    raw = build_raw_dataset(cfg)
    if len(raw) == 0:
        raise DatasetError(f"{cfg.describe()} has no videos/images")
    raw.quick_check()
    longest = getattr(raw, "longest_video", None)
    if longest is not None and longest() < cfg.frames_per_clip:
        raise DatasetError(f"{cfg.describe()}: every video has fewer frames than num_frames="
                           f"{cfg.frames_per_clip} (longest: {longest()})")
    return raw


def check_dataset(cfg: DatasetConfig) -> RawDataset:
    """Like :func:`validate_dataset`, then decode every frame and mask; the first problem is raised."""
    raw = validate_dataset(cfg)
    raw.full_check()
    logger.info("%s: all %d videos/images readable", cfg.describe(), len(raw))
    return raw


def check_data(cfg: DataConfig) -> None:
    """:func:`check_dataset` for every dataset of a :class:`DataConfig` (decodes everything)."""
    cfg.check()
    for ds in cfg.datasets:
        check_dataset(ds)
