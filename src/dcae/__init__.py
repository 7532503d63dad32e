"""dcae: learned image compression with the Dictionary-based Cross-Attention Entropy model.

The model and its presets are imported on first use, so commands that only read files (``dcae
info``, ``dcae models``) start without loading PyTorch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["DCAE", "DCAEConfig", "PRESETS", "build_model", "__version__"]

_LAZY = {"DCAE": "model", "build_model": "model", "DCAEConfig": "config", "PRESETS": "config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
