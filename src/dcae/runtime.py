"""How dcae uses the machine, for every front end: CPUs, torch threads and worker processes.

* :func:`available_cpus` counts the CPUs this process may run on (its affinity, not the machine).
* :func:`thread_count` resolves a requested thread count against ``DCAE_THREADS`` and
  ``OMP_NUM_THREADS``, bounded by the CPUs: more threads than CPUs only wait on each other.
* :func:`torch_threads` runs a block with a thread count and restores the caller's.
* :func:`worker_pool` starts worker processes by spawning (no fork of a process that holds
  OpenMP threads); a worker ends its current file cleanly on SIGTERM or Ctrl-C, removing its
  temporary files, and the pool can be stopped at once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.pool
import os
import signal
from collections.abc import Iterator

from .errors import DcaeError


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_count(requested: "int | None" = None) -> int:
    """``requested``, else ``DCAE_THREADS``, else ``OMP_NUM_THREADS`` (at most the available
    CPUs), else every available CPU.

    A requested count above the available CPUs is a mistake (:class:`DcaeError`): the threads
    would only wait on each other (1,000 threads on 2 CPUs coded six times slower than 2)."""
    cpus = available_cpus()
    if requested is not None:
        if requested > cpus:
            raise DcaeError(f"--threads {requested} is more than the {cpus} CPUs this process may use")
        return requested
    for variable in ("DCAE_THREADS", "OMP_NUM_THREADS"):
        text = os.environ.get(variable, "")
        if text.isdigit() and int(text) > 0:
            return min(int(text), cpus)
    return cpus


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads, then restore the caller's setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _stop_on_sigterm() -> None:
    """Worker set-up: SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so the file being
    written is cleaned up on the way out."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def worker_pool(jobs: int) -> multiprocessing.pool.Pool:
    """A pool of ``jobs`` spawned workers; ``terminate()`` stops them mid-file, cleanly."""
    return multiprocessing.get_context("spawn").Pool(jobs, initializer=_stop_on_sigterm)
