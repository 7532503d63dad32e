"""Reading and writing model weights: safetensors files that carry their own metadata.

PyTorch is imported by the functions that need it, so reading a file's metadata (``dcae
models``) starts without it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from .config import DCAEConfig
from .errors import WeightsError
from .files import atomic_write

if TYPE_CHECKING:
    import torch

    from .model import DCAE

METADATA_KEY = "dcae"
WEIGHTS_FORMAT = "dcae-weights/1"


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over tensor names, dtypes, shapes and float32 values, in name order.

    Values are hashed as float32 so a model saved in float16 and reloaded in float32 keeps its
    identity; a decoder uses this to refuse files written with other weights.
    """
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu", torch.float32).contiguous()
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


def model_state(model: DCAE) -> dict[str, torch.Tensor]:
    """The model's persistent tensors (parameters), detached and contiguous, on the CPU."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_weights(
    model: DCAE, path: "str | Path", metadata: "dict[str, Any] | None" = None, dtype: "torch.dtype | None" = None
) -> dict[str, Any]:
    """Write ``model`` to a safetensors file whose header carries the config and ``metadata``.

    ``dtype`` (for example ``torch.float16``) stores the weights at lower precision; the stored
    digest describes the weights as stored, so reloading gives the same identity. Returns the
    metadata written. The write is atomic.
    """
    from safetensors.torch import save_file

    state = model_state(model)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    meta = dict(metadata or {})
    meta.update(format=WEIGHTS_FORMAT, architecture="dcae", config=model.config.to_dict(), digest=state_digest(state))
    header = {METADATA_KEY: json.dumps(meta, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=header))
    return meta


def read_metadata(path: "str | Path") -> dict[str, Any]:
    """The dcae metadata stored in a weights file's header, without loading the tensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with open(path, "rb") as handle:
            size_bytes = handle.read(8)
            if len(size_bytes) != 8:
                raise WeightsError(f"{path} is not a safetensors weights file (too short)")
            size = int.from_bytes(size_bytes, "little")
            if size > 100_000_000:
                raise WeightsError(f"{path} is not a safetensors weights file (implausible header)")
            header = json.loads(handle.read(size))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path} is not a safetensors weights file: {error}") from None
    extra = header.get("__metadata__") if isinstance(header, dict) else None
    text = extra.get(METADATA_KEY) if isinstance(extra, dict) else None
    if not isinstance(text, str) or not text:
        raise WeightsError(f"{path} is a safetensors file without dcae metadata (not dcae weights)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        raise WeightsError(f"{path}: its dcae metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: its dcae metadata is not a JSON object")
    if meta.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: unsupported weights format {meta.get('format')!r}")
    if not isinstance(meta.get("config"), dict):
        raise WeightsError(f"{path}: its dcae metadata holds no model config")
    return meta


def _tensors(names: list[str], what: str, shown: int = 3) -> str:
    """``3 tensors missing (a, b, c)``; at most ``shown`` names."""
    more = ", ..." if len(names) > shown else ""
    return f"{len(names)} tensor{'s' if len(names) != 1 else ''} {what} ({', '.join(names[:shown])}{more})"


def load_weights(path: "str | Path", device: "str | torch.device" = "cpu") -> tuple[DCAE, dict[str, Any]]:
    """Build the model described by a weights file and load its tensors (as float32).

    Everything is checked before anything large is allocated: the metadata and its config
    (types and ranges), then the tensors' names and shapes, read from the file's header,
    against those of the model the config describes, built on PyTorch's "meta" device (no
    memory, no random initialisation); the file's tensors then become its parameters.
    """
    import torch  # weights.py itself loads without PyTorch (dcae info, dcae models)
    from safetensors.torch import load_file

    from .model import DCAE

    meta = read_metadata(path)
    try:
        config = DCAEConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as error:
        raise WeightsError(f"{path}: invalid model config: {error}") from None
    with torch.device("meta"):  # no memory, no random initialisation: the tensors come from the file
        model = DCAE(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    try:
        with safe_open(str(path), framework="pt") as handle:
            stored = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: damaged dcae weights file: {error}") from None
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    reshaped = sorted(name for name in set(expected) & set(stored) if expected[name] != stored[name])
    if missing or unexpected or reshaped:
        shapes = [f"{name}: the config needs {expected[name]}, the file has {stored[name]}" for name in reshaped]
        details = [
            _tensors(names, label, shown)
            for label, names, shown in (
                ("missing", missing, 3),
                ("not in the model", unexpected, 3),
                ("of another shape", shapes, 1),
            )
            if names
        ]
        raise WeightsError(f"{path}: the tensors do not match the model config: {'; '.join(details)}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path}: damaged dcae weights file: {error}") from None
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, assign=True)
    digest = meta.get("digest")
    meta["digest"] = digest if isinstance(digest, str) and len(digest) == 64 else state_digest(state)
    return model.to(device).eval(), meta
