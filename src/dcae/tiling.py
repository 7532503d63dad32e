"""Running a spatial computation tile by tile, with overlapping halos, to bound peak memory.

Each tile is computed from a crop of the input that includes a halo of context around it, and
only its centre is kept. Where the halo covers the computation's reach the stitched result
equals the whole-image result: exactly for the entropy-parameter networks (whose reach is known,
:mod:`dcae.entropy_parameters`), and up to a vanishing difference for the analysis and synthesis
transforms (see ``benchmarks/receptive_field.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch

# Images above this many (padded) pixels run the transforms on tiles of DEFAULT_TILE pixels.
AUTO_TILE_PIXELS = 1536 * 1536
DEFAULT_TILE = 1024
# Context around each tile; the compact model's transforms change nothing measurable beyond
# about 100 pixels (benchmarks/receptive_field.py).
DEFAULT_HALO = 128

# Called with (tiles done, tiles in all) after each tile.
TileProgress = Callable[[int, int], None]


def tile_side(height: int, width: int, tile: "int | None") -> int:
    """The tile side (pixels) for an image of this padded size: ``tile=None`` tiles only images
    above ``AUTO_TILE_PIXELS``; ``0`` (the result too) means the whole image in one piece."""
    if tile is None:
        return DEFAULT_TILE if height * width > AUTO_TILE_PIXELS else 0
    return tile if tile and (height > tile or width > tile) else 0


@dataclass(frozen=True)
class Tile:
    """One tile: the crop it is computed from (``rows``, ``cols``, halo included) and where its
    centre lies inside that crop (``inner_rows``, ``inner_cols``) and in the whole (``rows_kept``,
    ``cols_kept``), in input units."""

    rows: slice
    cols: slice
    rows_kept: slice
    cols_kept: slice

    @property
    def inner_rows(self) -> slice:
        return slice(self.rows_kept.start - self.rows.start, self.rows_kept.stop - self.rows.start)

    @property
    def inner_cols(self) -> slice:
        return slice(self.cols_kept.start - self.cols.start, self.cols_kept.stop - self.cols.start)


def tiles(height: int, width: int, tile: int, halo: int) -> list[Tile]:
    """The tiles covering a ``height`` x ``width`` input in raster order; ``tile <= 0`` or a tile
    at least as large as the input gives one tile, the whole input. When ``tile`` and ``halo``
    are multiples of some step, every crop starts at a multiple of it (windows stay aligned)."""
    if tile <= 0:
        tile = max(height, width)
    found = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            found.append(
                Tile(
                    rows=slice(max(0, top - halo), min(height, bottom + halo)),
                    cols=slice(max(0, left - halo), min(width, right + halo)),
                    rows_kept=slice(top, bottom),
                    cols_kept=slice(left, right),
                )
            )
    return found


def _scaled(part: slice, scale: Fraction) -> slice:
    return slice(int(part.start * scale), int(part.stop * scale))


def map_tiles(
    fn: Callable[[Tile], torch.Tensor],
    height: int,
    width: int,
    tile: int,
    halo: int,
    scale: Fraction = Fraction(1),
    on_tile: "TileProgress | None" = None,
) -> torch.Tensor:
    """Assemble the (B, C, height * scale, width * scale) result of ``fn`` tile by tile.

    ``fn`` gets a :class:`Tile` and returns the result over the tile's crop (``tile.rows``,
    ``tile.cols``), sides times ``scale``; only the centre is kept. ``tile * scale`` and
    ``halo * scale`` must be whole numbers. The result's dtype and device are the first tile's.
    """
    if (tile * scale).denominator != 1 or (halo * scale).denominator != 1:
        raise ValueError(f"tile {tile} and halo {halo} must map to whole output units at scale {scale}")
    out: "torch.Tensor | None" = None
    plan = tiles(height, width, tile, halo)
    for done, part in enumerate(plan, 1):
        result = fn(part)
        if len(plan) == 1:
            if on_tile is not None:
                on_tile(1, 1)
            return result
        if out is None:
            shape = (*result.shape[:2], int(height * scale), int(width * scale))
            out = result.new_empty(shape)
        centre = result[..., _scaled(part.inner_rows, scale), _scaled(part.inner_cols, scale)]
        out[..., _scaled(part.rows_kept, scale), _scaled(part.cols_kept, scale)] = centre
        del result, centre
        if on_tile is not None:
            on_tile(done, len(plan))
    assert out is not None
    return out


def tile_count(height: int, width: int, tile: int) -> int:
    """How many tiles :func:`tiles` makes (for progress totals)."""
    if tile <= 0:
        return 1
    return -(-height // tile) * -(-width // tile)
