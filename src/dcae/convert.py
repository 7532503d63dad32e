"""Import checkpoints of the reference DCAE release into dcae's safetensors weights."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from .model import DCAE
from .weights import WeightsError, save_weights

# CompressAI keeps its coding tables as buffers; dcae builds its own tables, so these are dropped.
_REFERENCE_BUFFER_SUFFIXES = (
    "._offset",
    "._quantized_cdf",
    "._cdf_length",
    ".target",
    ".likelihood_lower_bound.bound",
    ".lower_bound_scale.bound",
    ".scale_table",
    ".scale_bound",
)


def read_reference_state(path: "str | Path") -> dict[str, torch.Tensor]:
    """The parameters of a reference checkpoint, without ``module.`` prefixes or coding buffers.

    The file is read with ``torch.load(weights_only=True)``: no arbitrary code is unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    try:
        checkpoint: Any = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        text = str(error)
        # PyTorch's message suggests loading with weights_only=False, which would run whatever
        # code the file holds: never pass that on.
        if "Unsupported global" in text:
            raise WeightsError(
                f"{path} holds Python objects beyond tensors, which dcae refuses to unpickle (a checkpoint "
                "from an untrusted source could run code); it is not a plain reference checkpoint"
            ) from None
        if "weights_only" in text:
            raise WeightsError(f"{path} is not a readable PyTorch checkpoint of tensors") from None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint: {first_line}") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no state_dict of tensors (not a DCAE reference checkpoint)")
    cleaned = {}
    for name, tensor in state.items():
        name = name.removeprefix("module.")
        if name.startswith(("entropy_bottleneck.", "gaussian_conditional.")) and name.endswith(
            _REFERENCE_BUFFER_SUFFIXES
        ):
            continue
        cleaned[name] = tensor
    return cleaned


def convert_reference(checkpoint: "str | Path", output: "str | Path", lmbda: "float | None" = None) -> dict[str, Any]:
    """Write a reference checkpoint as dcae weights (preset ``reference``); returns the metadata."""
    state = read_reference_state(checkpoint)
    model = DCAE("reference")
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(n for n in set(state) & set(expected) if tuple(state[n].shape) != expected[n])
    if missing or unexpected or wrong:
        details = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if names:
                details.append(f"{len(names)} {label} (e.g. {', '.join(names[:3])})")
        raise WeightsError(f"{checkpoint} does not match the reference DCAE architecture: {'; '.join(details)}")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    metadata = {"preset": "reference", "source": "reference DCAE release", "converted_from": Path(checkpoint).name}
    if lmbda is not None:
        metadata["lambdas"] = [lmbda]
    return save_weights(model, output, metadata)
