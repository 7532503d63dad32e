"""Training: data, configuration, the loop, checkpoints."""

from .config import ConfigError, TrainConfig, load_train_config
from .data import DataError, RandomCropDataset, ResumableSampler, split_holdout
from .trainer import Trainer

__all__ = [
    "ConfigError",
    "DataError",
    "RandomCropDataset",
    "ResumableSampler",
    "TrainConfig",
    "Trainer",
    "load_train_config",
    "split_holdout",
]
