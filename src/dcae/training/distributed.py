"""Where training runs: the device, the process group under torchrun, mixed precision."""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError
from ..weights import state_digest


@dataclass(frozen=True)
class Placement:
    """This process's share of a run: its rank among ``world`` processes and its device."""

    world: int
    rank: int
    device: torch.device
    bf16: bool  # train under bf16 autocast

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and validation."""
        return self.rank == 0

    def autocast(self) -> AbstractContextManager:
        """The forward pass's precision context."""
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def place(device: str, amp: str) -> Placement:
    """Pick the device (``auto``: CUDA when present), join the process group when started by
    torchrun (NCCL on GPUs, gloo on CPUs) and decide the precision (``auto``: bf16 on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wanted = device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA device is available")
    if wanted == "cuda":
        wanted = f"cuda:{local_rank}"
    chosen = torch.device(wanted)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
        # float32 products on TensorFloat-32 units: a ~1e-3 relative error, far below the
        # quantisation noise the model trains with, for several times the throughput.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    bf16 = amp == "bf16" or (amp == "auto" and chosen.type == "cuda")
    return Placement(world, rank, chosen, bf16)


def follow_rank_zero(placement: Placement, code: int) -> int:
    """Rank 0's ``code`` on every rank (a single process need not touch the device)."""
    if placement.world == 1:
        return code
    decision = torch.tensor([code], device=placement.device)
    dist.broadcast(decision, src=0)
    return int(decision.item())


def check_ranks_agree(placement: Placement, model: torch.nn.Module) -> list[str]:
    """Every rank's weights digest after DDP training; raises if they differ."""
    digests: list[str] = [""] * placement.world
    dist.all_gather_object(digests, state_digest(model.state_dict()))
    if len(set(digests)) != 1:
        raise RuntimeError(f"distributed ranks diverged: weight digests {digests}")
    return digests


def barrier(placement: Placement) -> None:
    """Wait for every rank (no-op for one process)."""
    if placement.world > 1:
        dist.barrier()
