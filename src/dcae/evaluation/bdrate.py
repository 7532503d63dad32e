"""Bjontegaard deltas between rate-distortion curves.

The default fit is piecewise cubic Hermite interpolation (PCHIP) of log-rate against quality,
integrated over the quality interval both curves cover, as in current VCEG/JVET practice; the
classic third-order polynomial fit of VCEG-M33 is available as ``method="polynomial"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def _prepare(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.argsort(q)
    r, q = r[order], q[order]
    _, unique = np.unique(q, return_index=True)  # PCHIP needs strictly increasing x
    return np.log(r[unique]), q[unique]


def _integral(x: np.ndarray, y: np.ndarray, low: float, high: float, method: str) -> float:
    if method == "pchip":
        return float(PchipInterpolator(x, y).integrate(low, high))
    if method == "polynomial":
        poly = np.polyint(np.polyfit(x, y, min(3, len(x) - 1)))
        return float(np.polyval(poly, high) - np.polyval(poly, low))
    raise ValueError(f"unknown BD fit {method!r}; use 'pchip' or 'polynomial'")


def _mean_gap(x_anchor, y_anchor, x_test, y_test, method: str) -> float:
    """Mean of y_test - y_anchor over the x interval both curves cover (NaN if there is none)."""
    if len(x_anchor) < 2 or len(x_test) < 2:
        return math.nan
    low, high = max(x_anchor.min(), x_test.min()), min(x_anchor.max(), x_test.max())
    if not high > low:
        return math.nan
    gap = _integral(x_test, y_test, low, high, method) - _integral(x_anchor, y_anchor, low, high, method)
    return gap / (high - low)


def bd_rate(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    method: str = "pchip",
) -> float:
    """Average rate difference of ``test`` against ``anchor`` at equal quality, in percent.

    Negative means the test codec needs fewer bits. NaN when the curves share no quality
    interval or have fewer than two points.
    """
    log_ra, qa = _prepare(rate_anchor, quality_anchor)
    log_rt, qt = _prepare(rate_test, quality_test)
    delta = _mean_gap(qa, log_ra, qt, log_rt, method)
    return math.nan if math.isnan(delta) else 100.0 * (math.exp(delta) - 1.0)


def bd_psnr(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    method: str = "pchip",
) -> float:
    """Average quality difference (test minus anchor) at equal rate, over the shared log-rate interval."""
    log_ra, qa = _prepare(rate_anchor, quality_anchor)
    log_rt, qt = _prepare(rate_test, quality_test)
    # Quality as a function of log-rate: sort each curve by rate.
    a, b = np.argsort(log_ra), np.argsort(log_rt)
    return _mean_gap(log_ra[a], qa[a], log_rt[b], qt[b], method)
