"""A run folder on disk: claiming it, checkpoints with their metadata, resuming from them."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..files import atomic_write
from ..model import DCAE
from ..weights import load_weights, save_weights

# Weights files a run writes: the last step, the best validated one, the moving average.
WEIGHTS_NAMES = ("latest", "best", "ema")
LOG_NAMES = ("log.csv", "val.csv", "train_config.json")


def check_run_folder(out: Path, resume: bool, replace: bool) -> None:
    """A run folder is continued only with ``resume`` and replaced only with ``replace``: never
    overwritten by accident, never silently started afresh by a mistyped resume. Only checks:
    :func:`clear_run_folder` removes the old run once everything else has been validated."""
    if resume and replace:
        raise ConfigError("resume and replace exclude each other")
    has_checkpoint = (out / "latest.safetensors").exists()
    has_run = has_checkpoint or (out / "log.csv").exists()
    if resume and not has_checkpoint:
        raise ConfigError(f"nothing to resume in {out}: no latest.safetensors there")
    if has_run and not (resume or replace):
        raise ConfigError(f"{out} holds a training run; use --resume to continue it or --force to replace it")


def clear_run_folder(out: Path) -> None:
    """Remove the checkpoints and logs of the run in ``out`` (for a run replacing it)."""
    for name in WEIGHTS_NAMES:
        for suffix in (".safetensors", ".json", ".state.pt"):
            (out / f"{name}{suffix}").unlink(missing_ok=True)
    for name in LOG_NAMES:
        (out / name).unlink(missing_ok=True)


def git_commit() -> str:
    """The commit of the source tree this package runs from, or ``"unknown"``."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return result.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class ResumePoint:
    """What a resumed run takes from its last checkpoint's weights file."""

    model: DCAE
    step: int
    init_from: "str | None"  # where the run started (a resume command names no --init-from)
    commands: list[str]  # every command that started or resumed the run so far
    train_parts: str  # what the run trains (its optimiser state holds those parameters only)


def read_resume_point(out: Path) -> ResumePoint:
    """The weights and history of the run in ``out``."""
    model, meta = load_weights(out / "latest.safetensors")
    saved = meta.get("train_config") or {}
    init_from = saved.get("init_from") if isinstance(saved.get("init_from"), str) else None
    earlier = meta.get("commands") or ([meta["command"]] if meta.get("command") else [])
    parts = saved.get("train_parts", "all")
    return ResumePoint(
        model, int(meta.get("step", -1)), init_from, [str(c) for c in earlier if isinstance(c, str)], str(parts)
    )


def save_weights_and_card(model: DCAE, path: Path, metadata: dict[str, Any]) -> None:
    """``path`` (safetensors with the metadata) and a readable ``.json`` copy of the metadata."""
    meta = save_weights(model, path, metadata)
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))


def save_state(path: Path, state: dict[str, Any]) -> None:
    """The optimiser state and counters that let a run resume exactly."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """What :func:`save_state` wrote (tensors and plain values only: no code is unpickled)."""
    if not path.exists():
        raise ConfigError(f"{path.parent} has weights but no optimiser state; cannot resume exactly")
    return torch.load(path, map_location="cpu", weights_only=True)
