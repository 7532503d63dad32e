"""Reading and writing model weights: safetensors files that carry their own metadata."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import DCAEConfig
from .errors import WeightsError
from .model import DCAE

METADATA_KEY = "dcae"
WEIGHTS_FORMAT = "dcae-weights/1"


def atomic_write(path: "str | Path", write: Any) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over tensor names, dtypes, shapes and float32 values, in name order.

    Values are hashed as float32 so a model saved in float16 and reloaded in float32 keeps its
    identity; a decoder uses this to refuse files written with other weights.
    """
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
    text = (header.get("__metadata__") or {}).get(METADATA_KEY) if isinstance(header, dict) else None
    if not text:
        raise WeightsError(f"{path} is a safetensors file without dcae metadata (not dcae weights)")
    meta = json.loads(text)
    if meta.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: unsupported weights format {meta.get('format')!r}")
    return meta


def load_weights(path: "str | Path", device: "str | torch.device" = "cpu") -> tuple[DCAE, dict[str, Any]]:
    """Build the model described by a weights file and load its tensors (as float32)."""
    meta = read_metadata(path)
    try:
        config = DCAEConfig.from_dict(meta["config"])
        state = load_file(str(path))
    except (KeyError, TypeError, ValueError, SafetensorError) as error:
        raise WeightsError(f"{path}: damaged dcae weights file: {error}") from None
    model = DCAE(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsError(f"{path}: weights do not match their config: {error}") from None
    meta["digest"] = meta.get("digest") or state_digest(state)
    return model.to(device).eval(), meta
