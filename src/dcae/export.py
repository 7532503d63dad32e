"""Exporting a model's transforms to ONNX, for deployment outside PyTorch.

``analysis.onnx`` maps a padded image batch (and, for a variable-rate model, a quality) to the
gained latent y and the hyper-latent z; ``synthesis.onnx`` maps a quantised y back to the
(unclamped) image. Both take any batch and any image size that is a multiple of the model's
stride. ``model.json`` describes the inputs, the outputs, the weights digest and the largest
difference from PyTorch measured at export.

The entropy model (hyper synthesis, dictionary attention, slice contexts) is not exported: the
portable file guarantee needs its predictions computed in float64 exactly as dcae computes them
(``dcae.entropy_parameters``), and ONNX runtimes compute such networks in float32, where decisions differ
between machines. An ONNX deployment therefore codes the transforms outside PyTorch and the
latents with dcae's entropy coder.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import WeightsError
from .files import atomic_write
from .model import DCAE
from .progress import Progress, StagedProgress

EXPORT_FORMAT = "dcae-onnx/1"


class _Analysis(nn.Module):
    def __init__(self, model: DCAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, quality: "torch.Tensor | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.model.gain(self.model.g_a(x), quality)
        return y, self.model.h_a(y)


class _Synthesis(nn.Module):
    def __init__(self, model: DCAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, y_hat: torch.Tensor, quality: "torch.Tensor | None" = None) -> torch.Tensor:
        return self.model.g_s(self.model.ungain(y_hat, quality))


def _export(module: nn.Module, args: tuple, names: tuple[list[str], list[str]], shapes: dict, path: Path) -> None:
    inputs, outputs = names
    # PyTorch's exporter warns about its own internals (deprecations, graph breaks it handles);
    # none of it is the user's to act on, and the result is checked below.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            args,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=shapes,
            dynamo=True,
            verbose=False,
        )
    atomic_write(path, lambda tmp: program.save(tmp))


def export_onnx(
    model: DCAE, out: "str | Path", name: str, digest: str, progress: "Progress | None" = None
) -> dict[str, Any]:
    """Write ``analysis.onnx``, ``synthesis.onnx`` and ``model.json`` for ``model`` into ``out``;
    returns the description. When onnxruntime is installed, both graphs are run on a test image
    and their largest difference from PyTorch is recorded. The caller's model is left as it was
    (an evaluation-mode copy is exported). ``progress`` hears each of the three stages."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval().requires_grad_(False)
    stages = StagedProgress(progress, [("exporting the analysis", 1), ("exporting the synthesis", 1), ("checking", 1)])
    stages.begin("exporting the analysis")
    stride, latent = model.config.stride, model.config.latent_stride
    variable = model.variable_rate
    batch = torch.export.Dim("batch", min=1, max=64)
    rows, columns = torch.export.Dim("rows", min=1, max=512), torch.export.Dim("columns", min=1, max=512)
    x = torch.rand(2, 3, 2 * stride, 3 * stride)
    quality = torch.tensor(float(model.config.num_rate_points - 1) / 2)
    extra = (quality,) if variable else ()
    q_shape = {"quality": {}} if variable else {}
    q_name = ["quality"] if variable else []
    with torch.no_grad():
        y = _Analysis(model)(x, *extra)[0]
    _export(
        _Analysis(model),
        (x, *extra),
        (["x", *q_name], ["y", "z"]),
        {"x": {0: batch, 2: rows * stride, 3: columns * stride}, **q_shape},
        out / "analysis.onnx",
    )
    factor = stride // latent
    stages.begin("exporting the synthesis")
    _export(
        _Synthesis(model),
        (torch.round(y), *extra),
        (["y_hat", *q_name], ["x_hat"]),
        {"y_hat": {0: batch, 2: rows * factor, 3: columns * factor}, **q_shape},
        out / "synthesis.onnx",
    )
    stages.begin("checking")
    description = {
        "format": EXPORT_FORMAT,
        "model": name,
        "digest": digest,
        "config": model.config.to_dict(),
        "stride": stride,
        "latent_stride": latent,
        "quality_range": [0.0, float(model.config.num_rate_points - 1)] if variable else None,
        "analysis": {
            "file": "analysis.onnx",
            "inputs": {"x": f"float32 (B, 3, H, W) in [0, 1], H and W multiples of {stride}", **_quality_doc(variable)},
            "outputs": {
                "y": f"float32 (B, {model.config.M}, H/{latent}, W/{latent}), the gained latent",
                "z": f"float32 (B, {model.config.N}, H/{stride}, W/{stride}), the hyper-latent",
            },
        },
        "synthesis": {
            "file": "synthesis.onnx",
            "inputs": {"y_hat": f"float32 (B, {model.config.M}, h, w), the quantised latent", **_quality_doc(variable)},
            "outputs": {"x_hat": f"float32 (B, 3, {latent}h, {latent}w), unclamped: clamp to [0, 1], round to 8 bits"},
        },
        "entropy_model": "not exported: dcae codes the latents (see dcae.export)",
        "largest_difference_from_pytorch": _check(out, model, variable),
    }
    atomic_write(out / "model.json", lambda tmp: Path(tmp).write_text(json.dumps(description, indent=2) + "\n"))
    stages.finish("checking")
    return description


def _quality_doc(variable: bool) -> dict[str, str]:
    return {"quality": "float32 scalar, the rate point"} if variable else {}


def _check(out: Path, model: DCAE, variable: bool) -> "dict[str, float] | None":
    """Run both graphs in onnxruntime on an image of a size not seen at export; None without it."""
    try:
        import onnxruntime
    except ImportError:
        return None
    stride = model.config.stride
    x = torch.rand(1, 3, 3 * stride, 2 * stride, generator=torch.Generator().manual_seed(0))
    quality = np.array(float(model.config.num_rate_points - 1) / 3, dtype=np.float32)
    feed_q = {"quality": quality} if variable else {}
    extra = (torch.from_numpy(quality),) if variable else ()
    with torch.no_grad():
        y, z = _Analysis(model)(x, *extra)
        x_hat = _Synthesis(model)(torch.round(y), *extra)
    analysis = onnxruntime.InferenceSession(str(out / "analysis.onnx"), providers=["CPUExecutionProvider"])
    synthesis = onnxruntime.InferenceSession(str(out / "synthesis.onnx"), providers=["CPUExecutionProvider"])
    y_ort, z_ort = analysis.run(None, {"x": x.numpy(), **feed_q})
    (x_ort,) = synthesis.run(None, {"y_hat": torch.round(y).numpy(), **feed_q})
    return {
        "y": float(np.abs(y_ort - y.numpy()).max()),
        "z": float(np.abs(z_ort - z.numpy()).max()),
        "x_hat": float(np.abs(x_ort - x_hat.numpy()).max()),
    }


class OnnxSynthesis:
    """The synthesis transform of an ONNX export, run by onnxruntime (a decode backend: about a
    third faster than PyTorch on this project's CPU, ``benchmarks/onnx_speed.py``).

    Raises ``WeightsError`` when the export is not of the weights ``digest`` names.
    """

    def __init__(self, folder: "str | Path", digest: str, threads: "int | None" = None) -> None:
        import onnxruntime

        folder = Path(folder)
        try:
            description = json.loads((folder / "model.json").read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise WeightsError(f"{folder} is not an ONNX export of dcae (model.json: {error})") from None
        if description.get("format") != EXPORT_FORMAT or description.get("digest") != digest:
            raise WeightsError(f"{folder} is not an export of these weights (model {digest[:16]})")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        path = str(folder / description["synthesis"]["file"])
        self._session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._variable = description.get("quality_range") is not None

    def __call__(self, y_hat: torch.Tensor, quality: "float | None") -> torch.Tensor:
        """The unclamped image of a quantised (ungained) latent batch, as a CPU tensor."""
        feed = {"y_hat": y_hat.detach().to("cpu", torch.float32).numpy()}
        if self._variable:
            feed["quality"] = np.array(quality, dtype=np.float32)
        (x_hat,) = self._session.run(None, feed)
        return torch.from_numpy(x_hat)
