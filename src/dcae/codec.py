"""The codec: images to ``.dcae`` files and back with a trained DCAE model.

Data flows one way: an image is padded and analysed (``g_a`` and the gain, tiled when large),
the latents are entropy-coded (:mod:`dcae.latent_coder`), and the payload is wrapped in the
container (:mod:`dcae.bitstream`); decoding reverses each step. Rate control lives in
:mod:`dcae.rate_control`, encoder-side latent optimisation in :mod:`dcae.latent_optimization`.

>>> import numpy as np
>>> from dcae.codec import load_codec
>>> from dcae.metrics import psnr
>>> codec = load_codec("default")
>>> image = np.full((48, 80, 3), 128, dtype=np.uint8)  # any (H, W, 3) uint8 array, path or PIL image
>>> compressed = codec.compress(image, quality=2)
>>> compressed.header.width, compressed.header.height, compressed.header.portable
(80, 48, True)
>>> decoded = codec.decompress(compressed.data)
>>> decoded.pixels.shape, psnr(image, decoded.pixels) > 40
((48, 80, 3), True)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import bitstream
from . import quality_map as quality_maps
from .bitstream import ColourMode, Header, PadMode
from .entropy.tables import DEFAULT_SCALE_TABLE_SIZE
from .entropy_parameters import DEFAULT_CHUNK
from .errors import ConfigError, FormatError, ImageError, ModelMismatchError, QualityError
from .imageio import (
    DEFAULT_MAX_PIXELS,
    ImageLike,
    check_pixels,
    image_tensor,
    load_image,
    pad_pixels,
    quantize_pixels,
    to_pil,
)
from .latent_coder import EncodedLatents, LatentCoder
from .latent_optimization import optimize_for_quality
from .memory import check_fits
from .model import DCAE
from .progress import Progress, StagedProgress, StageProgress
from .rate_control import MAX_BISECTION_STEPS, bisect_quality, fit_optimized_to_size
from .tiling import DEFAULT_HALO, Tile, TileProgress, map_tiles, tile_count, tile_side
from .weights import state_digest

ARCHITECTURE = "dcae"


@dataclass(frozen=True)
class CodecOptions:
    """How a :class:`Codec` codes; every field has the default users get.

    Attributes:
        portable: compute the entropy parameters (everything that decides the probability of a
            coded symbol) in float64 on the CPU (:mod:`dcae.portable`), so the file decodes to
            the same latents on any machine. ``False`` computes them in float32 on the codec's
            device: faster, but such a machine-specific file decodes only where the arithmetic
            matches the encoder's (elsewhere decoding raises ``LatentMismatchError``). The
            choice is recorded in the file and the decoder follows it.
        optimize_steps: gradient steps the encoder spends adapting each image's latents before
            coding (:mod:`dcae.latent_optimization`): smaller files at equal quality, each step
            about the work of a training step. Decoding is unchanged.
        scale_table_size: number of scales in the y coder's table.
        pad_mode: how images are extended to the model stride.
        tile: side (pixels, a multiple of the model stride) of the tiles the analysis and
            synthesis transforms run on; ``None`` tiles only large images, ``0`` never tiles.
            Entropy coding always covers the whole image, so tiling changes memory use, not the
            file.
        halo: context around each tile, in pixels (a multiple of the model stride).
        entropy_chunk: side, in latent positions (16 pixels each, a multiple of 4), of the chunks
            the entropy-parameter networks run on, which bounds their memory; ``0`` runs every
            image in one piece. Any chunk gives the same file (docs/format.md).
        max_pixels: the largest image (width x height) to encode or decode, against
            decompression bombs; ``None`` lifts the limit. Pillow's default.
        onnx_synthesis: a folder written by ``dcae export MODEL --onnx DIR`` for these weights:
            decoding then runs the synthesis transform in onnxruntime (about a third faster on
            this project's CPU; pixels within the same one-level guarantee).
    """

    portable: bool = True
    optimize_steps: int = 0
    scale_table_size: int = DEFAULT_SCALE_TABLE_SIZE
    pad_mode: PadMode = PadMode.REPLICATE
    tile: "int | None" = None
    halo: int = DEFAULT_HALO
    entropy_chunk: int = DEFAULT_CHUNK
    max_pixels: "int | None" = DEFAULT_MAX_PIXELS
    onnx_synthesis: "str | None" = None

    def __post_init__(self) -> None:
        if self.max_pixels is not None and (not _is_int(self.max_pixels) or self.max_pixels < 1):
            raise ConfigError(f"max_pixels must be a positive whole number or None, got {self.max_pixels!r}")
        if not _is_int(self.optimize_steps) or self.optimize_steps < 0:
            raise QualityError(f"optimize_steps must be a whole number >= 0, got {self.optimize_steps!r}")
        if not _is_int(self.entropy_chunk) or self.entropy_chunk < 0 or self.entropy_chunk % 4:
            raise ConfigError(f"entropy_chunk must be 0 or a positive multiple of 4, got {self.entropy_chunk!r}")
        if not _is_int(self.scale_table_size) or not 2 <= self.scale_table_size <= 4096:
            raise ConfigError(f"scale_table_size must be in 2..4096, got {self.scale_table_size!r}")
        object.__setattr__(self, "pad_mode", PadMode(self.pad_mode))


@dataclass(frozen=True)
class CompressedImage:
    """A ``.dcae`` file and what it holds; ``bytes(result)`` is the file."""

    data: bytes
    header: Header
    seconds: float = field(compare=False)  # encoding time (a batch's time is shared evenly)

    def __bytes__(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        """The file's size in bytes."""
        return len(self.data)

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file (header included)."""
        return 8 * len(self.data) / self.header.num_pixels


@dataclass(frozen=True)
class DecodedImage:
    """The pixels of a decoded file and its header."""

    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    header: Header
    seconds: float = field(compare=False)  # decoding time (a batch's time is shared evenly)

    def to_pil(self) -> Image.Image:
        """A PIL image in the source's colour mode (grayscale stays grayscale)."""
        return to_pil(self.pixels, self.header.colour_mode)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class Codec:
    """Compresses images to ``.dcae`` files and back with one set of weights.

    Args:
        model: a trained :class:`DCAE`; the codec runs it where it is (its device), without
            changing it.
        name: how the model is called in messages (a release name or a file name).
        digest: hex SHA-256 of the weights (computed when not given).
        options: how to code (:class:`CodecOptions`).
        lambdas: the rate-distortion trade-offs the model was trained with, one per rate point
            (the weights' metadata holds them); needed by ``options.optimize_steps``.
    """

    def __init__(
        self,
        model: DCAE,
        name: str = "custom",
        digest: "str | None" = None,
        options: "CodecOptions | None" = None,
        lambdas: "Sequence[float] | None" = None,
    ) -> None:
        self.options = options or CodecOptions()
        stride = model.config.stride
        for option, value in (("tile", self.options.tile or 0), ("halo", self.options.halo)):
            if not _is_int(value) or value < 0 or value % stride:
                raise ConfigError(f"{option} must be a non-negative multiple of {stride}, got {value!r}")
        rate_points = max(model.config.num_rate_points, 1)
        if self.options.optimize_steps and (lambdas is None or len(lambdas) != rate_points):
            raise QualityError(
                f"latent optimisation needs the model's {rate_points} training lambda(s) (from its weights' "
                f"metadata), got {None if lambdas is None else list(lambdas)}"
            )
        self.model = model
        self.name = name
        self.lambdas = None if lambdas is None else [float(v) for v in lambdas]
        self.device = next(model.parameters()).device
        self.digest_hex = digest or state_digest(model.state_dict())
        self.digest = bytes.fromhex(self.digest_hex)[:8]
        self.latents = LatentCoder(model, self.device, self.options.entropy_chunk)
        self._onnx_synthesis = None
        if self.options.onnx_synthesis is not None:
            from .export import OnnxSynthesis

            self._onnx_synthesis = OnnxSynthesis(self.options.onnx_synthesis, self.digest_hex)

    # ------------------------------------------------------------------------------- qualities
    @property
    def variable_rate(self) -> bool:
        """Whether ``quality`` is continuous (gain units) rather than fixed."""
        return self.model.variable_rate

    @property
    def quality_range(self) -> "tuple[float, float] | None":
        """The (lowest, highest) quality, or None for a single-rate model."""
        if not self.variable_rate:
            return None
        return 0.0, float(self.model.config.num_rate_points - 1)

    def default_quality(self) -> "float | None":
        """The middle of the quality range (None for single-rate models)."""
        rng = self.quality_range
        return None if rng is None else (rng[0] + rng[1]) / 2

    def check_quality(self, quality: "float | None") -> "float | None":
        """The quality that will be coded for ``quality`` (None: the default), as the header's
        float32 stores it; raises :class:`QualityError` when the model cannot honour it."""
        if quality is not None and not _is_real(quality):
            raise QualityError(f"quality must be a number, got {type(quality).__name__} {quality!r}")
        if quality is None and self.variable_rate:
            quality = self.default_quality()
        try:
            self.model.check_quality(quality)
        except ValueError as error:
            raise QualityError(str(error)) from None
        return None if quality is None else float(np.float32(quality))

    # ---------------------------------------------------------------------------- transforms
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

    @torch.inference_mode()
    def encode_features(
        self, features: torch.Tensor, quality: "float | torch.Tensor | None", on_step: "StageProgress | None" = None
    ) -> EncodedLatents:
        """Entropy-code analysis features (from :meth:`analyse`) at ``quality`` (a number or a map)."""
        y = self.model.gain(features, quality)
        return self.encode_latents(y, self.model.h_a(y), on_step)

    @torch.inference_mode()
    def encode_latents(
        self, y: torch.Tensor, z: torch.Tensor, on_step: "StageProgress | None" = None
    ) -> EncodedLatents:
        """Entropy-code a gained latent y and its hyper-latent z."""
        return self.latents.encode(y, z, self.options.scale_table_size, self.options.portable, on_step)

    def _padded_pixels(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        batch = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
        return pad_pixels(batch, self.model.stride, self.options.pad_mode)

    def _encode_stages(self, pixels: np.ndarray, progress: "Progress | None", trials: int = 1) -> StagedProgress:
        height, width = pixels.shape[1:3]
        stride = self.model.config.latent_stride
        entropy = self.latents.steps((height // stride, width // stride)) * trials
        return StagedProgress(progress, [("analysis", self.analysis_steps(height, width)), ("entropy coding", entropy)])

    # ---------------------------------------------------------------------------- compression
    def compress(
        self,
        image: ImageLike,
        quality: "float | None" = None,
        target_bpp: "float | None" = None,
        target_size: "int | None" = None,
        progress: "Progress | None" = None,
        quality_map: "np.ndarray | None" = None,
    ) -> CompressedImage:
        """Compress one image (path, PIL image or array) to a ``.dcae`` file.

        Give at most one of ``quality``, ``target_bpp`` (bits per pixel of the whole file),
        ``target_size`` (bytes of the whole file) or ``quality_map`` (an (H, W) array with a
        quality per pixel, e.g. from :func:`dcae.quality_map.roi_quality_map`: regions of
        interest; each 16x16 block takes its highest quality, at most 16 distinct ones). With a
        target, the quality is found by bisection so the file lands at or below the target,
        within 3% of it where the model's range allows; a target below the smallest file the
        model can write raises :class:`QualityError`. ``progress`` hears (stage, steps done,
        steps in all) as tiles, chunks and slices finish, counted over the whole compression.
        """
        start = time.perf_counter()
        given = [v is not None for v in (quality, target_bpp, target_size, quality_map)]
        if sum(given) > 1:
            raise QualityError("give only one of quality, target_bpp, target_size and quality_map")
        array, mode = load_image(image, self.options.max_pixels, check_fits)
        height, width = array.shape[:2]
        bitstream.check_size(width, height)
        if quality_map is not None:
            return self._compress_with_map(array, mode, quality_map, start, progress)
        if target_bpp is None and target_size is None:
            return self._compress_arrays([array], [mode], self.check_quality(quality), start, progress)[0]
        if target_bpp is not None:
            if not _is_real(target_bpp) or not math.isfinite(target_bpp) or target_bpp <= 0:
                raise QualityError(f"target bpp must be a positive finite number, got {target_bpp!r}")
            target_size = int(target_bpp * height * width / 8)
        if not _is_real(target_size) or not math.isfinite(target_size) or target_size < 1:
            raise QualityError(f"target size must be a positive number of bytes, got {target_size!r}")
        found = self._compress_to_size(array, mode, int(min(target_size, bitstream.MAX_FILE_BYTES)), progress)
        return dataclasses.replace(found, seconds=time.perf_counter() - start)

    def _compress_with_map(
        self, array: np.ndarray, mode: ColourMode, pixel_map: np.ndarray, start: float, progress: "Progress | None"
    ) -> CompressedImage:
        if not self.variable_rate:
            raise QualityError("a quality map needs a variable-rate model (this one has a single rate)")
        if self.options.optimize_steps:
            raise QualityError("latent optimisation does not take a quality map")
        height, width = array.shape[:2]
        latent_map = quality_maps.to_latent_map(pixel_map, width, height)
        for level in latent_map.levels:
            self.check_quality(level)
        pixels = self._padded_pixels([array])
        stages = self._encode_stages(pixels, progress)
        with torch.inference_mode():
            features = self.analyse(pixels, stages.stage("analysis"))
            map_tensor = quality_maps.as_tensor(latent_map, self.device)
            coded = self.encode_features(features, map_tensor, stages.stage("entropy coding"))
        dominant = quality_maps.dominant_quality(latent_map)
        found = self._pack(coded.payloads[0], coded.checksums[0], width, height, dominant, mode, latent_map)
        return dataclasses.replace(found, seconds=time.perf_counter() - start)

    def compress_batch(self, images: Sequence[ImageLike], quality: "float | None" = None) -> list[CompressedImage]:
        """Compress images of one size together (one network pass); one file per image."""
        start = time.perf_counter()
        if not images:
            return []
        count = len(images)  # the batch is coded at once: it needs the memory of one image of all their pixels
        arrays, modes = zip(
            *(
                load_image(image, self.options.max_pixels, lambda w, h, what: check_fits(w, h * count, what))
                for image in images
            )
        )
        sizes = {a.shape[:2] for a in arrays}
        if len(sizes) != 1:
            raise ImageError(f"a batch must hold images of one size, got {sorted(sizes)}")
        bitstream.check_size(arrays[0].shape[1], arrays[0].shape[0])
        return self._compress_arrays(list(arrays), list(modes), self.check_quality(quality), start)

    def _compress_arrays(
        self,
        arrays: list[np.ndarray],
        modes: list[ColourMode],
        quality: "float | None",
        start: float,
        progress: "Progress | None" = None,
    ) -> list[CompressedImage]:
        height, width = arrays[0].shape[:2]
        pixels = self._padded_pixels(arrays)
        if self.options.optimize_steps:
            # latent optimisation holds the whole image and its gradients (at most 1536x1536)
            coded = self.encode_latents(*self._optimized_latents(image_tensor(pixels), quality, (height, width)))
        else:
            stages = self._encode_stages(pixels, progress)
            with torch.inference_mode():
                features = self.analyse(pixels, stages.stage("analysis"))
                coded = self.encode_features(features, quality, stages.stage("entropy coding"))
        files = [
            self._pack(payload, checksum, width, height, quality, mode)
            for payload, checksum, mode in zip(coded.payloads, coded.checksums, modes)
        ]
        share = (time.perf_counter() - start) / len(files)
        return [dataclasses.replace(found, seconds=share) for found in files]

    def _compress_to_size(
        self, array: np.ndarray, mode: ColourMode, max_bytes: int, progress: "Progress | None"
    ) -> CompressedImage:
        if not self.variable_rate:
            raise QualityError("rate control needs a variable-rate model (this one has a single rate)")
        height, width = array.shape[:2]
        pixels = self._padded_pixels([array])
        most_trials = MAX_BISECTION_STEPS + 2
        stages = self._encode_stages(pixels, progress, most_trials)
        with torch.inference_mode():
            features = self.analyse(pixels, stages.stage("analysis"))
        trials = [0]

        def plain_at(q: float) -> CompressedImage:
            coded = self.encode_features(features, q, stages.stage("entropy coding", trials[0], most_trials))
            trials[0] += 1
            return self._pack(coded.payloads[0], coded.checksums[0], width, height, q, mode)

        if not self.options.optimize_steps:
            found = bisect_quality(plain_at, max_bytes, self.quality_range)[1]
            stages.finish("entropy coding")
            return found

        def optimized_at(q: float) -> CompressedImage:
            coded = self.encode_latents(*self._optimized_latents(image_tensor(pixels), q, (height, width)))
            return self._pack(coded.payloads[0], coded.checksums[0], width, height, q, mode)

        def squared_error(data: CompressedImage) -> float:
            return float(np.mean((self.decompress(data).pixels - np.asarray(array, dtype=np.float64)) ** 2))

        return fit_optimized_to_size(plain_at, optimized_at, squared_error, max_bytes, self.quality_range)

    def _optimized_latents(
        self, x: torch.Tensor, quality: "float | None", size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        found = optimize_for_quality(
            self.model, x.to(self.device, torch.float32), quality, self.lambdas or [], self.options.optimize_steps, size
        )
        return found.y, found.z

    def _pack(
        self,
        payload: bytes,
        checksum: int,
        width: int,
        height: int,
        quality: "float | None",
        mode: ColourMode,
        quality_map: "bitstream.QualityMap | None" = None,
    ) -> CompressedImage:
        """The file of a payload, with the header it was given (its time is set by the caller)."""
        header = Header(
            width=width,
            height=height,
            architecture=ARCHITECTURE,
            digest=self.digest,
            quality=quality,
            scale_table_size=self.options.scale_table_size,
            num_slices=self.model.config.num_slices,
            colour_mode=mode,
            pad_mode=self.options.pad_mode,
            latent_checksum=checksum,
            portable=self.options.portable,
            quality_map=quality_map,
        )
        return CompressedImage(bitstream.pack(header, payload), header, seconds=0.0)

    # ------------------------------------------------------------------------------ decoding
    def read_header(self, data: "bytes | CompressedImage") -> tuple[Header, bytes]:
        """Parse a file and check that this codec's model wrote it; returns header and payload."""
        header, payload = bitstream.unpack(bytes(data))
        check_pixels(header.width, header.height, self.options.max_pixels, "the file's image")
        check_fits(header.width, header.height, "the file's image")
        if header.architecture != ARCHITECTURE:
            raise FormatError(f"unsupported architecture {header.architecture!r} in .dcae file")
        if header.digest != self.digest:
            raise ModelMismatchError(
                f"the file was written with other weights (model {header.digest.hex()}) than {self.name} "
                f"(model {self.digest.hex()}); decode it with the model that wrote it"
            )
        if header.num_slices != self.model.config.num_slices:
            raise FormatError("slice count in the header does not match the model")
        if (header.quality is None) == self.variable_rate:
            raise FormatError("the header's quality setting does not fit this model")
        qualities = [header.quality] if header.quality is not None else []
        if header.quality_map is not None:
            qualities += header.quality_map.levels
        for quality in qualities:
            try:
                self.model.check_quality(quality)
            except ValueError as error:
                raise FormatError(f"the header's quality is invalid for this model: {error}") from None
        return header, payload

    def decompress(
        self,
        data: "bytes | CompressedImage",
        preview_slices: "int | None" = None,
        progress: "Progress | None" = None,
    ) -> DecodedImage:
        """Decode a ``.dcae`` file. ``preview_slices = K`` reads only the first K latent slices
        (faster, coarser; not checked against the latent checksum). ``progress`` hears (stage,
        steps done, steps in all) as chunks, slices and tiles finish."""
        return self.decompress_batch([data], preview_slices, progress)[0]

    def decompress_batch(
        self,
        files: Sequence["bytes | CompressedImage"],
        preview_slices: "int | None" = None,
        progress: "Progress | None" = None,
    ) -> list[DecodedImage]:
        """Decode files of one size, quality and coding setting together."""
        start = time.perf_counter()
        if not files:
            return []
        slices = self.model.config.num_slices
        if preview_slices is not None and (not _is_int(preview_slices) or not 0 <= preview_slices <= slices):
            raise QualityError(f"preview_slices must be a whole number in 0..{slices}, got {preview_slices!r}")
        parsed = [self.read_header(data) for data in files]
        first = parsed[0][0]

        def setting(header: Header) -> tuple:
            return (
                header.width,
                header.height,
                header.quality,
                header.scale_table_size,
                header.portable,
                header.quality_map,
            )

        if any(setting(header) != setting(first) for header, _ in parsed[1:]):
            raise FormatError("batched decoding needs files of one size, quality and coder setting")
        latent_stride = self.model.config.latent_stride
        latent_size = bitstream.latent_size(first.width, first.height)
        shortest = min(len(payload) for _, payload in parsed)
        if shortest < self.latents.minimum_payload_bytes(latent_size):
            raise FormatError(
                f"the payload ({shortest} bytes) is too short for a {first.width}x{first.height} image "
                f"(at least {self.latents.minimum_payload_bytes(latent_size)} bytes): a damaged or crafted file"
            )
        padded = (latent_size[0] * latent_stride, latent_size[1] * latent_stride)
        stages = StagedProgress(
            progress,
            [("entropy decoding", self.latents.steps(latent_size)), ("synthesis", self.synthesis_steps(*padded))],
        )
        y_hat = self.latents.decode(
            [payload for _, payload in parsed],
            latent_size,
            first.scale_table_size,
            first.portable,
            preview_slices,
            [header.latent_checksum for header, _ in parsed],
            stages.stage("entropy decoding"),
        )
        quality: "float | torch.Tensor | None" = first.quality
        if first.quality_map is not None:
            quality = quality_maps.as_tensor(first.quality_map, self.device)
        with torch.inference_mode():
            pixels = self.synthesise(y_hat, quality, (first.height, first.width), stages.stage("synthesis"))
        del y_hat
        share = (time.perf_counter() - start) / len(parsed)
        return [DecodedImage(p, header, share) for p, (header, _) in zip(pixels, parsed)]


def load_codec(
    model: "str | os.PathLike[str] | DCAE" = "default",
    device: "str | torch.device | None" = None,
    **options: Any,
) -> Codec:
    """A :class:`Codec` for a released model name (``dcae models``), a weights file, or a model.

    ``device`` places a loaded model (default: the CPU); a model object is used where it is.
    Keyword arguments are :class:`CodecOptions` fields.
    """
    from .weights import load_weights
    from .zoo import resolve_model_path

    codec_options = CodecOptions(**options)
    if isinstance(model, DCAE):
        if device is not None and torch.device(device) != next(model.parameters()).device:
            raise ConfigError("load_codec uses a model object where it is: move it to the device first")
        return Codec(model, options=codec_options)
    path = resolve_model_path(model)
    net, meta = load_weights(path, device=device or "cpu")
    name = str(model) if not Path(str(model)).exists() else Path(path).name
    lambdas = None
    if codec_options.optimize_steps:
        if meta.get("distortion", "mse") != "mse":
            raise QualityError(f"latent optimisation supports models trained for MSE, not {meta['distortion']}")
        lambdas = meta.get("lambdas")
    return Codec(net, name=name, digest=meta.get("digest"), options=codec_options, lambdas=lambdas)
