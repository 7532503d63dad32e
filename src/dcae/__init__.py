"""dcae: learned image compression with the Dictionary-based Cross-Attention Entropy model.

The model and its presets are imported on first use, so commands that only read files (``dcae
info``, ``dcae models``) start without loading PyTorch.

Importing dcae before PyTorch makes PyTorch's OpenMP threads sleep instead of spinning while they
wait (``OMP_WAIT_POLICY=PASSIVE``, unless the environment sets it): on a busy machine two
spinning threads coded 1.6 times slower than one, sleeping ones as fast as one, at a 3% cost on
an idle machine (benchmarks/threads.py). OpenMP reads the setting once, when PyTorch loads, so
the command line and the library get it the same way: here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["DCAE", "DCAEConfig", "PRESETS", "build_model", "__version__"]

_LAZY = {"DCAE": "model", "build_model": "model", "DCAEConfig": "config", "PRESETS": "config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
