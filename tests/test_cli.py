"""The dcae command line on good and bad input: exit codes, one-line errors, no data loss."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import kodak_path, needs_shared, random_image
from PIL import Image

import dcae
from dcae import bitstream
from dcae.cli import main
from dcae.commands import describe, terminal


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """An 80x48 smooth random PNG in the test's temporary folder."""
    path = tmp_path / "photo.png"
    Image.fromarray(random_image(48, 80)).save(path)
    return path


def _error_line(captured: str) -> str:
    """The one line a user mistake prints (tqdm may draw progress before it)."""
    assert "Traceback" not in captured
    lines = [line for line in captured.strip().splitlines() if line.startswith("dcae: error:")]
    assert len(lines) == 1, captured
    return lines[0]


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
    assert info["format_version"] == 2 and info["portable"] is True and len(info["latent_checksum"]) == 8
    specific = tmp_path / "specific.dcae"
    argv = ["compress", str(image), "-o", str(specific), "--model", str(tiny_weights), "--machine-specific"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["info", str(specific), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["portable"] is False
    assert main(["decompress", str(specific), "-o", str(tmp_path / "p.png"), "--model", str(tiny_weights)]) == 0


def test_no_overwrite_without_force(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "photo.dcae"
    out.write_bytes(b"precious")
    assert main(["compress", str(image), "-o", str(out), "--model", str(tiny_weights)]) == 1
    assert "--force" in _error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"precious"
    assert main(["compress", str(image), "-o", str(out), "--model", str(tiny_weights), "--force"]) == 0
    assert out.read_bytes()[:4] == b"DCAE"


def test_an_existing_output_is_found_before_any_work(image: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "photo.dcae").write_bytes(b"precious")

    def no_model(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr("dcae.codec.load_codec", no_model)
    assert main(["compress", str(image)]) == 1
    assert "exists" in _error_line(capsys.readouterr().err)


def test_an_output_never_replaces_its_input(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    original = image.read_bytes()
    assert main(["compress", str(image), "-o", str(image), "--force", "--model", str(tiny_weights)]) == 1
    assert "is an input" in _error_line(capsys.readouterr().err)
    link = tmp_path / "link.png"
    link.symlink_to(image)
    assert main(["compress", str(image), "-o", str(link), "--force", "--model", str(tiny_weights)]) == 1
    assert "is an input" in _error_line(capsys.readouterr().err)
    assert image.read_bytes() == original


def test_two_inputs_never_write_one_output(tmp_path: Path, tiny_weights: Path, capsys) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(random_image(16, 16, seed=len(folder))).save(tmp_path / folder / "x.png")
    argv = ["compress", str(tmp_path / "a/x.png"), str(tmp_path / "b/x.png"), "-o", str(tmp_path / "out"), "--force"]
    assert main([*argv, "--model", str(tiny_weights)]) == 1
    assert "would both be written" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_output_folders_are_made_only_where_meant(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    model = ["--model", str(tiny_weights)]
    assert main(["compress", str(image), "-o", f"{tmp_path / 'newdir'}{os.sep}", *model]) == 0
    assert (tmp_path / "newdir" / "photo.dcae").is_file()
    assert main(["compress", str(image), "-o", str(tmp_path / "typo" / "deeper" / "x.dcae"), *model]) == 1
    assert "does not exist" in _error_line(capsys.readouterr().err)
    assert main(["compress", str(image), "-o", f"{tmp_path / 'typo' / 'deeper'}{os.sep}", *model]) == 1
    assert "does not exist" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "typo").exists()


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


def _huge_png(path: Path, width: int, height: int) -> None:
    """A PNG header declaring a huge image (its pixel data is a stub: only the size is read)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compress", "{tmp}/missing.png"], "not found"),
        (["compress", "{junk}"], "cannot read image"),
        (["compress", "{huge}"], "above the limit"),
        (["decompress", "{junk}"], "not a .dcae file"),
        (["decompress", "{tmp}/missing.dcae"], "not found"),
        (["decompress", "{crafted}"], "too short"),
        (["info", "{junk}"], "not a .dcae file"),
        (["compress", "{image}", "--model", "no-such-model"], "no model named"),
        (["compress", "{image}", "--model", "{junk}"], "not a safetensors"),
        (["compress", "{image}", "--quality", "99"], "quality must lie in"),
        (["compress", "{image}", "--quality", "nan"], "not a finite number"),
        (["compress", "{image}", "--target-size", "1e400"], "not a usable size"),
        (["compress", "{image}", "--target-size", "infk"], "not a usable size"),
        (["compress", "{image}", "--target-bpp", "inf"], "not a finite number"),
        (["compress", "{image}", "--device", "bogus"], "unknown device"),
        (["compress", "{image}", "--no-such-flag"], "unrecognized arguments"),
        (["compress"], "the following arguments are required"),
        (["frobnicate"], "invalid choice"),
        (["decompress", "{coded}", "--preview", "-1"], "must be at least 0"),
    ],
)
def test_user_errors_are_one_line_and_exit_one(argv, message, image, tiny_weights, tmp_path, capsys) -> None:
    import dataclasses

    from dcae import bitstream

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00garbage" * 10)
    huge = tmp_path / "huge.png"
    _huge_png(huge, 12_000, 10_000)
    coded = tmp_path / "coded.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    header, payload = bitstream.unpack(coded.read_bytes())
    crafted = tmp_path / "crafted.dcae"  # 100-odd bytes claiming 8192x8192, CRC recomputed
    crafted.write_bytes(bitstream.pack(dataclasses.replace(header, width=8192, height=8192), payload))
    capsys.readouterr()
    values = {"tmp": tmp_path, "junk": junk, "image": image, "huge": huge, "coded": coded, "crafted": crafted}
    argv = [a.format(**values) for a in argv]
    if argv[0] in ("compress", "decompress") and len(argv) > 1 and "--model" not in argv:
        argv += ["--model", str(tiny_weights)]
    assert main(argv) == 1
    assert message in _error_line(capsys.readouterr().err)


def test_a_header_quality_outside_the_range_is_a_user_error(image, tiny_weights, tmp_path, capsys) -> None:
    import dataclasses

    from dcae import bitstream

    coded = tmp_path / "photo.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    header, payload = bitstream.unpack(coded.read_bytes())
    coded.write_bytes(bitstream.pack(dataclasses.replace(header, quality=9.0), payload))
    assert main(["decompress", str(coded), "--model", str(tiny_weights), "--force"]) == 1
    assert "quality" in _error_line(capsys.readouterr().err)


def test_usage_errors_exit_one_and_help_exits_zero(capsys) -> None:
    assert main(["compress", "--quality"]) == 1
    assert _error_line(capsys.readouterr().err).startswith("dcae: error: compress:")
    assert main(["--help"]) == 0
    assert "compress" in capsys.readouterr().out


def test_cuda_without_a_device_is_a_user_error(image: Path, tiny_weights: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert main(["compress", str(image), "--model", str(tiny_weights), "--device", "cuda"]) == 1
    assert "no CUDA device" in _error_line(capsys.readouterr().err)


def test_wrong_model_is_refused(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    from conftest import TINY_VR, random_model

    from dcae.weights import save_weights

    other = tmp_path / "other.safetensors"
    save_weights(random_model(TINY_VR, seed=5), other)
    coded = tmp_path / "photo.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    assert main(["decompress", str(coded), "--model", str(other), "-o", str(tmp_path / "out.png")]) == 1
    assert "other weights" in _error_line(capsys.readouterr().err)


def test_a_file_from_a_model_that_is_not_installed_names_it(image, tiny_weights, tmp_path, capsys) -> None:
    import dataclasses

    from dcae import bitstream

    coded = tmp_path / "photo.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    header, payload = bitstream.unpack(coded.read_bytes())
    for digest, message in ((b"\x11" * 8, "no released model wrote"), (bytes.fromhex("460bdf39e0e83e98"), "8d32f13")):
        coded.write_bytes(bitstream.pack(dataclasses.replace(header, digest=digest), payload))
        assert main(["decompress", str(coded), "--force"]) == 1
        assert message in _error_line(capsys.readouterr().err)


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
    assert "fail their checksum" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "out.png").exists()


def test_warnings_are_one_line_naming_the_file(tiny_weights: Path, tmp_path: Path, capsys) -> None:
    deep = tmp_path / "deep.png"
    Image.fromarray((np.arange(48 * 80).reshape(48, 80) * 17 % 65536).astype(np.uint16)).save(deep)
    assert main(["compress", str(deep), "-o", str(tmp_path / "deep.dcae"), "--model", str(tiny_weights)]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [f"dcae: warning: {deep} has more than 8 bits per sample; reducing to 8 bits"]


def test_sigterm_during_the_write_leaves_no_temporary_file(image, tiny_weights, tmp_path, capsys, monkeypatch):
    written = []

    def write_then_terminate(self: Path, data: bytes) -> int:
        written.append(self)
        with open(self, "wb") as handle:
            handle.write(data[:10])
        os.kill(os.getpid(), signal.SIGTERM)
        return 10

    monkeypatch.setattr(Path, "write_bytes", write_then_terminate)
    out = tmp_path / "photo.dcae"
    assert main(["compress", str(image), "-o", str(out), "--model", str(tiny_weights)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert written and not written[0].exists() and not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_console_script_runs_and_lists_models() -> None:
    result = subprocess.run([sys.executable, "-m", "dcae.cli", "models"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "compact-mse-v1 (default)" in result.stdout and "66,505 training steps" in result.stdout


@needs_shared
def test_target_size_flag_shows_progress(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "k.dcae"
    source = tmp_path / "crop.png"
    Image.open(kodak_path("kodim05.png")).crop((0, 0, 320, 256)).save(source)
    assert main(["compress", str(source), "-o", str(out), "--target-size", "6k"]) == 0
    assert capsys.readouterr().err == ""  # no bar off a terminal
    assert 0.97 * 6000 <= out.stat().st_size <= 6000
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(terminal, "PROGRESS_DELAY", 0.0)
    assert main(["compress", str(source), "-o", str(out), "--force", "--target-size", "6k"]) == 0
    bar = capsys.readouterr().err
    # one bar through the analysis and the trial encodes (its count is the whole operation's)
    assert "crop.png: analysis" in bar and "crop.png: entropy coding" in bar
    assert len({total for total in re.findall(r"\d+/(\d+) \[", bar)}) == 1
    monkeypatch.undo()
    assert main(["compress", str(source), "-o", str(out), "--force", "--target-size", "12"]) == 1
    assert "cannot reach" in _error_line(capsys.readouterr().err)
    assert main(["compress", str(source), "--target-size", "lots"]) == 1
    assert "not a size" in _error_line(capsys.readouterr().err)


def test_decompress_shows_one_bar_through_decoding_and_writing(image, tiny_weights, tmp_path, capsys, monkeypatch):
    coded = tmp_path / "p.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(terminal, "PROGRESS_DELAY", 0.0)
    capsys.readouterr()
    assert main(["decompress", str(coded), "-o", str(tmp_path / "p.png"), "--model", str(tiny_weights)]) == 0
    bar = capsys.readouterr().err
    assert all(f"p.dcae: {stage}" in bar for stage in ("entropy decoding", "synthesis", "writing"))


def test_an_output_that_appears_while_a_command_runs_is_left_alone(image, tiny_weights, tmp_path, capsys, monkeypatch):
    from dcae.codec import Codec

    out = tmp_path / "late.dcae"
    original = Codec.compress

    def compress_while_someone_writes_the_output(self, *args, **kwargs):
        out.write_bytes(b"someone else's file")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Codec, "compress", compress_while_someone_writes_the_output)
    assert main(["compress", str(image), "-o", str(out), "--model", str(tiny_weights)]) == 1
    assert "appeared while dcae was working" in _error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left
    assert main(["compress", str(image), "-o", str(out), "--model", str(tiny_weights), "--force"]) == 0
    assert out.read_bytes().startswith(b"DCAE")


@pytest.mark.slow
def test_of_several_processes_writing_one_output_exactly_one_succeeds(image, tiny_weights, tmp_path):
    out = tmp_path / "one.dcae"
    command = [sys.executable, "-m", "dcae.cli", "compress", str(image), "-o", str(out), "--model", str(tiny_weights)]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    statuses = sorted(run.wait(timeout=300) for run in runs)
    assert statuses == [0, 1, 1, 1]
    assert bitstream.unpack(out.read_bytes())[0].width == 80


def test_decoded_images_never_take_the_name_of_the_source_photo(image, tiny_weights, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(image.read_bytes())
    assert main(["compress", str(photo), "--model", str(tiny_weights)]) == 0
    assert main(["decompress", str(tmp_path / "photo.dcae"), "--preview", "1", "--model", str(tiny_weights)]) == 0
    assert main(["decompress", str(tmp_path / "photo.dcae"), "--model", str(tiny_weights)]) == 0
    assert photo.read_bytes() == image.read_bytes()
    assert (tmp_path / "photo.preview-1.png").is_file() and (tmp_path / "photo.decoded.png").is_file()
    capsys.readouterr()
    assert main(["decompress", str(tmp_path / "photo.dcae"), "--model", str(tiny_weights)]) == 1
    assert "photo.decoded.png exists" in _error_line(capsys.readouterr().err)


def test_an_unwritable_output_folder_is_a_mistake_found_before_any_work(
    image, tiny_weights, tmp_path, capsys, monkeypatch
):
    from dcae import codec, outputs

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(codec, "load_codec", lambda *a, **k: pytest.fail("work started"))
    assert main(["compress", str(image), "-o", str(tmp_path / "x.dcae"), "--model", str(tiny_weights)]) == 1
    assert _error_line(capsys.readouterr().err) == f"dcae: error: cannot write into {tmp_path}: Permission denied"


def test_preview_info_text_and_roundtrip(image: Path, tiny_weights: Path, tmp_path: Path, capsys) -> None:
    coded = tmp_path / "p.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    preview = tmp_path / "preview.png"
    assert main(["decompress", str(coded), "-o", str(preview), "--model", str(tiny_weights), "--preview", "1"]) == 0
    assert Image.open(preview).size == (80, 48)
    capsys.readouterr()
    assert main(["info", str(coded)]) == 0
    fields = dict(line.split(None, 1) for line in capsys.readouterr().out.strip().splitlines())
    assert fields["header_bytes"] == "48" and fields["width"] == "80" and fields["format_version"] == "2"
    saved = tmp_path / "round.png"
    argv = ["roundtrip", str(image), "--model", str(tiny_weights), "--quality", "2", "--save", str(saved)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "bpp" in out and "PSNR" in out and "encode" in out and saved.exists()
    assert main([*argv[:-2], "--save", str(image), "--force"]) == 1  # never over the input
    assert "is an input" in _error_line(capsys.readouterr().err)


def test_eval_argument_errors(tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path / "none"), "--model", "none", "--out", str(tmp_path / "o")]) == 1
    assert "not found" in _error_line(capsys.readouterr().err)
    assert main(["eval", str(tmp_path), "--model", "none", "--codecs", "gif", "--out", str(tmp_path / "o")]) == 1
    assert "unknown codecs gif" in _error_line(capsys.readouterr().err)
    assert main(["eval", str(tmp_path), "--model", "none", "--out", str(tmp_path / "o")]) == 1
    assert "no images" in _error_line(capsys.readouterr().err)


def test_mistakes_are_reported_even_when_training_cannot_be_imported(image, monkeypatch, capsys) -> None:
    """On Python 3.10 the training package needs tomli; reporting a user's mistake in another
    command must never depend on it (it once raised inside the except clause)."""
    for name in ("dcae.training", "tomllib", "tomli"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["compress", str(image.parent / "missing.png")]) == 1
    assert "not found" in _error_line(capsys.readouterr().err)


def test_info_and_models_never_import_torch() -> None:
    """The light commands start in a fraction of a second because PyTorch is not imported."""
    golden = Path(__file__).parent / "golden" / "compact-mse-v1" / "portable-q2.5.dcae"
    script = (
        "import sys\nfrom dcae.cli import main\n"
        f"assert main(['models']) == 0 and main(['info', {str(golden)!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_thread_settings_are_honoured(image: Path, tiny_weights: Path, monkeypatch, capsys) -> None:
    import torch

    seen = []
    original = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(n) or original(n))
    argv = ["roundtrip", str(image), "--model", str(tiny_weights)]
    before = torch.get_num_threads()
    assert main([*argv, "--threads", "1"]) == 0
    monkeypatch.setenv("DCAE_THREADS", "2")
    assert main(argv) == 0
    assert seen[0::2] == [1, 2] and torch.get_num_threads() == before  # set for the command, then restored
    assert main([*argv, "--threads", "0"]) == 1  # a whole number of at least 1
    assert "must be at least 1" in _error_line(capsys.readouterr().err)
    assert main([*argv, "--threads", "1000"]) == 1
    assert "more than the" in _error_line(capsys.readouterr().err)


@pytest.mark.slow
def test_sigterm_stops_a_batch_of_workers_at_once_and_leaves_no_temporary_file(tiny_weights, tmp_path):
    import time

    folder = tmp_path / "in"
    folder.mkdir()
    photo = random_image(384, 512)
    for i in range(60):
        Image.fromarray(photo).save(folder / f"{i:02d}.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dcae.cli", "compress", *sorted(map(str, folder.iterdir()))]
    command += ["-o", f"{out}/", "--model", str(tiny_weights), "--jobs", "2", "--threads", "2"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out.is_dir() and any(out.glob("*.dcae"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 130
    assert "dcae: interrupted" in run.stderr.read()
    assert len(list(out.glob("*.dcae"))) < 60  # the workers stopped with the command
    assert [p.name for p in out.iterdir() if not p.name.endswith(".dcae")] == []  # no temporary file


def test_a_bug_is_one_line_with_status_2_and_its_traceback_on_request(monkeypatch, capsys, tmp_path) -> None:
    def broken(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(describe, "read_metadata", broken)
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "dcae: internal error: RuntimeError: boom (a bug in dcae; DCAE_DEBUG=1 shows where)"
    ]
    monkeypatch.setenv("DCAE_DEBUG", "1")
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and 'raise RuntimeError("boom")' in err


def test_mistakes_reported_by_the_library_are_user_errors(tmp_path, capsys) -> None:
    from dcae.codec import Codec, CodecOptions
    from dcae.config import resolve_config
    from dcae.errors import DcaeError

    for mistake in (
        lambda: CodecOptions(entropy_chunk=3),
        lambda: CodecOptions(max_pixels=-1),
        lambda: resolve_config("nosuch"),
        lambda: resolve_config({"M": 0}),
        lambda: Codec(dcae.build_model("tiny"), options=CodecOptions(tile=100)),
        lambda: Codec(dcae.build_model("tiny")).compress_batch([random_image(64, 64), random_image(64, 128)]),
    ):
        with pytest.raises(DcaeError):
            mistake()
    config = tmp_path / "bad.toml"
    config.write_text(f'train_data = "{tmp_path}"\nlambdas = [0.01]\n[model]\nM = 0\n')
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    assert "M must hold whole numbers" in _error_line(capsys.readouterr().err)


def test_small_defects_a_new_user_met(tmp_path, capsys, image, tiny_weights) -> None:
    loop = tmp_path / "loop.dcae"
    loop.symlink_to(tmp_path / "other.dcae")
    (tmp_path / "other.dcae").symlink_to(loop)
    assert main(["decompress", str(loop)]) == 1
    assert _error_line(capsys.readouterr().err) == f"dcae: error: {loop} is a loop of symbolic links"
    assert main(["models", "--bogus"]) == 1
    assert _error_line(capsys.readouterr().err).startswith("dcae: error: unrecognized arguments: --bogus")
    coded = tmp_path / "x.dcae"
    assert main(["compress", str(image), "-o", str(coded), "--model", str(tiny_weights)]) == 0
    capsys.readouterr()
    assert main(["info", str(coded)]) == 0
    bpp = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("bpp"))
    assert re.fullmatch(r"bpp\s+\d+\.\d{1,4}", bpp)


def test_a_foreign_file_is_refused_before_pytorch_loads(tmp_path) -> None:
    junk = tmp_path / "junk.dcae"
    junk.write_bytes(b"not a dcae file at all")
    script = (
        f"import sys; from dcae.cli import main; code = main(['decompress', {str(junk)!r}]); "
        "print('torch' in sys.modules, code)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "1"] and "magic" in result.stderr
