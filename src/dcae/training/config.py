"""Training configuration: a TOML file plus command-line overrides."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..config import resolve_config
from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REFERENCE_MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.05)

# How a field is written on the command line and checked: a whole number, a number, a text, a
# switch, or a list of them ("pair": exactly two numbers).
KINDS = ("int", "float", "str", "bool", "floats", "ints", "pair", "model")
# What RandomCropDataset can score crop candidates by (data.py): sharp steps, or pixels on contours.
CROP_LEANS = ("edges", "contours")


def _field(
    kind: str,
    default: Any,
    help: str,
    low: "float | None" = None,
    high: "float | None" = None,
    above: "float | None" = None,
    below: "float | None" = None,
    choices: "tuple[str, ...] | None" = None,
) -> Any:
    """A config field declared once: its kind, default, help, and range (``low`` <= value <=
    ``high``, ``above`` < value < ``below``) or ``choices``; the CLI flags and
    :meth:`TrainConfig.validate` are made from these."""
    metadata = {
        "kind": kind,
        "help": help,
        "low": low,
        "high": high,
        "above": above,
        "below": below,
        "choices": choices,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything a training run needs; see ``configs/*.toml`` for examples.

    ``model`` is a preset name or a table of :class:`dcae.DCAEConfig` fields. With several
    ``lambdas`` the model must have that many gain-unit rate points (variable-rate training).
    Each field's kind, range and help are declared here once (:func:`_field`).
    """

    model: Any = _field("model", "compact", "model preset name (a TOML config may give a table of DCAEConfig fields)")
    init_from: str = _field("str", "", "start from these weights (their config is used; fresh optimiser state)")
    lambdas: list[float] = _field("floats", list(REFERENCE_MSE_LAMBDAS), "rate-distortion trade-off(s)", above=0)
    distortion: str = _field("str", "mse", "the distortion trained for", choices=("mse", "ms-ssim"))
    lambda_sampling: str = _field("str", "batch", "one lambda per batch, or one per image", choices=("batch", "image"))
    lambda_weights: list[float] = _field("floats", [], "relative probability of each lambda (default: uniform)", low=0)
    rate_proxy: str = _field("str", "noise", "how the rate sees quantisation in training", choices=("noise", "ste"))
    train_parts: str = _field(
        "str",
        "all",
        "train the whole model, or only the synthesis transform or the entropy model on cached latents",
        choices=("all", "synthesis", "entropy"),
    )
    cache_crops: int = _field("int", 4, "crops per training photo in the latent cache (--train-parts)", low=1)
    latent_cache: str = _field(
        "str",
        "",
        "the latent cache file ('': latent-cache.safetensors in the run folder); a named file made for "
        "other weights, photos or crops is refused",
    )
    train_data: str = _field("str", "", "folder of training images (required)")
    val_data: str = _field("str", "", "folder of validation images ('': the held-back training photos)")
    holdout: int = _field("int", 0, "training photos held back for validation", low=0)
    val_every: int = _field("int", 1000, "validate every this many steps", low=1)
    val_images: int = _field("int", 4, "images per validation", low=1)
    patch: int = _field("int", 256, "training crop side (a multiple of 64)", low=64)
    batch_size: int = _field("int", 8, "images per step", low=1)
    downscale: list[float] = _field(
        "pair", [1.0, 1.0], "LOW HIGH: photos are scaled by a factor in this range", above=0, high=1
    )
    crop_candidates: int = _field(
        "int", 1, "crop positions drawn per crop; the one --crop-lean scores highest is kept (1: uniform)", low=1
    )
    crop_lean: str = _field(
        "str",
        "edges",
        "what a crop candidate is scored by: its sharp steps, texture included, or its pixels on contours",
        choices=CROP_LEANS,
    )
    workers: int = _field("int", 2, "data-loading worker processes", low=0)
    steps: int = _field("int", 100_000, "training steps in all", low=1)
    lr: float = _field("float", 1e-4, "learning rate", above=0)
    lr_milestones: list[int] = _field("ints", [], "steps at which the learning rate is multiplied by --lr-gamma", low=1)
    lr_gamma: float = _field("float", 0.1, "learning-rate factor at each milestone", above=0)
    lr_warmup_steps: int = _field("int", 0, "raise the learning rate linearly over a run's first steps", low=0)
    clip: float = _field("float", 1.0, "gradient-norm clipping (0: off)", low=0)
    aux_lr: float = _field("float", 1e-3, "learning rate of the prior's quantiles", above=0)
    ema_decay: float = _field("float", 0.0, "keep a moving average of the weights, e.g. 0.999 (0: off)", low=0, below=1)
    seed: int = _field("int", 0, "seed of the data order, crops and noise", low=0)
    out: str = _field("str", "runs/default", "output folder for checkpoints and logs")
    checkpoint_minutes: float = _field("float", 5.0, "minutes between checkpoints", above=0)
    time_limit_minutes: float = _field("float", 0.0, "stop with a checkpoint after this long (0: no limit)", low=0)
    cpu_budget_minutes: float = _field(
        "float", 0.0, "stop when the run has used this much CPU time (0: no limit)", low=0
    )
    log_every: int = _field("int", 50, "log every this many steps", low=1)
    device: str = _field("str", "auto", "auto, cpu, cuda or cuda:N")
    amp: str = _field("str", "auto", "mixed precision (auto: bf16 on CUDA)", choices=("auto", "bf16", "off"))
    compile: bool = _field("bool", False, "compile the model (torch.compile)")
    channels_last: bool = _field("bool", False, "channels-last memory layout")
    threads: int = _field("int", 0, "torch CPU threads (0: PyTorch's default)", low=0)

    def validate(self) -> "TrainConfig":
        """Check every field against its declaration, then the rules between fields; raise
        :class:`ConfigError` naming every problem."""
        problems = [problem for item in fields(self) if (problem := _check(item, getattr(self, item.name)))]
        if not problems:
            problems += self._relations()
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))
        return self

    def _relations(self) -> list[str]:
        problems = []
        if not self.lambdas:
            problems.append("lambdas must hold at least one value")
        if not self.train_data:
            problems.append("train_data (a folder of images) is required")
        if self.patch % 64:
            problems.append(f"patch must be a multiple of 64, not {self.patch}")
        if self.downscale[0] > self.downscale[1]:
            problems.append("downscale must be [low, high] with low <= high")
        if self.lambda_weights and (len(self.lambda_weights) != len(self.lambdas) or not sum(self.lambda_weights) > 0):
            problems.append("lambda_weights must be empty or one non-negative weight per lambda, not all zero")
        if sorted(self.lr_milestones) != list(self.lr_milestones):
            problems.append("lr_milestones must be increasing step numbers")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            problems.append(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {self.device!r}")
        if not self.init_from:  # weights to start from bring their own model
            try:
                resolve_config(self.model)
            except (ValueError, TypeError) as error:
                problems.append(f"model: {error}")
        return problems

    def with_sorted_lambdas(self) -> "TrainConfig":
        """The same config with ``lambdas`` ascending (rate point i trains lambda i) and each
        ``lambda_weights`` entry moved with its lambda."""
        order = sorted(range(len(self.lambdas)), key=lambda i: self.lambdas[i])
        weights = [self.lambda_weights[i] for i in order] if self.lambda_weights else []
        return replace(self, lambdas=[self.lambdas[i] for i in order], lambda_weights=weights)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON metadata."""
        return asdict(self)


def _is_number(value: Any, whole: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if whole else isinstance(value, (int, float)) and math.isfinite(value)


def _check(item: Field, value: Any) -> str:
    """Why ``value`` does not fit field ``item``'s declaration ("" when it does)."""
    meta = item.metadata
    kind, name = meta["kind"], item.name
    if kind == "model":
        return "" if isinstance(value, (str, dict)) else f"{name} must be a preset name or a table, not {value!r}"
    if kind == "bool":
        return "" if isinstance(value, bool) else f"{name} must be true or false, not {value!r}"
    if kind == "str":
        if not isinstance(value, str):
            return f"{name} must be a text, not {value!r}"
        return (
            f"{name} must be one of {', '.join(meta['choices'])}, not {value!r}"
            if meta["choices"] and value not in meta["choices"]
            else ""
        )
    listed = kind in ("floats", "ints", "pair")
    values = value if listed and isinstance(value, list) else [value]
    whole = kind in ("int", "ints")
    described = {
        "int": "a whole number",
        "float": "a number",
        "ints": "whole numbers",
        "floats": "numbers",
        "pair": "two numbers",
    }[kind]
    if listed and not isinstance(value, list) or kind == "pair" and len(values) != 2:
        return f"{name} must be a list of {described}, not {value!r}"
    for number in values:
        if not _is_number(number, whole) or not _in_range(number, meta):
            return f"{name} must be {described}{_range_text(meta)}, not {value!r}"
    return ""


def _in_range(number: float, meta: Mapping[str, Any]) -> bool:
    return (
        (meta["low"] is None or number >= meta["low"])
        and (meta["high"] is None or number <= meta["high"])
        and (meta["above"] is None or number > meta["above"])
        and (meta["below"] is None or number < meta["below"])
    )


def _range_text(meta: Mapping[str, Any]) -> str:
    parts = [
        f">= {meta['low']}" if meta["low"] is not None else "",
        f"> {meta['above']}" if meta["above"] is not None else "",
    ]
    parts.append(f"<= {meta['high']}" if meta["high"] is not None else "")
    parts.append(f"< {meta['below']}" if meta["below"] is not None else "")
    return "" if not any(parts) else " " + " and ".join(part for part in parts if part)


def load_train_config(path: "str | Path | None" = None, overrides: "dict[str, Any] | None" = None) -> TrainConfig:
    """Read a TOML file (optional), apply ``overrides`` (None values ignored), validate."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            values = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown training config keys: {', '.join(unknown)}")
    try:
        return TrainConfig(**values).validate()
    except TypeError as error:
        raise ConfigError(f"invalid training config: {error}") from None
