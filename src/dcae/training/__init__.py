"""Training: data, configuration, the loop, checkpoints.

The configuration imports without PyTorch (the command line builds its flags from it); the rest
loads on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..errors import ConfigError, DataError
from .config import TrainConfig, load_train_config

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

_LAZY = {"RandomCropDataset": "data", "ResumableSampler": "data", "split_holdout": "data", "Trainer": "trainer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
