"""What the command line shows on a terminal besides its results: one progress bar per
operation and one-line warnings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# A command's progress bar appears only once it has run this long (seconds).
PROGRESS_DELAY = 2.0


def _tqdm() -> Any:
    """tqdm's bar class. Imported on first use, here only: the import takes about 76 ms, more
    than all of ``dcae info``, which draws no bar."""
    from tqdm import tqdm

    return tqdm


def over(items: Sequence[Any], what: str, unit: str) -> Iterator[Any]:
    """``items`` with a progress bar on standard error (none for fewer than two)."""
    return _tqdm()(items, desc=what, unit=unit, disable=len(items) < 2, file=sys.stderr)


def say(line: str, file: Any = None) -> None:
    """Print a line above any progress bar (standard output unless ``file``)."""
    _tqdm().write(line, file=file)


def counter(what: str, unit: str) -> Callable[[int, int], None]:
    """A progress bar that hears (done, total) and closes itself at the total."""
    bar = _tqdm()(total=0, desc=what, unit=unit, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


class ProgressBar:
    """One progress bar on standard error for one file's whole operation, through every stage
    (the stage is its label); only on a terminal, and only once the operation runs longer than
    :data:`PROGRESS_DELAY`."""

    def __init__(self, label: str, delay: "float | None" = None) -> None:
        self.label, self.bar = label, None
        self.delay = PROGRESS_DELAY if delay is None else delay
        self.shown = sys.stderr.isatty()
        self.coded: "int | None" = None  # the bar's count when writing began

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.shown:
            return
        description = f"{self.label}: {stage}"
        if self.bar is None:
            self.bar = _tqdm()(total=total, desc=description, file=sys.stderr, leave=False, delay=self.delay)
        elif self.bar.desc != description:
            self.bar.set_description(description)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def writing(self, written: int, expected: int) -> None:
        """The output being written, as a last tenth of the bar (``expected``: about its bytes)."""
        if self.bar is None:
            return
        if self.coded is None:  # the first write: extend the bar by a tenth
            self.coded = self.bar.total
            self.bar.total += max(1, self.coded // 10)
            self.bar.set_description(f"{self.label}: writing")
        share = self.bar.total - self.coded
        self.bar.update(self.coded + min(share - 1, share * written // max(expected, 1)) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CountingFile:
    """A binary file that reports how many bytes were written so far (Pillow writes as it encodes)."""

    def __init__(self, handle: Any, on_write: Callable[[int], None]) -> None:
        self.handle, self.on_write, self.written = handle, on_write, 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        self.on_write(self.written)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:  # seek, tell, flush ... of the real file
        return getattr(self.handle, name)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """Warnings reach the user as one ``dcae: warning:`` line, without Python's source location."""
    print(f"dcae: warning: {message}", file=sys.stderr)
