"""Training: learning, exact resume, DDP on CPU, and clear errors for bad set-ups."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_image
from PIL import Image
from safetensors.torch import load_file

from dcae.cli import main
from dcae.training import ConfigError, DataError, RandomCropDataset, ResumableSampler, Trainer, load_train_config
from dcae.training.data import contour_pixels, sharp_steps
from dcae.training.trainer import learning_rate_factor


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """A folder of six smooth random PNG images (one smaller than a training patch) and one broken
    JPEG, made once for the module."""
    folder = tmp_path_factory.mktemp("images")
    for i in range(6):
        size = (40, 50) if i == 0 else (96 + 8 * i, 120)  # one image smaller than the patch
        Image.fromarray(random_image(*size, seed=i)).save(folder / f"im{i}.png")
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    return folder


def _config(folder: Path, out: Path, **changes):
    values = dict(
        model="tiny",
        lambdas=[0.01],
        train_data=str(folder),
        patch=64,
        batch_size=2,
        workers=0,
        steps=6,
        lr=1e-3,
        out=str(out),
        log_every=1,
        seed=3,
        val_data=str(folder),
        val_images=1,
        val_every=3,
    )
    values.update(changes)
    return load_train_config(None, values)


def test_tiny_model_learns(image_folder: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="unreadable"):
        trainer = Trainer(_config(image_folder, tmp_path / "run", steps=40, lr=3e-3, val_every=40))
    trainer.run()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("loss")]) for r in rows[1:]]
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8
    meta = json.loads((tmp_path / "run" / "latest.json").read_text())
    assert meta["step"] == 40 and meta["train_config"]["lambdas"] == [0.01] and meta["git_commit"]
    assert (tmp_path / "run" / "best.safetensors").exists()


def test_resume_equals_an_uninterrupted_run(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    straight = tmp_path / "straight"
    Trainer(_config(image_folder, straight, steps=6)).run()
    split = tmp_path / "split"
    Trainer(_config(image_folder, split, steps=3)).run()
    Trainer(_config(image_folder, split, steps=6), resume=True).run()
    a = load_file(straight / "latest.safetensors")
    b = load_file(split / "latest.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resume_keeps_the_runs_origin_and_every_command(image_folder: Path, tmp_path: Path) -> None:
    """A resume command names no --init-from; the weights must still record where the run began."""
    import warnings

    warnings.simplefilter("ignore")
    Trainer(_config(image_folder, tmp_path / "base", steps=2)).run()
    origin = str(tmp_path / "base" / "latest.safetensors")
    run = tmp_path / "continued"
    Trainer(_config(image_folder, run, steps=2, init_from=origin), command="dcae train --init-from x").run()
    Trainer(_config(image_folder, run, steps=3), resume=True, command="dcae train --resume").run()
    # A config that has since moved on to newer weights resumes the run without rewriting its origin.
    newer = tmp_path / "newer.safetensors"
    newer.write_bytes(Path(origin).read_bytes())
    moved_on = _config(image_folder, run, steps=4, init_from=str(newer))
    Trainer(moved_on, resume=True, command="dcae train c --resume").run()
    meta = json.loads((run / "latest.json").read_text())
    assert meta["step"] == 4 and meta["train_config"]["init_from"] == origin
    assert meta["commands"] == ["dcae train --init-from x", "dcae train --resume", "dcae train c --resume"]
    assert meta["command"] == "dcae train c --resume"
    assert json.loads((run / "train_config.json").read_text())["init_from"] == origin


def test_variable_rate_training_draws_lambdas(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    cfg = _config(
        image_folder,
        tmp_path / "vr",
        model={**_tiny_dict(), "num_rate_points": 3},
        lambdas=[0.002, 0.01, 0.05],
        lambda_sampling="image",
        steps=2,
    )
    trainer = Trainer(cfg)
    quality, lmbda = trainer.draw_qualities(2)
    assert quality.shape == (2,)
    assert all(min(abs(v - t) for t in (0.002, 0.01, 0.05)) < 1e-8 for v in lmbda.tolist())
    assert torch.allclose(lmbda, torch.tensor([0.002, 0.01, 0.05])[quality.long()])
    trainer.run()
    with pytest.raises(ConfigError, match="rate points"):
        Trainer(_config(image_folder, tmp_path / "bad", model={**_tiny_dict(), "num_rate_points": 3}))


def _tiny_dict() -> dict:
    import dcae

    return dcae.PRESETS["tiny"].to_dict()


def test_sampler_is_resumable_and_shards() -> None:
    full = ResumableSampler(5, seed=1)
    stream = [x for _, x in zip(range(23), iter(full))]
    assert [x for _, x in zip(range(13), iter(ResumableSampler(5, seed=1, start=10)))] == stream[10:23]
    ranks = [list(x for _, x in zip(range(6), iter(ResumableSampler(5, 1, rank=r, world=2)))) for r in (0, 1)]
    merged = [item for pair in zip(*ranks) for item in pair]
    assert merged == stream[:12]


def test_dataset_handles_small_images(image_folder: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    dataset = RandomCropDataset(image_folder, patch=64, downscale=(0.5, 1.0))
    crops = [dataset[(i, i)] for i in range(len(dataset))]
    assert all(c.shape == (3, 64, 64) and 0 <= float(c.min()) and float(c.max()) <= 1 for c in crops)
    assert torch.equal(dataset[(2, 7)], dataset[(2, 7)])


def test_crop_candidates_lean_towards_sharp_edges(tmp_path: Path) -> None:
    # A flat photo with one sharp-edged square in a corner: uniform crops seldom hold it.
    pixels = np.full((256, 256, 3), 120, dtype=np.uint8)
    pixels[16:48, 16:48] = 250
    Image.fromarray(pixels).save(tmp_path / "square.png")
    uniform = RandomCropDataset(tmp_path, patch=64)
    leaning = RandomCropDataset(tmp_path, patch=64, candidates=8)

    def edges(crop: torch.Tensor) -> int:
        return sharp_steps(crop.permute(1, 2, 0).mul(255).round().byte().numpy())

    seeds = range(40)
    # The first candidate is the uniform crop: the kept one holds at least as many edges, always.
    assert all(edges(leaning[(0, s)]) >= edges(uniform[(0, s)]) for s in seeds)
    with_edges = [sum(edges(d[(0, s)]) > 0 for s in seeds) for d in (uniform, leaning)]
    assert with_edges[1] > with_edges[0]
    assert torch.equal(leaning[(0, 3)], leaning[(0, 3)])  # still a function of the seed
    with pytest.raises(DataError, match="crop candidates"):
        RandomCropDataset(tmp_path, patch=64, candidates=0)


def test_contour_pixels_tell_contours_from_texture() -> None:
    rng = np.random.default_rng(5)
    # A straight step between two flat halves: every pixel beside it is on a contour.
    halves = np.full((64, 64, 3), 40, dtype=np.uint8)
    halves[:, 32:] = 220
    mask = contour_pixels(halves)
    assert mask[:, 31:33].all() and mask.sum() == 2 * 64
    # High-contrast noise: sharp steps everywhere, but no orientation: texture, not contour.
    noise = np.repeat(rng.choice([30, 230], size=(64, 64, 1)).astype(np.uint8), 3, axis=2)
    assert sharp_steps(noise) > 1000 and contour_pixels(noise).mean() < 0.02
    # A soft ramp has orientation but no sharp step.
    ramp = np.repeat(np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], 64, 0), 3, 2)
    assert not contour_pixels(ramp).any()


def test_crop_lean_contours_prefers_a_contour_to_texture(tmp_path: Path) -> None:
    # Texture in the top left quarter, one long step in the bottom right: edge counting picks the
    # texture, contour counting the step.
    rng = np.random.default_rng(6)
    pixels = np.full((256, 256, 3), 120, dtype=np.uint8)
    pixels[:96, :96] = rng.choice([20, 230], size=(96, 96, 1)).astype(np.uint8)
    pixels[160:, 208:] = 250
    Image.fromarray(pixels).save(tmp_path / "mixed.png")
    edges = RandomCropDataset(tmp_path, patch=64, candidates=8)
    contours = RandomCropDataset(tmp_path, patch=64, candidates=8, lean="contours")

    def on_contours(crop: torch.Tensor) -> int:
        return int(contour_pixels(crop.permute(1, 2, 0).mul(255).round().byte().numpy()).sum())

    seeds = range(40)
    # Both draw the same candidates from a seed: the contour lean's pick holds at least as many
    # contour pixels, and more of them over the seeds.
    assert all(on_contours(contours[(0, s)]) >= on_contours(edges[(0, s)]) for s in seeds)
    totals = [sum(on_contours(dataset[(0, s)]) for s in seeds) for dataset in (edges, contours)]
    assert totals[1] > totals[0]
    with pytest.raises(DataError, match="crop lean"):
        RandomCropDataset(tmp_path, patch=64, candidates=2, lean="corners")


def test_clear_errors(tmp_path: Path, image_folder: Path, capsys) -> None:
    with pytest.raises(DataError, match="not found"):
        RandomCropDataset(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        RandomCropDataset(empty)
    with pytest.raises(ConfigError, match="patch must be"):
        _config(image_folder, tmp_path, patch=100)
    with pytest.raises(ConfigError, match="unknown training config keys"):
        load_train_config(None, {"train_data": "x", "learning_rate": 1})
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("lambdas = [0.1,\n")
    assert main(["train", str(bad_toml)]) == 1
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["train", "--train-data", str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "no images" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_identical(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "dcae.cli",
        "train",
        "--model",
        "tiny",
        "--lambdas",
        "0.01",
        "--train-data",
        str(image_folder),
        "--patch",
        "64",
        "--batch-size",
        "2",
        "--steps",
        "4",
        "--workers",
        "0",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads((out / "latest.json").read_text())
    assert meta["world_size"] == 2 and meta["step"] == 4
    assert len(meta["rank_digests"]) == 2 and len(set(meta["rank_digests"])) == 1


def test_time_limit_stops_with_a_checkpoint(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    trainer = Trainer(_config(image_folder, tmp_path / "t", steps=10_000, time_limit_minutes=0.05, val_every=10_000))
    trainer.run()
    meta = json.loads((tmp_path / "t" / "latest.json").read_text())
    assert 0 < meta["step"] < 10_000


def _logged_lrs(run: Path) -> dict[int, float]:
    rows = (run / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    return {int(r.split(",")[0]): float(r.split(",")[header.index("lr")]) for r in rows[1:]}


def test_resumed_run_follows_the_new_schedule(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    run = tmp_path / "sched"
    Trainer(_config(image_folder, run, steps=3, lr_milestones=[100], lr_gamma=0.1)).run()
    Trainer(_config(image_folder, run, steps=6, lr_milestones=[4], lr_gamma=0.5), resume=True).run()
    lrs = _logged_lrs(run)
    assert lrs[3] == pytest.approx(1e-3) and lrs[6] == pytest.approx(5e-4)


def test_learning_rate_warms_up_then_decays_at_milestones(image_folder: Path, tmp_path: Path) -> None:
    cfg = _config(image_folder, tmp_path / "w", lr_warmup_steps=4, lr_milestones=[6], lr_gamma=0.5)
    factors = [learning_rate_factor(step, cfg) for step in range(8)]
    assert factors == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.5, 0.5]
    assert learning_rate_factor(0, _config(image_folder, tmp_path / "w")) == 1.0  # no warm-up by default
    with pytest.raises(ConfigError, match="lr_warmup_steps"):
        _config(image_folder, tmp_path / "w", lr_warmup_steps=-1)


@pytest.mark.filterwarnings("ignore")
def test_a_run_warms_up_its_learning_rate(image_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "warm"
    Trainer(_config(image_folder, run, steps=5, lr_warmup_steps=3)).run()
    lrs = _logged_lrs(run)  # the rate each logged step leaves for the next one
    assert lrs[1] == pytest.approx(2e-3 / 3) and lrs[2] == pytest.approx(1e-3) == lrs[5]


@pytest.mark.filterwarnings("ignore")
def test_a_run_saved_with_a_step_decay_scheduler_resumes(image_folder: Path, tmp_path: Path) -> None:
    """Runs saved before warm-up existed kept PyTorch's MultiStepLR state; they resume at their step."""
    run = tmp_path / "old"
    Trainer(_config(image_folder, run, steps=3)).run()
    state_path = run / "latest.state.pt"
    state = torch.load(state_path, weights_only=True)
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    old = torch.optim.lr_scheduler.MultiStepLR(optimizer, [100], 0.1)
    for _ in range(3):
        optimizer.step()
        old.step()
    state["scheduler"] = old.state_dict()
    torch.save(state, state_path)
    Trainer(_config(image_folder, run, steps=6, lr_milestones=[4], lr_gamma=0.5), resume=True).run()
    lrs = _logged_lrs(run)
    assert lrs[3] == pytest.approx(1e-3) and lrs[4] == pytest.approx(5e-4) == lrs[6]


def test_a_signal_to_the_whole_process_group_stops_training_cleanly(image_folder: Path, tmp_path: Path) -> None:
    """Ctrl-C and ``pkill -f`` reach the DataLoader workers too; the run must still end cleanly."""
    import signal
    import time

    out = tmp_path / "group"
    command = [sys.executable, "-m", "dcae.cli", "train", "--model", "tiny", "--lambdas", "0.01"]
    command += ["--train-data", str(image_folder), "--val-data", "", "--patch", "64", "--batch-size", "2"]
    command += ["--workers", "2", "--threads", "1", "--steps", "100000", "--log-every", "1", "--out", str(out)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not ((out / "log.csv").exists() and len((out / "log.csv").read_text().splitlines()) > 3):
            assert process.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGTERM)  # the main process and its loader workers alike
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-500:]
    assert "stopped by a signal" in stdout + stderr
    meta = json.loads((out / "latest.json").read_text())
    assert meta["step"] >= 3
    recorded = shlex.split(meta["command"])  # the command pastes back, empty arguments included
    assert recorded[:2] == ["dcae", "train"] and recorded[recorded.index("--val-data") + 1] == ""


def test_a_signal_stops_training_with_a_checkpoint(image_folder: Path, tmp_path: Path, monkeypatch) -> None:
    import signal
    import warnings

    warnings.simplefilter("ignore")
    trainer = Trainer(_config(image_folder, tmp_path / "sig", steps=1_000, val_every=1_000))
    real_step = trainer.train_step

    def step_then_signal(batch):
        result = real_step(batch)
        if trainer.step == 4:
            signal.raise_signal(signal.SIGTERM)
        return result

    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    trainer.run()
    stopped_at = json.loads((tmp_path / "sig" / "latest.json").read_text())["step"]
    # Python runs the handler at the next bytecode boundary: the stop comes within a step.
    assert 4 <= stopped_at <= 5 and trainer.step == stopped_at
    assert (tmp_path / "sig" / "latest.state.pt").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed afterwards
    resumed = Trainer(_config(image_folder, tmp_path / "sig", steps=8, val_every=1_000), resume=True)
    assert resumed.step == stopped_at


def test_a_nan_loss_stops_training_before_any_checkpoint_holds_it(
    image_folder: Path, tmp_path: Path, monkeypatch
) -> None:
    import warnings

    warnings.simplefilter("ignore")
    out = tmp_path / "nan"
    # Metrics are read every 4th step and at checkpoints; the NaN arrives at step 6, between logs.
    trainer = Trainer(_config(image_folder, out, steps=20, log_every=4, val_every=1_000, checkpoint_minutes=1e-9))
    real_step = trainer.train_step

    def poisoned_step(batch):
        if trainer.step == 5:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))
        return real_step(batch)

    monkeypatch.setattr(trainer, "train_step", poisoned_step)
    with pytest.raises(FloatingPointError, match="loss became nan at step 6"):
        trainer.run()
    saved = load_file(out / "latest.safetensors")
    assert json.loads((out / "latest.json").read_text())["step"] == 5
    assert all(torch.isfinite(t.float()).all() for t in saved.values())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_training_step_on_cuda_never_waits_for_the_device(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    trainer = Trainer(
        _config(
            image_folder,
            tmp_path / "cuda",
            device="cuda",
            lambdas=[0.01, 0.02, 0.05],
            model={**_tiny_dict(), "num_rate_points": 3},
        )
    )
    batch = torch.rand(2, 3, 64, 64).pin_memory()
    trainer.train_step(batch)  # the first step may synchronise while CUDA initialises
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        metrics = trainer.train_step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert math.isfinite(trainer.read_metrics(metrics)["loss"])


def test_holdout_is_a_fixed_disjoint_split_used_for_validation(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    from dcae.training import split_holdout

    warnings.simplefilter("ignore")
    train, held = split_holdout(image_folder, 2)
    assert len(held) == 2 and not set(train) & set(held)
    assert sorted(train + held) == sorted(p for p in image_folder.iterdir())
    assert split_holdout(image_folder, 2) == (train, held)  # a function of the file names only
    with pytest.raises(DataError, match="hold back"):
        split_holdout(image_folder, 7)
    trainer = Trainer(_config(image_folder, tmp_path / "h", val_data="", holdout=2, val_images=5, steps=1))
    assert set(trainer.dataset.paths) <= set(train)
    assert len(trainer.val_images) == sum(1 for p in held if p.name != "broken.jpg")
    assert trainer.run()["points"]  # validated on the held-back photos


def test_cpu_budget_stops_the_run_and_counts_over_resumes(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    cfg = _config(image_folder, tmp_path / "c", steps=10_000, cpu_budget_minutes=0.02, val_every=10_000)
    trainer = Trainer(cfg)
    trainer.run()
    meta = json.loads((tmp_path / "c" / "latest.json").read_text())
    assert 0 < meta["step"] < 10_000 and meta["cpu_seconds"] >= 1.2
    again = Trainer(cfg, resume=True)  # the budget is already spent: no more steps
    assert again.cpu_seconds >= 1.2
    again.run()
    assert json.loads((tmp_path / "c" / "latest.json").read_text())["step"] == meta["step"]


def test_ema_weights_are_the_moving_average(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    from safetensors.torch import load_file

    warnings.simplefilter("ignore")
    trainer = Trainer(_config(image_folder, tmp_path / "e", steps=2, ema_decay=0.9, val_every=10_000))
    loader = iter(trainer.loader())
    trainer.train_step(next(loader))
    first = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_step(next(loader))
    trainer.save_checkpoint()
    second = trainer.model.state_dict()
    ema = load_file(str(tmp_path / "e" / "ema.safetensors"))
    name = "g_a.0.conv.weight"
    assert not torch.equal(first[name], second[name])
    assert torch.allclose(ema[name], 0.9 * first[name] + 0.1 * second[name], atol=1e-6)
    resumed = Trainer(_config(image_folder, tmp_path / "e", steps=2, ema_decay=0.9), resume=True)
    assert torch.equal(resumed.shipped_model.state_dict()[name], ema[name])


def test_lambda_weights_set_how_often_each_rate_point_is_drawn(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    cfg = _config(
        image_folder,
        tmp_path / "w",
        model={**_tiny_dict(), "num_rate_points": 3},
        lambdas=[0.002, 0.01, 0.05],
        lambda_sampling="image",
        lambda_weights=[0, 1, 3],
    )
    trainer = Trainer(cfg)
    drawn = []
    for step in range(50):
        trainer.step = step
        drawn += trainer.draw_qualities(4)[0].long().tolist()
    counts = [drawn.count(i) for i in range(3)]
    assert counts[0] == 0 and counts[2] > 2 * counts[1] > 0
    with pytest.raises(ConfigError, match="lambda_weights"):
        _config(image_folder, tmp_path / "x", lambda_weights=[1, 2])


@pytest.mark.filterwarnings("ignore")
def test_lambda_weights_follow_their_lambdas_when_given_unsorted(image_folder: Path, tmp_path: Path) -> None:
    cfg = _config(
        image_folder,
        tmp_path / "u",
        model={**_tiny_dict(), "num_rate_points": 3},
        lambdas=[0.05, 0.002, 0.01],
        lambda_sampling="image",
        lambda_weights=[1, 0, 0],  # all the weight on 0.05
    )
    trainer = Trainer(cfg)
    drawn = set()
    for step in range(20):
        trainer.step = step
        drawn |= set(trainer.draw_qualities(4)[1].tolist())
    assert drawn == {torch.tensor(0.05).item()}  # the float32 of 0.05
    assert trainer.cfg.lambdas == [0.002, 0.01, 0.05] and trainer.cfg.lambda_weights == [0, 0, 1]


@pytest.mark.filterwarnings("ignore")
def test_force_checks_everything_before_it_removes_a_run(image_folder: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    Trainer(_config(image_folder, run, steps=1, val_every=10_000)).run()
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    capsys.readouterr()
    common = ["train", "--out", str(run), "--force", "--lambdas", "0.01", "--patch", "64", "--workers", "0"]
    for mistake, message in (
        (["--model", "nosuch", "--train-data", str(image_folder)], "unknown model preset 'nosuch'"),
        (["--model", "tiny", "--train-data", str(tmp_path / "nowhere")], "not found"),
        (["--model", "tiny", "--train-data", str(image_folder), "--val-data", str(tmp_path / "nowhere")], "not found"),
        (["--model", "tiny", "--train-data", str(image_folder), "--init-from", str(tmp_path / "no.safetensors")], ""),
    ):
        assert main([*common, *mistake]) == 1
        err = capsys.readouterr().err
        assert err.startswith("dcae: error:") and message in err and "internal error" not in err
        assert {path.name: path.read_bytes() for path in run.iterdir()} == before


def test_an_existing_run_is_never_overwritten_or_resumed_by_mistake(image_folder: Path, tmp_path: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    run = tmp_path / "run"
    Trainer(_config(image_folder, run, steps=2, val_every=10_000)).run()
    latest = (run / "latest.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="holds a training run; use --resume"):
        Trainer(_config(image_folder, run, steps=2))
    assert (run / "latest.safetensors").read_bytes() == latest
    with pytest.raises(ConfigError, match="nothing to resume"):
        Trainer(_config(image_folder, tmp_path / "typo", steps=2), resume=True)
    Trainer(_config(image_folder, run, steps=1, val_every=10_000), replace=True).run()
    assert json.loads((run / "latest.json").read_text())["step"] == 1
    assert len((run / "log.csv").read_text().splitlines()) == 2  # the old run's log went with it
    assert main(["train", "--train-data", str(image_folder), "--out", str(run), "--model", "tiny"]) == 1


def test_a_decompression_bomb_among_training_photos_is_skipped(image_folder: Path, tmp_path: Path) -> None:
    import shutil
    import struct
    import zlib

    folder = tmp_path / "photos"
    shutil.copytree(image_folder, folder)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)  # 400 MP declared, a few bytes stored
    (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.warns(UserWarning, match="bomb.png"):
        dataset = RandomCropDataset(folder, patch=64)
    assert folder / "bomb.png" not in dataset.paths and len(dataset) == 6


def test_every_shipped_config_is_valid() -> None:
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
    assert configs, "the repository's configs/ folder is missing"
    for path in configs:
        config = load_train_config(path)
        assert config.holdout > 0 or config.val_data, f"{path.name} would validate on nothing held back"


def test_every_config_field_is_a_flag_checked_against_its_declaration(image_folder: Path, tmp_path: Path, capsys):
    from dataclasses import fields

    from dcae.training import TrainConfig

    assert main(["train", "--help"]) == 0
    flags = set(re.findall(r"--[a-z-]+", capsys.readouterr().out))
    assert {f"--{item.name.replace('_', '-')}" for item in fields(TrainConfig)} <= flags
    base = ["train", "--train-data", str(image_folder), "--out", str(tmp_path / "r"), "--model", "tiny"]
    for flags, message in (
        (["--ema-decay", "1"], "ema_decay must be a number >= 0 and < 1"),
        (["--lambdas", "0.01", "-1"], "lambdas must be numbers > 0"),
        (["--downscale", "0.5", "2"], "downscale must be two numbers > 0 and <= 1"),
        (["--amp", "fp8"], "invalid choice: 'fp8'"),
    ):
        assert main([*base, *flags]) == 1
        assert message in capsys.readouterr().err
