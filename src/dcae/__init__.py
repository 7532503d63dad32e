"""dcae: learned image compression with the Dictionary-based Cross-Attention Entropy model."""

from .config import PRESETS, DCAEConfig
from .model import DCAE, build_model

__version__ = "0.1.0"

__all__ = ["DCAE", "DCAEConfig", "PRESETS", "build_model", "__version__"]
