"""A run's logs: CSV files in the run folder, and TensorBoard when it is installed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class RunLog:
    """Appends rows to ``<name>.csv`` files of a run folder and mirrors numbers to TensorBoard."""

    def __init__(self, folder: Path, tensorboard: bool = True) -> None:
        self.folder = folder
        self._writer = _tensorboard_writer(folder) if tensorboard else None

    def write(self, name: str, row: dict[str, Any]) -> None:
        """Append ``row`` to ``name`` (e.g. ``log.csv``); the first row writes the header."""
        if self._writer is not None:
            prefix = name.removesuffix(".csv")
            suffix = f"/q{row['quality']}" if row.get("quality") is not None else ""
            for key, value in row.items():
                if key not in ("step", "time", "quality") and isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{prefix}/{key}{suffix}", value, row["step"])
        path = self.folder / name
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _tensorboard_writer(folder: Path) -> Any:
    """A TensorBoard writer when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder / "tensorboard"))
