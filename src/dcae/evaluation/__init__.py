"""Evaluation: metrics, classic codecs, Bjontegaard deltas, dataset runs and reports."""

from ..metrics import image_metrics
from .bdrate import bd_psnr, bd_rate

__all__ = ["bd_psnr", "bd_rate", "image_metrics"]
