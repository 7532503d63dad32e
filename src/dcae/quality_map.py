"""Regions of interest: a quality per 16x16 block of the image, coded in the file.

A variable-rate model scales its latent with per-channel gains chosen by the quality; a quality
map chooses them per latent position instead (one per 16x16 pixel block), so a region gets more
bits and the rest fewer. The decoder reads the map from the file (format version 3) and undoes
the same gains. The model was trained with one quality per image; how well it spends bits
across a region's border is measured in docs/benchmarks.md.
"""

from __future__ import annotations

import numpy as np
import torch

from .bitstream import MAX_MAP_LEVELS, QualityMap, latent_size
from .config import LATENT_STRIDE
from .errors import QualityError


def roi_quality_map(mask: np.ndarray, quality: float, roi_quality: float) -> np.ndarray:
    """A pixel quality map: ``roi_quality`` where ``mask`` is set (non-zero), ``quality`` elsewhere."""
    return np.where(np.asarray(mask) != 0, np.float32(roi_quality), np.float32(quality)).astype(np.float32)


def to_latent_map(pixel_map: np.ndarray, width: int, height: int) -> QualityMap:
    """The file's map for an (H, W) map of qualities per pixel: each latent position takes the
    highest quality of its 16x16 block (a region never loses bits to its border), the padding
    takes its neighbours'. At most 16 distinct qualities."""
    pixel_map = np.asarray(pixel_map, dtype=np.float32)
    if pixel_map.shape != (height, width):
        raise QualityError(f"the quality map is {pixel_map.shape[1]}x{pixel_map.shape[0]}, the image {width}x{height}")
    if not np.isfinite(pixel_map).all():
        raise QualityError("the quality map holds values that are not finite numbers")
    rows, columns = latent_size(width, height)
    side = LATENT_STRIDE
    padded = np.pad(pixel_map, ((0, rows * side - height), (0, columns * side - width)), mode="edge")
    blocks = padded.reshape(rows, side, columns, side).max(axis=(1, 3))
    levels, indexes = np.unique(blocks, return_inverse=True)
    if len(levels) > MAX_MAP_LEVELS:
        raise QualityError(f"a quality map holds at most {MAX_MAP_LEVELS} distinct qualities, not {len(levels)}")
    return QualityMap(tuple(float(v) for v in levels), rows, columns, indexes.astype(np.uint8).tobytes())


def as_tensor(quality_map: QualityMap, device: torch.device) -> torch.Tensor:
    """The map as the (1, 1, rows, columns) quality tensor the model's gains take."""
    levels = torch.tensor(quality_map.levels, dtype=torch.float32)
    indexes = torch.frombuffer(bytearray(quality_map.indexes), dtype=torch.uint8).long()
    return levels[indexes].reshape(1, 1, quality_map.rows, quality_map.columns).to(device)


def dominant_quality(quality_map: QualityMap) -> float:
    """The quality of most positions, recorded as the file's quality."""
    counts = np.bincount(np.frombuffer(quality_map.indexes, dtype=np.uint8), minlength=len(quality_map.levels))
    return quality_map.levels[int(counts.argmax())]
