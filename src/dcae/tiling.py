"""Running a convolutional transform over overlapping tiles to bound peak memory.

Each tile is processed with a halo of context around it and only its centre is kept, so the
stitched result matches the whole-image result wherever the halo covers the transform's
effective reach (see ``benchmarks/receptive_field.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import torch

# Images above this many (padded) pixels run the transforms on tiles of DEFAULT_TILE pixels.
AUTO_TILE_PIXELS = 1536 * 1536
DEFAULT_TILE = 1024
# Context around each tile; the compact model's transforms change nothing measurable beyond
# about 100 pixels (benchmarks/receptive_field.py).
DEFAULT_HALO = 128


def tile_side(height: int, width: int, tile: "int | None") -> int:
    """The tile side (pixels) for an image of this padded size: ``tile=None`` tiles only images
    above ``AUTO_TILE_PIXELS``; ``0`` (the result too) means the whole image in one piece."""
    if tile is None:
        return DEFAULT_TILE if height * width > AUTO_TILE_PIXELS else 0
    return tile if tile and (height > tile or width > tile) else 0


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    halo: int,
    scale: Fraction,
    on_tile: "Callable[[int, int], None] | None" = None,
) -> torch.Tensor:
    """Apply ``fn`` to (B, C, H, W) ``x`` tile by tile.

    Args:
        fn: maps an input crop to an output whose sides are the crop's times ``scale``.
        tile: tile side in input units; ``tile * scale`` and ``halo * scale`` must be integers.
        halo: context added on each side of a tile (clipped at the borders), in input units.
        scale: output resolution relative to the input (1/16 for analysis, 16 for synthesis).
        on_tile: called with (tiles done, tiles in all) after each tile.
    """
    if (tile * scale).denominator != 1 or (halo * scale).denominator != 1:
        raise ValueError(f"tile {tile} and halo {halo} must map to whole output units at scale {scale}")
    height, width = x.shape[-2:]
    out: "torch.Tensor | None" = None
    corners = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
    for done, (top, left) in enumerate(corners, 1):
        bottom, right = min(top + tile, height), min(left + tile, width)
        t0, l0 = max(0, top - halo), max(0, left - halo)
        b1, r1 = min(height, bottom + halo), min(width, right + halo)
        result = fn(x[..., t0:b1, l0:r1])
        if out is None:
            shape = (*result.shape[:2], int(height * scale), int(width * scale))
            out = result.new_empty(shape)
        rows = slice(int((top - t0) * scale), int((bottom - t0) * scale))
        cols = slice(int((left - l0) * scale), int((right - l0) * scale))
        out[..., int(top * scale) : int(bottom * scale), int(left * scale) : int(right * scale)] = result[
            ..., rows, cols
        ]
        if on_tile is not None:
            on_tile(done, len(corners))
    assert out is not None
    return out
