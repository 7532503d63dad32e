"""Model configuration: one dataclass describes every DCAE variant, presets name a few."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ConfigError

# The geometry every DCAE shares, whatever its sizes: the analysis transform downsamples by 16
# (one latent position per 16x16 pixels), the hyper analysis by 4 more, so images are padded to
# multiples of 64. The file format's latent grid follows from it (dcae.bitstream.latent_size).
LATENT_STRIDE = 16
HYPER_RATIO = 4
STRIDE = LATENT_STRIDE * HYPER_RATIO


@dataclass(frozen=True)
class DCAEConfig:
    """Every size and shape of a DCAE model.

    The defaults are the published reference architecture (119.4M parameters). Smaller
    variants keep the same block types and change only the numbers here.

    Attributes:
        feature_dims: channel widths of the three analysis/synthesis stages (full res /2, /4, /8).
        swin_depths: Swin layers per stage, in analysis order.
        swin_head_dims: attention head width per stage.
        window: Swin window side for the main transforms.
        N: channels of the hyper-latent z.
        M: channels of the latent y.
        hyper_window: Swin window side in the hyper transforms.
        hyper_depth: Swin layers in each hyper transform.
        hyper_head_dim: attention head width in the hyper transforms.
        num_slices: y is coded in this many channel slices, each conditioned on earlier ones.
        max_support_slices: how many earlier slices condition a slice (-1: all of them).
        dict_entries: rows of the learnable dictionary.
        dict_heads: attention heads of the dictionary cross-attention.
        dict_head_dim: width of one such head; the dictionary has dict_heads * dict_head_dim columns.
        dict_dense_depth: depth of the dense multi-scale block inside the dictionary attention.
        context_hidden: hidden widths of the mean, scale and LRP context networks.
        mlp_ratio: hidden width of the ConvGLU feed-forward, relative to its input.
        num_rate_points: number of gain-unit rate points; 0 builds a single-rate model.
    """

    feature_dims: tuple[int, int, int] = (96, 144, 256)
    swin_depths: tuple[int, int, int] = (1, 2, 12)
    swin_head_dims: tuple[int, int, int] = (8, 16, 32)
    window: int = 8
    N: int = 192
    M: int = 320
    hyper_window: int = 4
    hyper_depth: int = 1
    hyper_head_dim: int = 32
    num_slices: int = 5
    max_support_slices: int = 5
    dict_entries: int = 128
    dict_heads: int = 20
    dict_head_dim: int = 32
    dict_dense_depth: int = 3
    context_hidden: tuple[int, int] = (224, 128)
    mlp_ratio: int = 4
    num_rate_points: int = 0

    def __post_init__(self) -> None:
        problems = [problem for name, value in asdict(self).items() if (problem := _check_field(name, value))]
        if problems:  # the arithmetic checks below need sound values
            raise ConfigError("invalid DCAEConfig: " + "; ".join(problems))
        if self.M % self.num_slices:
            problems.append(f"M={self.M} is not divisible by num_slices={self.num_slices}")
        for dim, head in zip(self.feature_dims, self.swin_head_dims):
            if dim % head:
                problems.append(f"feature dim {dim} is not divisible by head dim {head}")
        if self.N % self.hyper_head_dim:
            problems.append(f"N={self.N} is not divisible by hyper_head_dim={self.hyper_head_dim}")
        if self.window < 2 or self.hyper_window < 2:
            problems.append("window sides must be at least 2")
        if min(self.swin_depths) < 1 or self.hyper_depth < 1:
            problems.append("every Swin stage needs at least one layer")
        if self.num_rate_points < 0:
            problems.append("num_rate_points must be >= 0")
        if problems:
            raise ConfigError("invalid DCAEConfig: " + "; ".join(problems))

    @property
    def slice_channels(self) -> int:
        """Channels in one slice of y."""
        return self.M // self.num_slices

    @property
    def dict_dim(self) -> int:
        """Width of one dictionary entry."""
        return self.dict_heads * self.dict_head_dim

    @property
    def latent_stride(self) -> int:
        """Pixels per position of the latent y (the analysis transform downsamples by this)."""
        return LATENT_STRIDE

    @property
    def hyper_ratio(self) -> int:
        """Latent positions per hyper-latent position, along each side."""
        return HYPER_RATIO

    @property
    def stride(self) -> int:
        """Image sides must be a multiple of this: pixels per position of the hyper-latent z."""
        return STRIDE

    def support_count(self, slice_index: int) -> int:
        """Number of earlier slices that condition slice ``slice_index``."""
        if self.max_support_slices < 0:
            return slice_index
        return min(slice_index, self.max_support_slices)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        """Canonical JSON text, stable across runs (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DCAEConfig":
        """Build from a dictionary, rejecting unknown keys with a clear message."""
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a JSON object, not {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def replace(self, **changes: Any) -> "DCAEConfig":
        """A copy with some fields changed."""
        return DCAEConfig.from_dict({**self.to_dict(), **changes})


# Every field's length (tuples) and range: far beyond any useful model, small enough that a
# crafted configuration cannot describe an absurd one.
_FIELD_RULES: dict[str, tuple[int, int, int]] = {
    "feature_dims": (3, 1, 4096),
    "swin_depths": (3, 1, 64),
    "swin_head_dims": (3, 1, 4096),
    "window": (0, 2, 64),
    "N": (0, 1, 4096),
    "M": (0, 1, 4096),
    "hyper_window": (0, 2, 64),
    "hyper_depth": (0, 1, 64),
    "hyper_head_dim": (0, 1, 4096),
    "num_slices": (0, 1, 64),
    "max_support_slices": (0, -1, 64),
    "dict_entries": (0, 1, 4096),
    "dict_heads": (0, 1, 256),
    "dict_head_dim": (0, 1, 4096),
    "dict_dense_depth": (0, 1, 16),
    "context_hidden": (2, 1, 4096),
    "mlp_ratio": (0, 1, 16),
    "num_rate_points": (0, 0, 64),
}


def _check_field(name: str, value: Any) -> str:
    """Why a config field's value is unusable ("" when it is fine)."""
    length, low, high = _FIELD_RULES[name]
    values = value if length else (value,)
    if length and (not isinstance(value, tuple) or len(value) != length):
        return f"{name} must be {length} whole numbers, not {value!r}"
    for item in values:
        if not isinstance(item, int) or isinstance(item, bool) or not low <= item <= high:
            return f"{name} must hold whole numbers in {low}..{high}, not {value!r}"
    return ""


PRESETS: dict[str, DCAEConfig] = {
    # The published architecture; parameter names and shapes match the reference release.
    "reference": DCAEConfig(),
    # The shipped default: same block types, sized for about a second per 768x512 image on 2 CPU cores.
    "compact": DCAEConfig(
        feature_dims=(32, 64, 96),
        swin_depths=(1, 1, 2),
        swin_head_dims=(8, 8, 16),
        N=96,
        M=160,
        hyper_head_dim=16,
        num_slices=4,
        max_support_slices=4,
        dict_entries=64,
        dict_heads=8,
        dict_head_dim=16,
        dict_dense_depth=2,
        context_hidden=(64, 48),
        mlp_ratio=2,
        num_rate_points=6,
    ),
    # For unit tests: a few thousand parameters per block, milliseconds per forward.
    "tiny": DCAEConfig(
        feature_dims=(8, 8, 16),
        swin_depths=(1, 1, 2),
        swin_head_dims=(4, 4, 8),
        window=4,
        N=16,
        M=16,
        hyper_window=2,
        hyper_head_dim=8,
        num_slices=2,
        max_support_slices=2,
        dict_entries=8,
        dict_heads=2,
        dict_head_dim=8,
        dict_dense_depth=1,
        context_hidden=(16, 16),
        mlp_ratio=2,
        num_rate_points=0,
    ),
}


def resolve_config(preset_or_config: "str | DCAEConfig | dict[str, Any]") -> DCAEConfig:
    """Turn a preset name, a config or a dictionary into a :class:`DCAEConfig`."""
    if isinstance(preset_or_config, DCAEConfig):
        return preset_or_config
    if isinstance(preset_or_config, dict):
        return DCAEConfig.from_dict(preset_or_config)
    if isinstance(preset_or_config, str):
        try:
            return PRESETS[preset_or_config]
        except KeyError:
            names = ", ".join(sorted(PRESETS))
            raise ConfigError(f"unknown model preset {preset_or_config!r}; known presets: {names}") from None
    raise ConfigError(f"expected a preset name, DCAEConfig or dict, got {type(preset_or_config).__name__}")


__all__ = ["DCAEConfig", "HYPER_RATIO", "LATENT_STRIDE", "PRESETS", "STRIDE", "resolve_config"]
