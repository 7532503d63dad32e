"""Rate control: the highest quality whose file fits a byte budget, by bisection."""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import TypeVar

import numpy as np

from .errors import QualityError

# The bisection stops once the file is within this fraction of the budget...
DEFAULT_TOLERANCE = 0.03
# The second, finer bisection when an optimised file overshot.
FINE_TOLERANCE = 0.005
# ... or after this many halvings of the quality range (float32 resolution long before).
MAX_BISECTION_STEPS = 24

# A coded file: anything whose len() is its size in bytes.
File = TypeVar("File", bound=Sized)


def bisect_quality(
    file_at: Callable[[float], File],
    max_bytes: int,
    quality_range: tuple[float, float],
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[float, File]:
    """The highest quality in ``quality_range`` whose file from ``file_at`` fits in ``max_bytes``
    (searched until the file is within ``tolerance`` of the budget, where the range allows), and
    that file. Qualities are float32 values, as the header stores them. Raises
    :class:`QualityError` when even the lowest quality needs more bytes."""
    low, high = (float(np.float32(q)) for q in quality_range)
    smallest = file_at(low)
    if len(smallest) > max_bytes:
        raise QualityError(f"cannot reach {max_bytes} bytes: the lowest quality already needs {len(smallest)} bytes")
    largest = file_at(high)
    if len(largest) <= max_bytes:
        return high, largest
    best, best_quality = smallest, low
    for _ in range(MAX_BISECTION_STEPS):
        if len(best) >= (1 - tolerance) * max_bytes:
            break
        middle = float(np.float32((low + high) / 2))
        candidate = file_at(middle)
        if len(candidate) <= max_bytes:
            low, best, best_quality = middle, candidate, middle
        else:
            high = middle
    return best_quality, best


def fit_optimized_to_size(
    plain_at: Callable[[float], File],
    optimized_at: Callable[[float], File],
    squared_error: Callable[[File], float],
    max_bytes: int,
    quality_range: tuple[float, float],
) -> File:
    """Rate control with encoder-side latent optimisation: the file within ``max_bytes`` that is
    closest to the image (by ``squared_error``), of the plain one and at most two optimised ones.

    Optimisation is costly, so it runs on at most two qualities, not at every bisection step. It
    lowers the rate-distortion cost, usually by spending a little more rate on much less
    distortion; when that overshoots the budget, a second bisection aims the plain file lower by
    the same ratio, more finely than the first (the search gains ~1-3%, less than the first
    bisection's slack).
    """
    quality, plain = bisect_quality(plain_at, max_bytes, quality_range)
    optimized = optimized_at(quality)
    if len(optimized) > max_bytes:
        try:
            budget = int(max_bytes * len(plain) / len(optimized))
            quality, _ = bisect_quality(plain_at, budget, quality_range, tolerance=FINE_TOLERANCE)
        except QualityError:
            return plain
        optimized = optimized_at(quality)
        if len(optimized) > max_bytes:
            return plain
    return min((plain, optimized), key=squared_error)
