"""Fine-tuning data: raw datasets (DAVIS/MOSE, SA-V, SA-1B, COCO), sampling, transforms, mixed loader."""

from sam2.training.data.batch import VideoBatch
from sam2.training.data.config import DataConfig, DatasetConfig, TransformConfig
from sam2.training.data.loader import TrainLoader, build_train_loader
from sam2.training.data.raw_common import DatasetError
from sam2.training.data.validate import build_raw_dataset, check_data, check_dataset, validate_dataset

__all__ = [
    "DataConfig",
    "DatasetConfig",
    "DatasetError",
    "TrainLoader",
    "TransformConfig",
    "VideoBatch",
    "build_raw_dataset",
    "build_train_loader",
    "check_data",
    "check_dataset",
    "validate_dataset",
]
