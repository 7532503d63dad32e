"""The training loop: one CPU, one GPU, or many GPUs through torchrun and DDP.

Where the run executes is :mod:`.distributed`, its folder on disk :mod:`.checkpoints`, its logs
:mod:`.logs`; this module steps the optimisers and decides when to log, validate, checkpoint
and stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import __version__
from ..config import resolve_config
from ..losses import RateDistortionLoss
from ..model import DCAE
from ..weights import load_weights
from .checkpoints import (
    check_run_folder,
    clear_run_folder,
    git_commit,
    load_state,
    read_resume_point,
    save_state,
    save_weights_and_card,
)
from .config import ConfigError, TrainConfig
from .data import RandomCropDataset, ResumableSampler, split_holdout
from .distributed import barrier, check_ranks_agree, follow_rank_zero, place
from .latent_cache import (
    CachedLatents,
    build_latent_cache,
    cache_key,
    load_latent_cache,
    read_cache_key,
    save_latent_cache,
)
from .logs import RunLog
from .validation import load_validation_images, measure_rd

STOP_REASONS = ("", "time limit reached", "stopped by a signal", "CPU budget spent")


def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """The learning rate at ``step`` (0-based, counted over resumes) as a fraction of ``config.lr``:
    a linear warm-up over ``lr_warmup_steps`` (a fresh Adam's first steps are the largest), then a
    factor ``lr_gamma`` at each of ``lr_milestones``."""
    warm_up = min(1.0, (step + 1) / config.lr_warmup_steps) if config.lr_warmup_steps else 1.0
    return warm_up * config.lr_gamma ** sum(step >= milestone for milestone in config.lr_milestones)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 7_919 + step * 104_729 + rank * 15_485_863) % (2**63 - 1)


def _leave_stop_signals_to_the_main_process(_worker_id: int) -> None:
    """DataLoader worker set-up: ignore SIGINT and SIGTERM.

    Ctrl-C and ``pkill -f`` reach the workers too; a worker that died of them would make the
    main process fail with "DataLoader worker killed" instead of stopping at the next step with a
    checkpoint. Workers still end when the main process shuts the loader down or dies.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Trainer:
    """Runs a :class:`TrainConfig`; resumable, distributed when started by torchrun.

    ``resume`` continues the run in ``config.out`` exactly; ``replace`` starts afresh there,
    removing that run; without either, a folder that holds a run is refused.
    """

    def __init__(self, config: TrainConfig, resume: bool = False, replace: bool = False, command: str = "") -> None:
        # Everything is checked before an old run is removed: the config, the device, the folder,
        # the model, the data and the validation photos.
        self.cfg = config = config.validate().with_sorted_lambdas()
        self.command = command or shlex.join(sys.argv)  # quoted: it pastes back into a shell
        self.out = Path(config.out)
        self.placement = place(config.device, config.amp)
        check_run_folder(self.out, resume, replace)
        if config.threads:
            torch.set_num_threads(config.threads)

        self.earlier_commands: list[str] = []  # commands that started or resumed this run before
        resumed_step: "int | None" = None
        if resume:
            point = read_resume_point(self.out)
            if point.train_parts != config.train_parts:
                raise ConfigError(
                    f"{self.out} trains train_parts = {point.train_parts!r}, not {config.train_parts!r}: resume it "
                    "as it was, or start a new run from its weights (--init-from)"
                )
            self.model, resumed_step, self.earlier_commands = point.model.train(), point.step, point.commands
            # The run's origin stays on record: a resume loads the checkpoint, so an --init-from
            # (or a config that now names a newer release) does not change where the run began.
            if point.init_from:
                self.cfg = dataclasses.replace(self.cfg, init_from=point.init_from)
        else:
            self.model = self._fresh_model()
        self.lambdas = [float(v) for v in self.cfg.lambdas]
        self._check_rate_points()

        train_files, held_back = split_holdout(config.train_data, config.holdout)
        # A part trains on cached latents: the photos are decoded only when the cache must be made.
        cache_path, key, cached = Path(), "", None
        if config.train_parts != "all":
            cache_path, key, cached = self._find_latent_cache(train_files)
        photos = None
        if cached is None:
            photos = RandomCropDataset(
                train_files,
                config.patch,
                tuple(config.downscale),
                candidates=config.crop_candidates,
                lean=config.crop_lean,
            )
        val_source = config.val_data or held_back
        self.val_images = load_validation_images(val_source, config.val_images) if val_source else []
        if replace and self.placement.is_main:
            clear_run_folder(self.out)
        self.criterion = RateDistortionLoss(self.lambdas[0], config.distortion)

        self.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.dataset: "RandomCropDataset | CachedLatents"
        if config.train_parts == "all":
            self.dataset = photos
        else:
            self._freeze_all_but(config.train_parts)
            self.dataset = cached if cached is not None else self._build_latent_cache(photos, cache_path, key)
        self.optimizer = torch.optim.Adam([p for p in self.model.main_parameters() if p.requires_grad], lr=config.lr)
        # The prior's quantiles belong to the entropy model: a synthesis-only run leaves them.
        self.trains_aux = all(p.requires_grad for p in self.model.aux_parameters())
        self.aux_optimizer = torch.optim.Adam(self.model.aux_parameters(), lr=config.aux_lr)
        # The factor is read from the config at every step, so a resumed run follows its new config.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: learning_rate_factor(step, config)
        )
        # The weights' moving average: smoother than the last step's weights at a higher learning rate.
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay)) if config.ema_decay else None
        )
        self.step = 0
        self.best = math.inf
        self.cpu_seconds = 0.0  # CPU time of the run so far, over every resume
        self.rank_digests: "list[str] | None" = None  # every rank's weights digest after DDP training
        self.last_validation: dict[str, Any] = {}
        self._stop_signal: "int | None" = None
        if resume:
            self._load_state(resumed_step)

        net: torch.nn.Module = self.model
        if self.placement.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(self.model, device_ids=ids)
        self.net = torch.compile(net) if config.compile else net
        self._cpu_clock = (time.process_time(), self.cpu_seconds)  # training's CPU time counts from here

    # ------------------------------------------------------------------------------------ set-up
    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def is_main(self) -> bool:
        return self.placement.is_main

    def _fresh_model(self) -> DCAE:
        if self.cfg.init_from:
            model, _ = load_weights(self.cfg.init_from)
            return model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            return DCAE(resolve_config(self.cfg.model)).train()

    def _freeze_all_but(self, part: str) -> None:
        """Only ``part``'s parameters learn; the rest keep their weights and take no gradients."""
        trained = {id(p) for p in self.model.part_parameters(part)}
        for parameter in self.model.parameters():
            parameter.requires_grad_(id(parameter) in trained)

    def _find_latent_cache(self, photos: list[Path]) -> "tuple[Path, str, CachedLatents | None]":
        """Where the latent cache of a part's run lies, the key its contents must have, and the
        cache itself when that file holds it. A named file made for other weights, photos or
        crops is refused (it may be another run's); the run folder's own is rebuilt."""
        cfg = self.cfg
        named = bool(cfg.latent_cache)
        path = Path(cfg.latent_cache) if named else self.out / "latent-cache.safetensors"
        key = cache_key(
            self.model,
            photos,
            cfg.patch,
            tuple(cfg.downscale),
            cfg.cache_crops,
            cfg.seed,
            cfg.crop_candidates,
            cfg.crop_lean,
        )
        found = read_cache_key(path)
        if found == key:
            return path, key, load_latent_cache(path)
        if found is not None and named:
            raise ConfigError(
                f"{path} holds latents of other analysis weights, photos or crops; name a new file "
                "(or remove that one) to cache this run's"
            )
        return path, key, None

    def _build_latent_cache(self, photos: RandomCropDataset, path: Path, key: str) -> CachedLatents:
        """Analyse the cached crops of every photo once, and write them (rank 0) for later runs."""
        tqdm.write(f"caching the latents of {self.cfg.cache_crops} crops per photo ({len(photos)} photos)")
        cache = build_latent_cache(self.model, photos, self.cfg.cache_crops, self.cfg.seed)
        if self.is_main:
            save_latent_cache(cache, path, key)
        return cache

    def _check_rate_points(self) -> None:
        points = self.model.config.num_rate_points
        if points == 0 and len(self.lambdas) != 1:
            raise ConfigError(
                f"{len(self.lambdas)} lambdas need a variable-rate model (num_rate_points = {len(self.lambdas)})"
            )
        if points and points != len(self.lambdas):
            raise ConfigError(f"the model has {points} rate points but {len(self.lambdas)} lambdas were given")

    def _load_state(self, resumed_step: "int | None") -> None:
        state = load_state(self.out / "latest.state.pt")
        self.optimizer.load_state_dict(state["optimizer"])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        # Runs saved before warm-up existed kept a step-decay scheduler: only its step count matters.
        self.scheduler.load_state_dict({"lr_lambdas": [None], **state["scheduler"]})
        self.step = int(state["step"])
        self.best = float(state["best"])
        self.cpu_seconds = float(state.get("cpu_seconds", 0.0))
        if self.ema is not None:
            if "ema" in state:
                self.ema.load_state_dict(state["ema"])
            else:  # a run resumed with a moving average it did not have: start it from here
                self.ema.module.load_state_dict(self.model.state_dict())
        if resumed_step != self.step:
            raise ConfigError(
                f"{self.out}: weights are at step {resumed_step} but the optimiser state at step "
                f"{self.step}; the last checkpoint was interrupted"
            )

    # ----------------------------------------------------------------------------------- running
    def loader(self) -> DataLoader:
        """The run's data loader, continuing from the current step (this rank's share of the data)."""
        rank, world = self.placement.rank, self.placement.world
        sampler = ResumableSampler(len(self.dataset), self.cfg.seed, rank, world, start=self.step * self.cfg.batch_size)
        return DataLoader(
            self.dataset,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=self.cfg.workers,
            worker_init_fn=_leave_stop_signals_to_the_main_process if self.cfg.workers > 0 else None,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.cfg.workers > 0,
            prefetch_factor=4 if self.cfg.workers > 0 else None,
        )

    def draw_qualities(self, batch: int) -> tuple["torch.Tensor | None", torch.Tensor]:
        """Rate-point indices and their lambdas for one batch, a function of (seed, step, rank)."""
        lambdas = torch.tensor(self.lambdas)
        if len(self.lambdas) == 1 and self.model.config.num_rate_points == 0:
            return None, lambdas.expand(batch)
        seed = _step_seed(self.cfg.seed, self.step, self.placement.rank) ^ 0x5EED
        rng = torch.Generator().manual_seed(seed)
        draws = 1 if self.cfg.lambda_sampling == "batch" else batch
        if self.cfg.lambda_weights:
            weights = torch.tensor(self.cfg.lambda_weights, dtype=torch.float64)
            index = torch.multinomial(weights, draws, replacement=True, generator=rng)
        else:
            index = torch.randint(len(self.lambdas), (draws,), generator=rng)
        index = index.expand(batch)
        return index.float(), lambdas[index]

    def _draw_noise(self, batch: torch.Tensor) -> "dict[str, torch.Tensor] | None":
        """The step's quantisation noise, a function of (seed, step, rank), from the trainer's own
        generator (drawn outside the model, so a compiled model sees plain tensors)."""
        if self.cfg.rate_proxy != "noise":
            return None
        generator = torch.Generator(device=self.device).manual_seed(
            _step_seed(self.cfg.seed, self.step, self.placement.rank)
        )
        shapes = self.model.noise_shapes(batch.shape[0], *batch.shape[-2:])
        return {
            name: torch.rand(shape, generator=generator, device=self.device) - 0.5 for name, shape in shapes.items()
        }

    def _to_device(self, values: torch.Tensor) -> torch.Tensor:
        """Copy a small CPU tensor to the training device without waiting for the device (a copy
        from pageable memory may synchronise; from pinned memory it is queued)."""
        if self.device.type == "cuda":
            values = values.pin_memory()
        return values.to(self.device, non_blocking=True)

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step of the main and auxiliary losses.

        Returns the step's metrics as detached 0-d tensors: reading them waits for the device, so
        the loop reads them (:meth:`read_metrics`) only when it logs or checkpoints.
        """
        features = None
        if isinstance(batch, (tuple, list)):  # cached latents: (crops, their analysis features)
            batch, features = batch
            features = features.to(self.device, torch.float32, non_blocking=True)  # stored in float16
        batch = batch.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        quality, lmbda = self.draw_qualities(batch.shape[0])
        noise = self._draw_noise(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.aux_optimizer.zero_grad(set_to_none=True)
        with self.placement.autocast():
            q = self._to_device(quality) if quality is not None else None
            out = self.net(batch, quality=q, rate_proxy=self.cfg.rate_proxy, noise=noise, features=features)
        metrics = self.criterion(out, batch, self._to_device(lmbda))
        aux = self.model.aux_loss()
        # One backward for both losses: under DDP every gradient is then averaged across ranks.
        (metrics["loss"] + aux if self.trains_aux else metrics["loss"]).backward()
        if self.cfg.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.main_parameters(), self.cfg.clip)
        self.optimizer.step()
        if self.trains_aux:
            self.aux_optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        result = {k: v.detach() for k, v in metrics.items()}
        result["aux"] = aux.detach()
        return result

    def read_metrics(self, metrics: dict[str, torch.Tensor]) -> dict[str, float]:
        """The metrics of the last step as floats with the current learning rate; raises
        ``FloatingPointError`` if the loss is not finite (then the weights are not either)."""
        values = {k: float(v) for k, v in metrics.items()}
        if not math.isfinite(values["loss"]):
            raise FloatingPointError(f"loss became {values['loss']} at step {self.step}")
        values["lr"] = self.optimizer.param_groups[0]["lr"]
        return values

    def run(self) -> dict[str, Any]:
        """Train until ``steps``; returns the last validation metrics (empty without validation)."""
        cfg = self.cfg
        log = None
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            log = RunLog(self.out)
        last_checkpoint = time.monotonic()
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.is_main, dynamic_ncols=True, desc="train")
        loader = iter(self.loader())
        started, seen_at_start = time.monotonic(), self.step
        deadline = time.monotonic() + cfg.time_limit_minutes * 60 if cfg.time_limit_minutes else math.inf
        step_metrics: "dict[str, torch.Tensor] | None" = None
        with self._stop_on_signals(), contextlib.closing(log) if log else contextlib.nullcontext():
            while self.step < cfg.steps:
                reason = self._stop_reason(deadline)
                if reason:
                    if step_metrics is not None:
                        self.read_metrics(step_metrics)  # never checkpoint NaN weights
                    self.save_checkpoint(self.last_validation)
                    tqdm.write(f"{reason} at step {self.step}; checkpoint written")
                    break
                step_metrics = self.train_step(next(loader))
                bar.update(1)
                validate_now = self.val_images and (self.step % cfg.val_every == 0 or self.step == cfg.steps)
                due = time.monotonic() - last_checkpoint > cfg.checkpoint_minutes * 60
                checkpoint_now = validate_now or due or self.step == cfg.steps
                # Every rank checks the loss before any checkpoint, so no checkpoint holds NaN weights.
                if self.step % cfg.log_every == 0 or checkpoint_now:
                    metrics = self.read_metrics(step_metrics)
                if log and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    rate = (self.step - seen_at_start) / max(time.monotonic() - started, 1e-9)
                    bar.set_postfix(
                        loss=f"{metrics['loss']:.3f}",
                        bpp=f"{metrics['bpp']:.3f}",
                        psnr=f"{metrics['psnr']:.2f}",
                        lr=f"{metrics['lr']:.1e}",
                    )
                    log.write("log.csv", {"step": self.step, **metrics, "steps_per_s": rate, "time": time.time()})
                if validate_now:
                    self.last_validation = self.validate(log)
                if checkpoint_now:
                    self.save_checkpoint(self.last_validation if validate_now else None)
                    last_checkpoint = time.monotonic()
        bar.close()
        if self.placement.world > 1:
            self.rank_digests = check_ranks_agree(self.placement, self.model)
            self.save_checkpoint(self.last_validation)
            barrier(self.placement)
        return self.last_validation

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """While training, SIGINT and SIGTERM end the run at the next step with a checkpoint.

        A killed session or a Ctrl-C then loses at most one step instead of everything since the
        last periodic checkpoint. The handlers are removed at the first signal, so a second one
        still stops a run that hangs.
        """
        self._stop_signal = None
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        caught = (signal.SIGINT, signal.SIGTERM)

        def request_stop(signum: int, _frame: Any) -> None:
            self._stop_signal = signum
            for number in caught:
                signal.signal(number, previous[number])

        previous = {number: signal.signal(number, request_stop) for number in caught}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _update_cpu_seconds(self) -> None:
        """Add this process's CPU time since the run (re)started to the run's earlier total."""
        clock_at_start, seconds_at_start = self._cpu_clock
        self.cpu_seconds = seconds_at_start + time.process_time() - clock_at_start

    def _stop_reason(self, deadline: float) -> str:
        """Why the run must stop now ("" to go on); under DDP every rank follows rank 0."""
        self._update_cpu_seconds()
        if self._stop_signal is not None:
            code = 2
        elif time.monotonic() > deadline:
            code = 1
        elif self.cfg.cpu_budget_minutes and self.cpu_seconds >= self.cfg.cpu_budget_minutes * 60:
            code = 3
        else:
            code = 0
        return STOP_REASONS[follow_rank_zero(self.placement, code)]

    def validate(self, log: "RunLog | None" = None) -> dict[str, Any]:
        """Rate and distortion per rate point on the validation images (rank 0 only)."""
        if not self.is_main:
            return {}
        model = self.shipped_model
        model.eval()
        points = range(len(self.lambdas)) if model.variable_rate else [None]
        per_point = []
        for index in points:
            rd = measure_rd(model, self.val_images, None if index is None else float(index))
            lam = self.lambdas[index or 0]
            distortion = 255**2 * 10 ** (-rd["psnr"] / 10) if self.cfg.distortion == "mse" else 1 - rd["ms_ssim"]
            per_point.append({"quality": index, "lambda": lam, **rd, "loss": lam * distortion + rd["bpp"]})
        model.train()
        mean_loss = sum(p["loss"] for p in per_point) / len(per_point)
        if log is not None:
            for p in per_point:
                log.write("val.csv", {"step": self.step, **p})
        result = {"step": self.step, "loss": mean_loss, "points": per_point}
        tqdm.write(
            f"step {self.step}: val loss {mean_loss:.4f} | "
            + " | ".join(f"q{p['quality']}: {p['bpp']:.3f} bpp {p['psnr']:.2f} dB" for p in per_point)
        )
        if mean_loss < self.best:
            self.best = mean_loss
            save_weights_and_card(model, self.out / "best.safetensors", self._metadata(result))
        return result

    @property
    def shipped_model(self) -> DCAE:
        """The weights a user would get from this run: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------------------------- checkpoints
    def _metadata(self, metrics: "dict[str, Any] | None") -> dict[str, Any]:
        return {
            "step": self.step,
            "cpu_seconds": round(self.cpu_seconds, 1),
            "ema_decay": self.cfg.ema_decay,
            "lambdas": self.lambdas,
            "distortion": self.cfg.distortion,
            "train_config": self.cfg.to_dict(),
            "data": {
                "train": str(self.cfg.train_data),
                "images": len(self.dataset),
                "val": self.cfg.val_data or f"{self.cfg.holdout} held-back training photos",
            },
            "metrics": metrics or {},
            "git_commit": git_commit(),
            "dcae_version": __version__,
            "torch_version": torch.__version__,
            "command": self.command,
            "commands": [*self.earlier_commands, self.command],  # every start and resume
            "world_size": self.placement.world,
            "rank_digests": self.rank_digests,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save_checkpoint(self, metrics: "dict[str, Any] | None" = None) -> None:
        """Write latest weights (and their moving average), metadata and optimiser state (rank 0; atomic)."""
        if not self.is_main:
            return
        self._update_cpu_seconds()
        state = {
            "step": self.step,
            "best": self.best,
            "cpu_seconds": self.cpu_seconds,
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        metadata = self._metadata(metrics)
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
            save_weights_and_card(self.ema.module, self.out / "ema.safetensors", metadata)
        save_weights_and_card(self.model, self.out / "latest.safetensors", metadata)
        save_state(self.out / "latest.state.pt", state)
