"""Training configuration: a TOML file plus command-line overrides."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..config import resolve_config
from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REFERENCE_MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.05)


@dataclass
class TrainConfig:
    """Everything a training run needs; see ``configs/*.toml`` for examples.

    ``model`` is a preset name or a table of :class:`dcae.DCAEConfig` fields. With several
    ``lambdas`` the model must have that many gain-unit rate points (variable-rate training).
    """

    model: Any = "compact"
    init_from: str = ""  # weights file to start from (its config is used; optimiser state starts fresh)
    lambdas: list[float] = field(default_factory=lambda: list(REFERENCE_MSE_LAMBDAS))
    distortion: str = "mse"
    lambda_sampling: str = "batch"  # "batch": one lambda per batch; "image": one per image
    lambda_weights: list[float] = field(default_factory=list)  # relative draw probabilities; empty: uniform
    rate_proxy: str = "noise"
    train_data: str = ""
    val_data: str = ""  # a folder; empty: validate on the held-back training photos
    holdout: int = 0  # training photos held back from training (and validated on when val_data is empty)
    val_every: int = 1000
    val_images: int = 4
    patch: int = 256
    batch_size: int = 8
    downscale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    workers: int = 2
    steps: int = 100_000
    lr: float = 1e-4
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    lr_warmup_steps: int = 0  # linear warm-up of the learning rate over a run's first steps; 0: none
    clip: float = 1.0
    aux_lr: float = 1e-3
    ema_decay: float = 0.0  # exponential moving average of the weights, saved as ema.safetensors; 0: off
    seed: int = 0
    out: str = "runs/default"
    checkpoint_minutes: float = 5.0
    time_limit_minutes: float = 0.0  # stop (with a checkpoint) after this long; 0: no limit
    cpu_budget_minutes: float = 0.0  # stop when the run (all resumes) has used this much CPU time; 0: no limit
    log_every: int = 50
    device: str = "auto"
    amp: str = "auto"  # "auto" (bf16 on CUDA), "bf16" or "off"
    compile: bool = False
    channels_last: bool = False
    threads: int = 0  # torch CPU threads; 0 leaves PyTorch's default

    def validate(self) -> "TrainConfig":
        """Check values; raise :class:`ConfigError` naming every problem."""
        problems = []
        if not self.lambdas or any(not (isinstance(v, (int, float)) and v > 0) for v in self.lambdas):
            problems.append("lambdas must be a non-empty list of positive numbers")
        if self.distortion not in ("mse", "ms-ssim"):
            problems.append(f"distortion must be 'mse' or 'ms-ssim', not {self.distortion!r}")
        if self.lambda_sampling not in ("batch", "image"):
            problems.append(f"lambda_sampling must be 'batch' or 'image', not {self.lambda_sampling!r}")
        if self.rate_proxy not in ("noise", "ste"):
            problems.append(f"rate_proxy must be 'noise' or 'ste', not {self.rate_proxy!r}")
        if not self.train_data:
            problems.append("train_data (a folder of images) is required")
        if self.patch < 64 or self.patch % 64:
            problems.append(f"patch must be a positive multiple of 64, not {self.patch}")
        for name in ("batch_size", "steps", "log_every", "val_every", "val_images"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer")
        if len(self.downscale) != 2 or not 0 < self.downscale[0] <= self.downscale[1] <= 1:
            problems.append("downscale must be [low, high] with 0 < low <= high <= 1")
        if self.lr <= 0 or self.aux_lr <= 0:
            problems.append("learning rates must be positive")
        if self.time_limit_minutes < 0 or self.cpu_budget_minutes < 0:
            problems.append("time_limit_minutes and cpu_budget_minutes must be >= 0 (0: no limit)")
        if self.lambda_weights and (
            len(self.lambda_weights) != len(self.lambdas)
            or not all(w >= 0 for w in self.lambda_weights)
            or not sum(self.lambda_weights) > 0
        ):
            problems.append("lambda_weights must be empty or one non-negative weight per lambda, not all zero")
        if not 0 <= self.ema_decay < 1:
            problems.append("ema_decay must be in [0, 1) (0: off)")
        if not isinstance(self.holdout, int) or self.holdout < 0:
            problems.append("holdout must be a non-negative number of photos")
        if self.clip < 0:
            problems.append("clip must be >= 0 (0 disables clipping)")
        if self.amp not in ("auto", "bf16", "off"):
            problems.append(f"amp must be 'auto', 'bf16' or 'off', not {self.amp!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            problems.append(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {self.device!r}")
        if not isinstance(self.lr_warmup_steps, int) or self.lr_warmup_steps < 0:
            problems.append("lr_warmup_steps must be a non-negative number of steps")
        if sorted(self.lr_milestones) != list(self.lr_milestones):
            problems.append("lr_milestones must be increasing step numbers")
        if not self.init_from:  # weights to start from bring their own model
            try:
                resolve_config(self.model)
            except (ValueError, TypeError) as error:
                problems.append(f"model: {error}")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))
        return self

    def with_sorted_lambdas(self) -> "TrainConfig":
        """The same config with ``lambdas`` ascending (rate point i trains lambda i) and each
        ``lambda_weights`` entry moved with its lambda."""
        order = sorted(range(len(self.lambdas)), key=lambda i: self.lambdas[i])
        weights = [self.lambda_weights[i] for i in order] if self.lambda_weights else []
        return replace(self, lambdas=[self.lambdas[i] for i in order], lambda_weights=weights)

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON metadata."""
        return asdict(self)


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
