"""The dcae command line on good and bad input: exit codes, one-line errors, no overwrites."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import random_image
from PIL import Image

from dcae.cli import main


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(random_image(48, 80)).save(path)
    return path


def _single_error_line(captured: str) -> str:
    lines = [line for line in captured.strip().splitlines() if line.strip()]
    assert "Traceback" not in captured
    return lines[-1]


def test_compress_decompress_info(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "photo.dcae"
    assert main(["compress", str(image), "-o", str(out), "--model", str(tiny_weights), "--quality", "1"]) == 0
    assert out.exists() and "bpp" in capsys.readouterr().out
    decoded = tmp_path / "back.png"
    assert main(["decompress", str(out), "-o", str(decoded), "--model", str(tiny_weights)]) == 0
    assert Image.open(decoded).size == (80, 48)
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["width"] == 80 and info["height"] == 48 and info["quality"] == 1.0
    assert info["bytes"] == out.stat().st_size and info["header_bytes"] == 48
    assert info["format_version"] == 2 and info["portable"] is False and len(info["latent_checksum"]) == 8
    portable = tmp_path / "portable.dcae"
    assert main(["compress", str(image), "-o", str(portable), "--model", str(tiny_weights), "--portable"]) == 0
    capsys.readouterr()
    assert main(["info", str(portable), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["portable"] is True
    assert main(["decompress", str(portable), "-o", str(tmp_path / "p.png"), "--model", str(tiny_weights)]) == 0


def test_no_overwrite_without_force(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "photo.dcae"
    out.write_bytes(b"precious")
    assert main(["compress", str(image), "-o", str(out), "--model", str(tiny_weights)]) == 1
    assert "--force" in _single_error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"precious"
    assert main(["compress", str(image), "-o", str(out), "--model", str(tiny_weights), "--force"]) == 0
    assert out.read_bytes()[:4] == b"DCAE"


def test_many_files_into_a_folder(tmp_path: Path, tiny_weights: Path) -> None:
    inputs = []
    for i in range(3):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(random_image(20 + i, 30, seed=i)).save(path)
        inputs.append(str(path))
    folder = tmp_path / "coded"
    assert main(["compress", *inputs, "-o", str(folder), "--model", str(tiny_weights)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["im0.dcae", "im1.dcae", "im2.dcae"]
    restored = tmp_path / "restored"
    files = [str(p) for p in sorted(folder.iterdir())]
    assert main(["decompress", *files, "-o", str(restored), "--model", str(tiny_weights)]) == 0
    assert len(list(restored.iterdir())) == 3
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compress", "{tmp}/missing.png"], "not found"),
        (["compress", "{junk}"], "cannot read image"),
        (["decompress", "{junk}"], "not a .dcae file"),
        (["decompress", "{tmp}/missing.dcae"], "not found"),
        (["info", "{junk}"], "not a .dcae file"),
        (["compress", "{image}", "--model", "no-such-model"], "no model named"),
        (["compress", "{image}", "--model", "{junk}"], "not a safetensors"),
        (["compress", "{image}", "--quality", "99"], "quality must lie in"),
    ],
)
def test_user_errors_are_one_line_and_exit_one(argv, message, image, tiny_weights, tmp_path, capsys) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00garbage" * 10)
    values = {"tmp": tmp_path, "junk": junk, "image": image}
    argv = [a.format(**values) for a in argv]
    if argv[0] == "compress" and "--model" not in argv:
        argv += ["--model", str(tiny_weights)]
    if argv[0] == "decompress":
        argv += ["--model", str(tiny_weights)]
    assert main(argv) == 1
    line = _single_error_line(capsys.readouterr().err)
    assert line.startswith("dcae: error:") and message in line


def test_wrong_model_is_refused(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    from conftest import TINY_VR, random_model

    from dcae.weights import save_weights

    other = tmp_path / "other.safetensors"
    save_weights(random_model(TINY_VR, seed=5), other)
    coded = tmp_path / "photo.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    assert main(["decompress", str(coded), "--model", str(other)]) == 1
    assert "other weights" in _single_error_line(capsys.readouterr().err)


def test_a_latent_checksum_mismatch_is_one_line(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    import dataclasses

    from dcae import bitstream

    coded = tmp_path / "photo.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    header, payload = bitstream.unpack(coded.read_bytes())
    # A valid file whose checksum disagrees with its latents: what a decoder that predicts
    # differently from the encoder finds.
    forged = dataclasses.replace(header, latent_checksum=header.latent_checksum ^ 1)
    coded.write_bytes(bitstream.pack(forged, payload))
    assert main(["decompress", str(coded), "-o", str(tmp_path / "out.png"), "--model", str(tiny_weights)]) == 1
    assert "fail their checksum" in _single_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out.png").exists()


def test_warnings_are_one_line_naming_the_file(tiny_weights: Path, tmp_path: Path, capsys) -> None:
    import numpy as np

    deep = tmp_path / "deep.png"
    Image.fromarray((np.arange(48 * 80).reshape(48, 80) * 17 % 65536).astype(np.uint16)).save(deep)
    assert main(["compress", str(deep), "-o", str(tmp_path / "deep.dcae"), "--model", str(tiny_weights)]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [f"dcae: warning: {deep} has more than 8 bits per sample; reducing to 8 bits"]


def test_console_script_runs_and_lists_models() -> None:
    result = subprocess.run([sys.executable, "-m", "dcae.cli", "models"], capture_output=True, text=True)
    assert result.returncode == 0 and "default" in result.stdout


def test_target_size_flag(tmp_path: Path, capsys) -> None:
    from conftest import KODAK

    out = tmp_path / "k.dcae"
    source = tmp_path / "crop.png"
    Image.open(KODAK / "kodim05.png").crop((0, 0, 320, 256)).save(source)
    assert main(["compress", str(source), "-o", str(out), "--target-size", "6k"]) == 0
    assert 0.97 * 6000 <= out.stat().st_size <= 6000 or "quality 5.000" in capsys.readouterr().out
    assert main(["compress", str(source), "-o", str(out), "--force", "--target-size", "12"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compress", str(source), "--target-size", "lots"])


def test_preview_info_text_and_roundtrip(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    coded = tmp_path / "p.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    preview = tmp_path / "preview.png"
    assert main(["decompress", str(coded), "-o", str(preview), "--model", str(tiny_weights), "--preview", "1"]) == 0
    assert Image.open(preview).size == (80, 48)
    assert main(["decompress", str(coded), "--model", str(tiny_weights), "--preview", "-1"]) == 1
    capsys.readouterr()
    assert main(["info", str(coded)]) == 0
    text = capsys.readouterr().out
    assert "header_bytes" in text and "44" in text
    saved = tmp_path / "round.png"
    argv = ["roundtrip", str(image), "--model", str(tiny_weights), "--quality", "2", "--save", str(saved)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "bpp" in out and "PSNR" in out and "encode" in out and saved.exists()


def test_eval_argument_errors(tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path / "none"), "--model", "none", "--out", str(tmp_path / "o")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--model", "none", "--codecs", "gif", "--out", str(tmp_path / "o")]) == 1
    assert "unknown codecs gif" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--model", "none", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("dcae: error:")
