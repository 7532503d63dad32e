"""A model's entropy-parameter networks, in a chosen precision, evaluated chunk by chunk.

Everything between the decoded integers and a probability table (the hyper synthesis, the
dictionary cross-attention, the slice contexts and the latent residual prediction) is computed
here for the latent coder, in two settings:

* **float64 on the CPU**, for portable files: differences between machines (vector widths, BLAS
  blocking, thread counts, PyTorch builds) stay near 1e-15 relative, some ten orders of
  magnitude below the spacing of the coder's scale table, so every machine makes the same
  coding decisions (the residual risk is measured in docs/format.md);
* **float32 where the model is**, for machine-specific files of images too large for one chunk
  (smaller ones run through the model's own methods, as they always have).

**Bounded memory.** The networks are local: each output position depends on the inputs within a
known reach (:func:`context_reach`, :func:`hyper_reach`, tested by perturbation). So each is
evaluated on square chunks of the latent grid with that reach as a halo, and only the chunk's
centre is kept (:func:`dcae.tiling.map_tiles`): the temporaries of a network grow with the chunk,
not the image. What persists per image is small: the hyper features, the quantised slices, and
per slice its means, scales and one first-layer response. An image that fits in one chunk is
computed in one piece, operation for operation as before chunking existed.

**Arrangement.** Float64 products run at a quarter of float32's rate here, and the largest
cost is the first 3x3 convolution of the mean, scale and residual-prediction networks, which all
read the same support features: they run as one convolution (one large matrix product instead of
three), and the residual-prediction network's share of the quantised slice is added when that
slice is known. That also means the support features (hundreds of channels) are never kept for
the whole image.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import DCAEConfig
from .model import DCAE, ContextNetwork, SliceContext
from .tiling import Tile, TileProgress, map_tiles, tile_count

# Default chunk side in latent positions (16 pixels each): a 1536x1536 image is one chunk. The
# float64 networks of the compact model need about 60 kB per position of a chunk, so a chunk
# with its halo peaks near 0.7 GB whatever the image size.
DEFAULT_CHUNK = 96


def context_reach(config: DCAEConfig) -> int:
    """How far (latent positions) a slice's means, scales and first-layer response reach into
    the query features: the dictionary attention's dense block (one depthwise 3x3 per level),
    its 7x7 spatial gate and the feed-forward's depthwise 3x3, then the three 3x3 convolutions
    of the mean and scale networks."""
    return config.dict_dense_depth + 3 + 1 + 3


# The residual prediction after its first layer: two more 3x3 convolutions, plus the first
# layer's own 3x3 over the quantised slice.
REFINE_REACH = 3


def hyper_alignment(config: DCAEConfig) -> int:
    """The step (z positions) at which hyper chunks start, so the hyper synthesis' Swin windows
    (at twice z's resolution) fall where they fall for the whole image."""
    return config.hyper_window // math.gcd(config.hyper_window, 2)


def hyper_reach(config: DCAEConfig) -> int:
    """How far (z positions) a hyper feature reaches into z: the first transposed convolution
    (one z position), the Swin stage (a window per layer, and its 3x3 convolution) and the
    residual upsampling (three 3x3 convolutions and a 5x5 transposed one), at twice z's
    resolution; rounded up to the chunk alignment."""
    at_double = config.hyper_depth * config.hyper_window + 1 + 3 + 1
    reach = math.ceil(at_double / 2) + 1
    step = hyper_alignment(config)
    return -(-reach // step) * step


def hyper_tile(config: DCAEConfig, chunk: int) -> int:
    """The side (z positions) of the hyper features' chunks for latent chunks of ``chunk``."""
    step = hyper_alignment(config)
    return -(-(chunk // config.hyper_ratio) // step) * step


@dataclass(frozen=True)
class ChunkPlan:
    """How an image's latent grid is cut into chunks (for memory estimates and progress)."""

    config: DCAEConfig
    latent_size: tuple[int, int]
    chunk: int

    @property
    def chunks(self) -> int:
        """Chunks per pass over the slices."""
        return tile_count(*self.latent_size, self.chunk)

    @property
    def steps(self) -> int:
        """Chunks computed in all: the hyper features, then a context and a refinement pass per slice."""
        ratio = self.config.hyper_ratio
        z_size = (self.latent_size[0] // ratio, self.latent_size[1] // ratio)
        return tile_count(*z_size, hyper_tile(self.config, self.chunk)) + 2 * self.config.num_slices * self.chunks


class EntropyParameterNetworks(nn.Module):
    """The entropy-parameter parts of ``model`` (:attr:`DCAE.ENTROPY_PARAMETER_PARTS`) in
    ``dtype`` on ``device``, with the slice loop's interface (:class:`dcae.model.EntropyParameters`).

    Parts already in that precision and place are shared with the model, not copied; others are
    converted copies. ``chunk`` is the side (latent positions, a multiple of 4) of the chunks
    the networks run on; 0 runs every image in one piece. ``on_tile`` hears about every chunk
    each method finishes (see :meth:`reporting`).
    """

    def __init__(self, model: DCAE, dtype: torch.dtype, device: torch.device, chunk: int = DEFAULT_CHUNK) -> None:
        super().__init__()
        ratio = model.config.hyper_ratio
        if chunk < 0 or chunk % ratio:
            raise ValueError(f"chunk must be 0 or a positive multiple of {ratio} latent positions, got {chunk}")
        self.config = model.config
        self.chunk = chunk
        self._ratio = ratio
        for name in DCAE.ENTROPY_PARAMETER_PARTS:
            part = getattr(model, name)
            if _precision(part) != (dtype, device) and isinstance(part, torch.Tensor):
                part = part.detach().to(device, dtype)
            elif _precision(part) != (dtype, device):
                part = copy.deepcopy(part).to(device, dtype).requires_grad_(False).eval()
            setattr(self, name, part)
        self.on_tile: "TileProgress | None" = None

    def plan(self, latent_size: tuple[int, int]) -> ChunkPlan:
        """How a latent grid of ``latent_size`` is cut."""
        return ChunkPlan(self.config, latent_size, self.chunk)

    def reporting(self, on_tile: "TileProgress | None") -> "EntropyParameterNetworks":
        """A shallow copy that calls ``on_tile`` (chunks done, chunks in the pass) after each chunk."""
        view = copy.copy(self)
        view.on_tile = on_tile
        return view

    def _map(self, fn: Callable[[Tile], torch.Tensor], size: tuple[int, int], tile: int, halo: int, scale=1):
        return map_tiles(fn, *size, tile, halo, scale, self.on_tile)

    def hyper_features(self, z_hat: torch.Tensor) -> torch.Tensor:
        """As :meth:`DCAE.hyper_features`, on chunks of z aligned to the hyper Swin windows."""
        tile = hyper_tile(self.config, self.chunk)

        def features(part: Tile) -> torch.Tensor:
            z = z_hat[..., part.rows, part.cols]
            return torch.cat([self.h_z_s1(z), self.h_z_s2(z)], dim=1)

        return self._map(features, z_hat.shape[-2:], tile, hyper_reach(self.config), self._ratio)

    def slice_context(self, index: int, hyper: torch.Tensor, previous: list[torch.Tensor]) -> SliceContext:
        """As :meth:`DCAE.slice_context`, chunk by chunk; the context's ``support`` is the
        residual-prediction network's first-layer response to the support features."""
        support_slices = previous[: self.config.support_count(index)]
        mean_net: ContextNetwork = self.cc_mean_transforms[index]
        scale_net: ContextNetwork = self.cc_scale_transforms[index]
        lrp_net: ContextNetwork = self.lrp_transforms[index]
        support_channels = mean_net.first.in_channels
        weight = torch.cat([mean_net.first.weight, scale_net.first.weight, lrp_net.first.weight[:, :support_channels]])
        bias = torch.cat([mean_net.first.bias, scale_net.first.bias, lrp_net.first.bias])
        hidden = mean_net.first.out_channels

        def context(part: Tile) -> torch.Tensor:
            query = torch.cat(
                [hyper[..., part.rows, part.cols], *(s[..., part.rows, part.cols] for s in support_slices)], 1
            )
            support = torch.cat([query, self.dt_cross_attention[index](query, self.dt)], dim=1)
            first = F.conv2d(support, weight, bias, padding=1)
            del query, support
            mean_first, scale_first, lrp_first = first.split(hidden, dim=1)
            return torch.cat([mean_net.rest(mean_first), scale_net.rest(scale_first), lrp_first], dim=1)

        found = self._map(context, hyper.shape[-2:], self.chunk, context_reach(self.config))
        channels = self.config.slice_channels
        mean, scale, lrp_first = found.split([channels, channels, hidden], dim=1)
        return SliceContext(mean=mean, scale=scale, support=lrp_first)

    def refine_slice(self, index: int, context: SliceContext, y_hat_slice: torch.Tensor) -> torch.Tensor:
        """As :meth:`DCAE.refine_slice`, from the context's first-layer response, chunk by chunk."""
        lrp_net: ContextNetwork = self.lrp_transforms[index]
        slice_weight = lrp_net.first.weight[:, -y_hat_slice.shape[1] :]

        def refined(part: Tile) -> torch.Tensor:
            y_hat = y_hat_slice[..., part.rows, part.cols]
            first = context.support[..., part.rows, part.cols] + F.conv2d(y_hat, slice_weight, padding=1)
            return y_hat + 0.5 * torch.tanh(lrp_net.rest(first))

        return self._map(refined, y_hat_slice.shape[-2:], self.chunk, REFINE_REACH)


def _precision(part: "nn.Module | torch.Tensor") -> tuple[torch.dtype, torch.device]:
    tensor = part if isinstance(part, torch.Tensor) else next(part.parameters())
    return tensor.dtype, tensor.device
