"""The analysis and synthesis transforms of a codec: 8-bit pixels to latents and back, on
overlapping tiles when an image is large (:mod:`dcae.tiling`), so that neither the whole image in
floats nor the whole set of a transform's activations is ever held."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from .codec_types import CodecOptions
from .imageio import image_tensor, quantize_pixels
from .model import DCAE
from .tiling import Tile, TileProgress, map_tiles, tile_count, tile_side


class Transforms:
    """A model's transforms as a codec runs them (its tiling options, its device, and optionally
    the synthesis in onnxruntime: ``onnx_synthesis``, from :class:`dcae.export.OnnxSynthesis`)."""

    def __init__(self, model: DCAE, options: CodecOptions, device: torch.device, onnx_synthesis=None) -> None:
        self.model = model
        self.options = options
        self.device = device
        self._onnx_synthesis = onnx_synthesis

    def _transform_tile(self, height: int, width: int, pixels_per_input: int) -> int:
        """Tile side in input units for a padded image of ``height`` x ``width`` pixels (0: whole)."""
        return tile_side(height, width, self.options.tile) // pixels_per_input

    def analysis_steps(self, height: int, width: int) -> int:
        """Progress steps of the analysis of a padded ``height`` x ``width`` image (its tiles)."""
        return tile_count(height, width, self._transform_tile(height, width, 1))

    def synthesis_steps(self, height: int, width: int) -> int:
        """Progress steps of the synthesis of a padded ``height`` x ``width`` image (its tiles)."""
        stride = self.model.config.latent_stride
        return tile_count(height // stride, width // stride, self._transform_tile(height, width, stride))

    def analyse(self, x: "torch.Tensor | np.ndarray", on_tile: "TileProgress | None" = None) -> torch.Tensor:
        """``g_a`` of a padded batch, before the gain, tiled when large: a (B, 3, H, W) float
        tensor in [0, 1], or (B, H, W, 3) uint8 pixels (from :func:`dcae.imageio.pad_pixels`),
        which are converted tile by tile so the whole image never exists in floats."""
        pixels = isinstance(x, np.ndarray)
        height, width = x.shape[1:3] if pixels else x.shape[-2:]

        def analysis(part: Tile) -> torch.Tensor:
            crop = image_tensor(x[:, part.rows, part.cols]) if pixels else x[..., part.rows, part.cols]
            return self.model.g_a(crop.to(self.device, torch.float32))

        tile, halo = self._transform_tile(height, width, 1), self.options.halo
        return map_tiles(analysis, height, width, tile, halo, Fraction(1, self.model.config.latent_stride), on_tile)

    def synthesise(
        self,
        y_hat: torch.Tensor,
        quality: "float | torch.Tensor | None",
        size: tuple[int, int],
        on_tile: "TileProgress | None" = None,
    ) -> np.ndarray:
        """The synthesis transform: quantised y to (B, H, W, 3) uint8 pixels cropped to ``size``
        (height, width), tiled when large and made 8-bit tile by tile (``quality`` a number, or
        a (1, 1, rows, columns) map of the latent positions)."""
        stride = self.model.config.latent_stride
        if self._onnx_synthesis is not None and not isinstance(quality, torch.Tensor):
            # the export's graph applies the inverse gain itself (one quality for the image)
            run, y = self._onnx_synthesis, y_hat
            synthesis = lambda crop: run(crop, quality).to(self.device)  # noqa: E731
        else:
            y, synthesis = self.model.ungain(y_hat, quality), self.model.g_s

        def pixels_of(part: Tile) -> torch.Tensor:
            return quantize_pixels(synthesis(y[..., part.rows, part.cols]))

        height, width = y.shape[-2] * stride, y.shape[-1] * stride
        tile, halo = self._transform_tile(height, width, stride), self.options.halo // stride
        pixels = map_tiles(pixels_of, *y.shape[-2:], tile, halo, Fraction(stride), on_tile)
        return pixels[..., : size[0], : size[1]].permute(0, 2, 3, 1).cpu().numpy()
