"""Running a command's work on many files: in this process, or in worker processes that share
the CPUs and stop with the command; reading inputs and writing results by the output policy."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR
from ..files import check_readable
from ..image_formats import image_format_options
from ..outputs import write_output
from ..runtime import thread_count, torch_threads, worker_pool
from .errors import USER_ERRORS
from .terminal import CountingFile, over, say, show_warning

# What one worker (or the command itself) does to one file: (path, output, state, args) -> line.
FileWork = Callable[[Path, Path, dict, argparse.Namespace], str]


def code_files(work: FileWork, pairs: list[tuple[Path, Path]], args: argparse.Namespace, what: str) -> int:
    """Run ``work`` on every (input, output) pair, with a progress bar; failures one line each.
    The number of failures is returned. ``state`` holds what the files share (loaded codecs)."""
    state: dict = {}
    failures = 0
    with torch_threads(args.threads):
        for path, output in over(pairs, what, "file"):
            try:
                say(work(path, output, state, args))
            except USER_ERRORS as error:
                failures += 1
                say(f"dcae: error: {path}: {error}", file=sys.stderr)
    return failures


def _code_files_in_worker(work: FileWork, pairs: list[tuple[Path, Path]], args: argparse.Namespace, what: str) -> int:
    """:func:`code_files` in a worker process: warnings as one line; stopped (SIGTERM, Ctrl-C)
    it leaves at once, its temporary file already removed on the way out."""
    warnings.showwarning = show_warning
    try:
        return code_files(work, pairs, args, what)
    except KeyboardInterrupt:
        os._exit(EXIT_INTERRUPTED)


def for_each(work: FileWork, pairs: list[tuple[Path, Path]], args: argparse.Namespace, what: str) -> int:
    """Code every file in this process or, for several files, in worker processes that share the
    CPUs (``--jobs``): a worker with one thread per CPU keeps every core busy where the network's
    own threads would wait on each other (benchmarks/folder_throughput.py). Stopping the command
    stops the workers at once."""
    cpus = thread_count(args.threads)
    jobs = min(args.jobs or cpus, len(pairs), cpus) if len(pairs) > 1 else 1
    if jobs == 1:
        failures = code_files(work, pairs, argparse.Namespace(**{**vars(args), "threads": cpus}), what)
        return EXIT_USER_ERROR if failures else EXIT_OK
    worker_args = argparse.Namespace(**{**vars(args), "threads": max(1, cpus // jobs), "handler": None})
    chunks = [pairs[i::jobs] for i in range(jobs)]
    pool = worker_pool(jobs)
    try:
        running = [
            pool.apply_async(_code_files_in_worker, (work, chunk, worker_args, f"{what} {i + 1}/{jobs}"))
            for i, chunk in enumerate(chunks)
        ]
        failures = sum(result.get() for result in running)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return EXIT_USER_ERROR if failures else EXIT_OK


def read_file(path: Path) -> bytes:
    """The bytes of an input file, or one clear error (missing, a folder, a broken link)."""
    check_readable(path)
    return path.read_bytes()


def write_result(
    path: Path, data: "bytes | None", force: bool, image: Any = None, on_write: "Callable[[int], None] | None" = None
) -> None:
    """Write ``data``, or ``image`` in the format its suffix names with the ICC profile, EXIF and
    XMP of its ``info``, by the output policy."""
    if image is None:
        write_output(path, lambda tmp: Path(tmp).write_bytes(data), force)
        return
    kind, image, options = image_format_options(path, image)

    def save(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            image.save(handle if on_write is None else CountingFile(handle, on_write), format=kind, **options)

    write_output(path, save, force)
