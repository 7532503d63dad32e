"""Importing reference checkpoints: layout handling, a working codec, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REFERENCE_TSV, needs_shared, random_image
from PIL import Image

import dcae
from dcae.cli import main
from dcae.convert import read_reference_state
from dcae.weights import WeightsError, read_metadata


def _reference_layout_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint shaped like the reference release: DDP prefixes and CompressAI buffers."""
    torch.manual_seed(0)
    state = dcae.build_model("reference").state_dict()
    for line in REFERENCE_TSV.read_text().splitlines()[1:]:
        name, shape, dtype, kind = line.split("\t")
        if kind == "buffer":
            size = tuple(int(v) for v in shape.split("x"))
            state[name] = torch.zeros(size, dtype=torch.int32 if dtype == "int32" else torch.float32)
    torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return state


@needs_shared
@pytest.mark.slow
def test_convert_then_compress(tmp_path: Path, capsys) -> None:
    checkpoint = tmp_path / "checkpoint_best.pth.tar"
    original = _reference_layout_checkpoint(checkpoint)
    out = tmp_path / "reference.safetensors"
    assert main(["convert-reference", str(checkpoint), "-o", str(out), "--lambda", "0.013"]) == 0
    meta = read_metadata(out)
    assert meta["preset"] == "reference" and meta["lambdas"] == [0.013] and meta["config"]["M"] == 320
    model, _ = dcae.weights.load_weights(out)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, original[name])
    image = tmp_path / "small.png"
    Image.fromarray(random_image(40, 56)).save(image)
    coded = tmp_path / "small.dcae"
    capsys.readouterr()
    assert main(["compress", str(image), "-o", str(coded), "--model", str(out)]) == 0
    assert main(["decompress", str(coded), "-o", str(tmp_path / "back.png"), "--model", str(out)]) == 0
    assert main(["convert-reference", str(checkpoint), "-o", str(out)]) == 1
    assert "--force" in capsys.readouterr().err


def test_foreign_files_are_refused(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        read_reference_state(junk)
    no_tensors = tmp_path / "dict.pth"
    torch.save({"state_dict": {"a": 1}}, no_tensors)
    with pytest.raises(WeightsError, match="no state_dict of tensors"):
        read_reference_state(no_tensors)
    other = tmp_path / "other.pth"
    torch.save({"state_dict": dcae.build_model("tiny").state_dict()}, other)
    assert main(["convert-reference", str(other), "-o", str(tmp_path / "o.safetensors")]) == 1
    assert "does not match the reference DCAE architecture" in capsys.readouterr().err


def test_pickled_code_is_never_executed(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (print, ("this must not run",))

    evil = tmp_path / "evil.pth"
    marker = tmp_path / "ran"
    Exploit.__reduce__ = lambda self: (Path.touch, (marker,))
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Exploit()}, evil)
    with pytest.raises(WeightsError, match="refuses to unpickle") as caught:
        read_reference_state(evil)
    assert not marker.exists()
    assert "weights_only" not in str(caught.value)  # never a hint to load it unsafely
