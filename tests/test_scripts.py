"""The helper scripts the GPU training run depends on."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import pytest
from conftest import REPO


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(batch: int, seconds: float, bf16: bool = False) -> dict:
    return {"device": "cuda", "batch": batch, "bf16": bf16, "compile": False, "seconds": seconds}


def test_a_larger_batch_is_chosen_only_for_clearly_more_images_per_second() -> None:
    pick = _load("pick_batch")
    # Launch-bound: 64 images cost little more than 16, so the largest batch wins.
    assert pick.choose_batch([_row(16, 0.10), _row(32, 0.11), _row(64, 0.14)]) == 64
    # Compute-bound: throughput is flat, so the smallest batch keeps the most optimiser steps.
    assert pick.choose_batch([_row(16, 0.10), _row(32, 0.19), _row(64, 0.39)]) == 16
    # 32 gains 25%, 64 only 10% more than 32: stop at 32. bf16 rows are ignored.
    assert pick.choose_batch([_row(64, 0.29), _row(16, 0.10), _row(32, 0.16), _row(64, 0.01, bf16=True)]) == 32
    with pytest.raises(ValueError, match="float32"):
        pick.choose_batch([_row(16, 0.1, bf16=True)])
    assert math.isclose(pick.scaled_lr(64, 16, 1e-4), 2e-4)


def test_pick_batch_command_prints_batch_and_learning_rate(tmp_path) -> None:
    probe = tmp_path / "probe.json"
    probe.write_text(
        '[{"device": "cuda", "batch": 16, "bf16": false, "compile": false, "seconds": 0.1},'
        ' {"device": "cuda", "batch": 32, "bf16": false, "compile": false, "seconds": 0.12}]'
    )
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "pick_batch.py"),
            str(probe),
            "--base-batch",
            "16",
            "--base-lr",
            "1e-4",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["32", "0.000141"]
