"""Typed configuration of the fine-tuning data pipeline.

Field names follow the keys of the official training YAML where one exists (``img_folder``, ``gt_folder``,
``file_list_txt``, ``excluded_videos_list_txt``, ``multiplier``, ``num_frames``, ``max_num_objects``,
``sample_rate``, ``is_palette``, ``single_object_mode``, ``truncate_video``, ``frames_sampling_mult``,
``rm_unannotated``, ``ann_every``, ``frames_fps``, ``mask_area_frac_thresh``, ``uncertain_iou``,
``reverse_time_prob``, ``always_target``, ``shuffle``, ``drop_last``, ``num_workers``, ``pin_memory``,
``dataset_prob``), so an official YAML maps onto them key by key. Transform defaults are the MOSE ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DATASET_KINDS = ("vos", "sav", "sa1b", "coco")
VIDEO_KINDS = ("vos", "sav")


@dataclass
class DatasetConfig:
    """One dataset of the (mixed) training loader; every batch comes from a single dataset.

    kind: ``"vos"`` (DAVIS/MOSE: ``img_folder/<video>/<frame>.jpg`` + ``gt_folder/<video>/<frame>.png``
    palette PNGs, or per-object PNGs ``gt_folder/<video>/<obj>/<frame>.png``), ``"sav"`` (SA-V:
    ``gt_folder/<video>_manual.json`` RLE masklets with frames ``img_folder/<video>/<idx:05d>.jpg`` or the
    video ``img_folder/<video>.mp4``), ``"sa1b"`` (``img_folder/<name>.jpg`` + ``gt_folder/<name>.json``)
    or ``"coco"`` (``img_folder`` + COCO instances JSON ``ann_file``, polygons or RLE).
    """

    kind: str
    img_folder: str | None = None
    gt_folder: str | None = None
    ann_file: str | None = None
    file_list_txt: str | None = None
    excluded_videos_list_txt: str | None = None
    multiplier: float = 1.0
    batch_size: int = 1
    num_frames: int | None = None  # None: 8 for video kinds, 1 for image kinds
    max_num_objects: int = 3
    reverse_time_prob: float = 0.0
    always_target: bool = True
    dict_key: str = "all"  # the loss the batches of this dataset go to
    # vos (PNGRawDataset)
    sample_rate: int = 1
    is_palette: bool | None = None  # None: per-object PNG folders if the video's mask folder has subfolders
    single_object_mode: bool = False
    truncate_video: int = -1
    frames_sampling_mult: bool = False
    # sav (JSONRawDataset)
    rm_unannotated: bool = True
    ann_every: int = 4  # SA-V annotates every 4th frame of its 24 fps videos (the official default is 1)
    frames_fps: int = 24
    # sa1b (SA1BRawDataset) and coco
    mask_area_frac_thresh: float = 1.1
    uncertain_iou: float = -1.0
    include_crowd: bool = False  # coco: keep ``iscrowd`` annotations as objects

    @property
    def is_video(self) -> bool:
        return self.kind in VIDEO_KINDS

    @property
    def frames_per_clip(self) -> int:
        """The number of frames ``T`` of every sample of this dataset."""
        if self.num_frames is not None:
            return int(self.num_frames)
        return 8 if self.is_video else 1

    def describe(self) -> str:
        where = self.ann_file if self.kind == "coco" else self.img_folder
        return f"{self.kind} dataset {where!r}"

    def check(self) -> None:
        """Raise ``ValueError`` naming the field for a wrong kind, missing path or impossible number."""
        if self.kind not in DATASET_KINDS:
            raise ValueError(f"unknown dataset kind {self.kind!r}; expected one of {', '.join(DATASET_KINDS)}")
        needed = {"vos": ("img_folder", "gt_folder"), "sav": ("img_folder", "gt_folder"),
                  "sa1b": ("img_folder", "gt_folder"), "coco": ("img_folder", "ann_file")}[self.kind]
        for name in needed:
            if not getattr(self, name):
                raise ValueError(f"{self.kind} dataset: `{name}` is required")
        positive = {"batch_size": self.batch_size, "max_num_objects": self.max_num_objects,
                    "num_frames": self.frames_per_clip, "sample_rate": self.sample_rate,
                    "ann_every": self.ann_every, "frames_fps": self.frames_fps}
        for name, value in positive.items():
            if int(value) < 1:
                raise ValueError(f"{self.describe()}: `{name}` must be >= 1, got {value}")
        if self.multiplier < 0:
            raise ValueError(f"{self.describe()}: `multiplier` must be >= 0, got {self.multiplier}")
        if not 0.0 <= self.reverse_time_prob <= 1.0:
            raise ValueError(f"{self.describe()}: `reverse_time_prob` must be in [0, 1]")
        if not self.always_target:
            raise ValueError(f"{self.describe()}: `always_target: false` is not supported (the collate "
                             "needs every sampled object on every frame)")


@dataclass
class TransformConfig:
    """Training augmentations in the MOSE order (flip, affine, resize, jitter, grayscale, per-frame jitter,
    to-tensor, normalise). ``augment=False`` keeps only resize and normalisation."""

    augment: bool = True
    hflip_prob: float = 0.5
    affine_degrees: float = 25.0
    affine_shear: float = 20.0
    affine_fill: tuple[int, int, int] = (123, 116, 103)
    affine_num_tentatives: int = 1
    brightness: float = 0.1  # consistent jitter over the clip
    contrast: float = 0.03
    saturation: float = 0.03
    grayscale_prob: float = 0.05
    frame_brightness: float = 0.1  # per-frame jitter
    frame_contrast: float = 0.05
    frame_saturation: float = 0.05
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass
class DataConfig:
    """The whole training data pipeline: one or more datasets mixed batch by batch.

    ``dataset_prob`` (one probability per dataset, summing to 1) replaces the default mixing
    probabilities, which are proportional to each dataset's number of batches per epoch.
    """

    datasets: list[DatasetConfig] = field(default_factory=list)
    resolution: int = 1024
    num_workers: int = 2
    shuffle: bool = True
    drop_last: bool = True
    pin_memory: bool = False
    dataset_prob: list[float] | None = None
    transforms: TransformConfig = field(default_factory=TransformConfig)

    def check(self) -> None:
        if not self.datasets:
            raise ValueError("data config: `datasets` is empty; give at least one dataset")
        for ds in self.datasets:
            ds.check()
        if self.resolution < 1:
            raise ValueError(f"data config: `resolution` must be >= 1, got {self.resolution}")
        if self.num_workers < 0:
            raise ValueError(f"data config: `num_workers` must be >= 0, got {self.num_workers}")
        if self.dataset_prob is not None:
            if len(self.dataset_prob) != len(self.datasets):
                raise ValueError(f"data config: `dataset_prob` has {len(self.dataset_prob)} entries for "
                                 f"{len(self.datasets)} datasets")
            if any(p < 0 for p in self.dataset_prob) or abs(sum(self.dataset_prob) - 1.0) > 1e-6:
                raise ValueError(f"data config: `dataset_prob` must be >= 0 and sum to 1, got {self.dataset_prob}")
