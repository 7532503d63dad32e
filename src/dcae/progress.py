"""One progress count across the stages of a long operation (analysis, entropy coding, synthesis).

The codec knows every stage's number of steps before it starts (tiles, chunks, slices), so a
front-end can show a single bar that moves from the first step to the last instead of one bar
per stage with silent gaps between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Hears (stage, steps done, steps in all) where the counts cover the whole operation.
Progress = Callable[[str, int, int], None]
# Hears (steps done, steps in the stage).
StageProgress = Callable[[int, int], None]


class StagedProgress:
    """Maps each stage's own (done, total) onto one count for a :data:`Progress` callback.

    Args:
        progress: the callback, or None for no reporting.
        stages: (name, steps) in the order they run; a stage may report in finer or coarser
            units than its steps, which are scaled to them.
    """

    def __init__(self, progress: "Progress | None", stages: Sequence[tuple[str, int]]) -> None:
        self._progress = progress
        self._stages: dict[str, tuple[int, int]] = {}
        self.total = 0
        for name, steps in stages:
            self._stages[name] = (self.total, steps)
            self.total += steps

    def stage(self, name: str, first: int = 0, of: int = 1) -> "StageProgress | None":
        """The callback for stage ``name`` (None when nobody listens). ``first`` and ``of``
        split a stage into ``of`` equal runs (such as rate control's trial encodes) and report
        the run numbered ``first``."""
        if self._progress is None:
            return None
        offset, steps = self._stages[name]
        share = steps / of
        progress = self._progress

        def report(done: int, total: int) -> None:
            progress(name, offset + round(share * (first + done / max(total, 1))), self.total)

        return report

    def begin(self, name: str) -> None:
        """Report that stage ``name`` has started (for stages that report nothing until done)."""
        if self._progress is not None:
            self._progress(name, self._stages[name][0], self.total)

    def finish(self, name: str) -> None:
        """Report the whole operation done (an operation may end before its last planned step)."""
        if self._progress is not None:
            self._progress(name, self.total, self.total)
