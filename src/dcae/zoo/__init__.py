"""The model zoo: weights that ship inside the package, addressed by name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..weights import WeightsError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ZooEntry:
    """A named model that ships with dcae."""

    name: str
    filename: str
    description: str

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.filename

    @property
    def available(self) -> bool:
        return self.path.is_file()


ZOO: dict[str, ZooEntry] = {
    "default": ZooEntry(
        "default",
        "default.safetensors",
        "compact variable-rate DCAE (MSE), qualities 0..5 for about 0.1..1 bpp; trained by the dcae project",
    ),
}


def available_models() -> list[ZooEntry]:
    """Zoo entries whose weights are installed."""
    return [entry for entry in ZOO.values() if entry.available]


def find_by_digest(digest: bytes) -> "ZooEntry | None":
    """The installed zoo entry whose weights digest starts with ``digest``, if any."""
    from ..weights import read_metadata

    for entry in available_models():
        if bytes.fromhex(read_metadata(entry.path).get("digest", ""))[: len(digest)] == digest:
            return entry
    return None


def resolve_model_path(model: "str | os.PathLike[str]") -> Path:
    """A weights path for a zoo name or an explicit file path."""
    text = os.fspath(model)
    if text in ZOO:
        entry = ZOO[text]
        if not entry.available:
            raise WeightsError(f"zoo model {text!r} is not installed (expected {entry.path})")
        return entry.path
    path = Path(text)
    if path.exists():
        return path
    names = ", ".join(sorted(ZOO))
    raise WeightsError(f"no model named {text!r}: give a zoo name ({names}) or a path to a .safetensors file")
