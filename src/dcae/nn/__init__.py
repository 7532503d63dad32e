"""Neural building blocks of DCAE: convolutions, Swin stages, dictionary attention, gain units."""

from .blocks import ConvGLU, ResidualBottleneck, ResidualDown, ResidualUp, conv, deconv
from .dictionary import DictionaryCrossAttention
from .gain import GainUnits
from .swin import SwinLayer, SwinStage, WindowAttention

__all__ = [
    "ConvGLU",
    "DictionaryCrossAttention",
    "GainUnits",
    "ResidualBottleneck",
    "ResidualDown",
    "ResidualUp",
    "SwinLayer",
    "SwinStage",
    "WindowAttention",
    "conv",
    "deconv",
]
