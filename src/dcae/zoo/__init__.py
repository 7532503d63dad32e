"""The model zoo: released weights that ship inside the package, addressed by name.

Models are released, never replaced: each release has a permanent name (``compact-mse-v1``)
and stays installed with every later dcae, so a file it wrote keeps decoding. ``default`` is
an alias of the newest release. ``releases.json`` is the registry: the releases with their
full weights digests, the aliases, and the development weights that shipped under the name
``default`` before versioned releases existed (not installable from here; a file they wrote
is named with the commit that shipped them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError

ZOO_DIR = Path(__file__).parent
WEIGHTS_DIR = ZOO_DIR / "weights"
DEFAULT_ALIAS = "default"


@dataclass(frozen=True)
class Release:
    """A released model version."""

    name: str
    digest: str  # hex SHA-256 of the weights (dcae.weights.state_digest)
    file: str
    released: str
    training_steps: int
    description: str

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file

    @property
    def available(self) -> bool:
        """Whether the weights are installed."""
        return self.path.is_file()


def _registry() -> dict:
    return json.loads((ZOO_DIR / "releases.json").read_text())


RELEASES: dict[str, Release] = {entry["name"]: Release(**entry) for entry in _registry()["releases"]}
ALIASES: dict[str, str] = dict(_registry()["aliases"])
_DEVELOPMENT: list[dict[str, str]] = list(_registry()["development"])


def release(name: str) -> Release:
    """The release called ``name`` (or what the alias ``name`` points to)."""
    target = ALIASES.get(name, name)
    if target not in RELEASES:
        raise WeightsError(f"no released model named {name!r}; released: {', '.join(RELEASES)}")
    return RELEASES[target]


def available_models() -> list[Release]:
    """Releases whose weights are installed, oldest first."""
    return [entry for entry in RELEASES.values() if entry.available]


def find_by_digest(digest: bytes) -> "Release | None":
    """The release whose weights digest starts with ``digest`` (installed or not), if any."""
    prefix = digest.hex()
    if not prefix:
        return None
    return next((entry for entry in RELEASES.values() if entry.digest.startswith(prefix)), None)


def missing_model_message(digest: bytes) -> str:
    """Why no installed model can decode a file written with weights ``digest``, and what to do."""
    prefix = digest.hex()
    entry = find_by_digest(digest)
    if entry is not None:
        return (
            f"the file was written by model {entry.name} (released {entry.released}), which is not installed "
            f"(expected {entry.path}); reinstall dcae, or pass --model WEIGHTS"
        )
    for old in _DEVELOPMENT:
        if prefix.startswith(old["digest"]) or old["digest"].startswith(prefix):
            return (
                f"the file was written by development weights {old['digest']} that dcae shipped as 'default' "
                f"before versioned releases (commit {old['commit']}, {old['date']}); install dcae from that commit "
                f"to decode it, or pass --model WEIGHTS"
            )
    return f"no released model wrote this file (model {prefix}); pass --model WEIGHTS with the weights that did"


def resolve_model_path(model: "str | os.PathLike[str]") -> Path:
    """A weights path for a release name, an alias or an explicit file path."""
    text = os.fspath(model)
    if text in RELEASES or text in ALIASES:
        entry = release(text)
        if not entry.available:
            raise WeightsError(f"model {entry.name!r} is not installed (expected {entry.path}); reinstall dcae")
        return entry.path
    path = Path(text)
    if path.exists():
        return path
    names = ", ".join([*ALIASES, *RELEASES])
    raise WeightsError(f"no model named {text!r}: give a released model ({names}) or a path to a .safetensors file")
