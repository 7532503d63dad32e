"""ONNX export of the transforms: the graphs run in onnxruntime and agree with PyTorch."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VR, random_model

from dcae.cli import main
from dcae.export import export_onnx
from dcae.weights import save_weights, state_digest

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the onnx extra)")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (the onnx extra)")

# Float32 graphs run by another runtime: the same sums in other orders, so agreement to about
# 1e-5 of the values' scale (documented in model.json as measured at export).
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, object, dict]:
    """One export of a tiny model (in training mode, as a caller might hold it) through the
    API, with the warnings, printed output and progress stages it produced."""
    folder = tmp_path_factory.mktemp("export")
    model = random_model(TINY_VR, seed=2).train()
    save_weights(model, folder / "tiny.safetensors")  # for the decode backend's test
    stages: list[str] = []
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        export_onnx(model, folder / "onnx", "tiny", state_digest(model.state_dict()), lambda s, d, t: stages.append(s))
    seen = {"stages": stages, "warnings": [str(w.message) for w in caught], "printed": printed.getvalue()}
    return folder / "onnx", model, seen


def test_the_description_names_the_model_and_the_measured_agreement(exported) -> None:
    folder, model, _ = exported
    description = json.loads((folder / "model.json").read_text())
    assert description["format"] == "dcae-onnx/1" and len(description["digest"]) == 64
    assert description["quality_range"] == [0.0, 2.0] and description["stride"] == 64
    assert set(description["largest_difference_from_pytorch"]) == {"y", "z", "x_hat"}
    assert max(description["largest_difference_from_pytorch"].values()) < TOLERANCE


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 64, 64), (3, 128, 320)])
def test_the_graphs_take_any_size_and_agree_with_pytorch(exported, batch: int, height: int, width: int) -> None:
    folder, model, _ = exported
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
    quality = np.array(1.25, dtype=np.float32)
    analysis = onnxruntime.InferenceSession(str(folder / "analysis.onnx"), providers=["CPUExecutionProvider"])
    synthesis = onnxruntime.InferenceSession(str(folder / "synthesis.onnx"), providers=["CPUExecutionProvider"])
    y, z = analysis.run(None, {"x": x.numpy(), "quality": quality})
    with torch.no_grad():
        y_ref = model.analysis(x, 1.25)
        z_ref = model.h_a(y_ref)
        x_ref = model.synthesis(torch.round(y_ref), 1.25)
    (x_hat,) = synthesis.run(None, {"y_hat": torch.round(y_ref).numpy(), "quality": quality})
    np.testing.assert_allclose(y, y_ref.numpy(), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(z, z_ref.numpy(), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(x_hat, x_ref.numpy(), rtol=0, atol=TOLERANCE)


def test_an_export_is_not_overwritten_without_force(exported, capsys) -> None:
    folder, _, _ = exported
    assert main(["export", "default", "--onnx", str(folder)]) == 1
    assert "--force" in capsys.readouterr().err


def test_onnxruntime_as_a_decode_backend_keeps_the_guarantee(exported, tmp_path: Path, capsys) -> None:
    from conftest import random_image
    from PIL import Image

    from dcae.codec import Codec, CodecOptions
    from dcae.errors import WeightsError

    folder, model, _ = exported
    plain = Codec(model)
    with_onnx = Codec(model, options=CodecOptions(onnx_synthesis=str(folder)))
    compressed = plain.compress(random_image(72, 136), quality=1.5)
    a, b = plain.decompress(compressed).pixels, with_onnx.decompress(compressed).pixels
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    with pytest.raises(WeightsError, match="not an export of these weights"):
        Codec(random_model(TINY_VR, seed=9), options=CodecOptions(onnx_synthesis=str(folder)))
    weights = folder.parent / "tiny.safetensors"
    coded = tmp_path / "x.dcae"
    coded.write_bytes(compressed.data)
    argv = ["decompress", str(coded), "-o", str(tmp_path / "x.png"), "--model", str(weights), "--onnx", str(folder)]
    assert main(argv) == 0
    assert np.abs(np.asarray(Image.open(tmp_path / "x.png")).astype(int) - a.astype(int)).max() <= 1


def test_export_leaves_the_callers_model_alone_quietly_and_reports_its_stages(exported) -> None:
    _, model, seen = exported
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert list(dict.fromkeys(seen["stages"])) == ["exporting the analysis", "exporting the synthesis", "checking"]
    assert seen["warnings"] == [] and seen["printed"] == ""
