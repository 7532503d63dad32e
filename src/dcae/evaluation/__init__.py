"""Evaluation: metrics, classic codecs, Bjontegaard deltas, dataset runs and reports."""

from .bdrate import bd_psnr, bd_rate
from .metrics import image_metrics

__all__ = ["bd_psnr", "bd_rate", "image_metrics"]
