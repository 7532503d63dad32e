"""The codec: images to ``.dcae`` bytes and back, with a trained DCAE model."""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import bitstream
from .bitstream import ColourMode, Header, PadMode
from .entropy.coder import ModelCache, SymbolDecoder, SymbolEncoder
from .entropy.tables import DEFAULT_SCALE_TABLE_SIZE, GaussianTables, tabulate_factorized
from .errors import CodingError, FormatError, LatentMismatchError, ModelMismatchError, QualityError
from .imageio import ImageLike, load_image, to_pil
from .latent_optimization import lambda_for_quality, optimize_latents
from .model import DCAE
from .portable import PortableParameters
from .tiling import run_tiled
from .weights import state_digest

ARCHITECTURE = "dcae"
# Tiling: images above this many (padded) pixels run the transforms on tiles of DEFAULT_TILE.
AUTO_TILE_PIXELS = 1536 * 1536
DEFAULT_TILE = 1024
# Context around each tile; the compact model's transforms change nothing measurable beyond
# about 100 pixels (benchmarks/receptive_field.py).
DEFAULT_HALO = 128


def pad_image(x: torch.Tensor, stride: int, mode: PadMode = PadMode.REPLICATE) -> torch.Tensor:
    """Extend (B, 3, H, W) at the bottom and right to multiples of ``stride``.

    Reflection needs the padding to be smaller than the side; where it is not, replication is
    used for that call (the decoder only crops, so it need not know).
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % stride, -width % stride
    if not (pad_h or pad_w):
        return x
    use_reflect = mode == PadMode.REFLECT and pad_h < height and pad_w < width
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if use_reflect else "replicate")


def to_uint8(x_hat: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) floats to (B, H, W, 3) uint8 by clamping to [0, 1] and rounding."""
    pixels = torch.round(x_hat.clamp(0, 1) * 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class CodedLatents:
    """What the encoder produced for a batch: one payload and latent checksum per image, and the
    quantised latent."""

    payloads: list[bytes]
    checksums: list[int]
    y_hat: torch.Tensor


def _int32_bytes(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<i4").tobytes()


class Codec:
    """Compresses images to bytes and back with one set of weights.

    Args:
        model: a trained :class:`DCAE`.
        name: how the model is called in messages (a zoo name or a file name).
        digest: hex SHA-256 of the weights (computed when not given).
        device: where the neural network runs; entropy coding always runs on the CPU.
        scale_table_size: number of scales in the y coder's table.
        pad_mode: how images are extended to the model stride.
        tile: side (pixels, a multiple of 64) of the tiles the analysis and synthesis transforms
            run on; ``None`` tiles only images above ``AUTO_TILE_PIXELS`` (with ``DEFAULT_TILE``),
            ``0`` never tiles. Entropy coding always covers the whole image, so tiling changes
            memory use, not the file format; decoding reads any file whatever its tiling.
        halo: context around each tile, in pixels (a multiple of 64).
        portable: compute the entropy parameters (everything that decides the probability of a
            coded symbol: hyper synthesis, slice contexts, latent residual prediction) on the CPU
            in float64 (:mod:`dcae.portable`), so the file decodes to the same latents on any
            machine. ``False`` computes them on ``device`` in float32: faster, but the file
            decodes only where the arithmetic matches the encoder's (the same processor family
            and PyTorch build; elsewhere decoding fails with :class:`LatentMismatchError`). The
            choice is recorded in the file and the decoder follows it.
        optimize_steps: gradient steps the encoder spends adapting each image's latents to it
            before coding (see :mod:`dcae.latent_optimization`): smaller files at equal quality
            for about ``optimize_steps`` times the work of a plain encode (and gradient memory,
            so only for images up to ``AUTO_TILE_PIXELS``). Decoding is unchanged.
        lambdas: the rate-distortion trade-offs the model was trained with, one per rate point
            (the weights' metadata holds them); needed by ``optimize_steps``.
    """

    def __init__(
        self,
        model: DCAE,
        name: str = "custom",
        digest: "str | None" = None,
        device: "str | torch.device | None" = None,
        scale_table_size: int = DEFAULT_SCALE_TABLE_SIZE,
        pad_mode: PadMode = PadMode.REPLICATE,
        tile: "int | None" = None,
        halo: int = DEFAULT_HALO,
        portable: bool = True,
        optimize_steps: int = 0,
        lambdas: "Sequence[float] | None" = None,
    ) -> None:
        for option, value in (("tile", tile or 0), ("halo", halo)):
            if value < 0 or value % 64:
                raise ValueError(f"{option} must be a non-negative multiple of 64, got {value}")
        if optimize_steps < 0:
            raise ValueError(f"optimize_steps must be >= 0, got {optimize_steps}")
        rate_points = max(model.config.num_rate_points, 1)
        if optimize_steps and (lambdas is None or len(lambdas) != rate_points):
            raise QualityError(
                f"latent optimisation needs the model's {rate_points} training lambda(s) (from its weights' "
                f"metadata), got {None if lambdas is None else list(lambdas)}"
            )
        self.optimize_steps = optimize_steps
        self.lambdas = None if lambdas is None else [float(v) for v in lambdas]
        self.tile = tile
        self.halo = halo
        self.portable = portable
        self._model64: "PortableParameters | None" = None
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.eval().to(self.device)
        self.name = name
        self.digest_hex = digest or state_digest(model.state_dict())
        self.digest = bytes.fromhex(self.digest_hex)[:8]
        self.scale_table_size = scale_table_size
        self.pad_mode = PadMode(pad_mode)
        self._gaussian: dict[int, GaussianTables] = {}
        self._z_tables = tabulate_factorized(self.model.entropy_bottleneck)
        self._models = ModelCache()
        self._medians = self.model.entropy_bottleneck.medians().detach().reshape(1, -1, 1, 1)

    # ------------------------------------------------------------------------- properties
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

    def gaussian_tables(self, size: int) -> GaussianTables:
        """The y coder's tables for a scale table of ``size`` entries (built once)."""
        if size not in self._gaussian:
            self._gaussian[size] = GaussianTables(size)
        return self._gaussian[size]

    def _quality(self, quality: "float | None") -> "float | None":
        if quality is None and self.variable_rate:
            quality = self.default_quality()
        try:
            self.model.check_quality(quality)
        except ValueError as error:
            raise QualityError(str(error)) from None
        # The header stores float32: use exactly what the decoder will read.
        return None if quality is None else float(np.float32(quality))

    # -------------------------------------------------------------------- latent coding
    def _parameter_model(self, portable: bool) -> tuple["DCAE | PortableParameters", torch.device, torch.dtype]:
        """The model, device and dtype that compute the entropy parameters."""
        if not portable:
            return self.model, self.device, torch.float32
        if self._model64 is None:
            self._model64 = PortableParameters(self.model)
        return self._model64, torch.device("cpu"), torch.float64

    @torch.inference_mode()
    def encode_latents(self, x: torch.Tensor, quality: "float | None") -> CodedLatents:
        """Entropy-code a padded (B, 3, H, W) batch; returns payloads and the quantised y."""
        return self._encode_features(self._features(x.to(self.device, torch.float32)), quality)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """g_a of a padded batch (before any gain), tiled when large."""
        tile = self._tile_for(*x.shape[-2:])
        if not tile:
            return self.model.g_a(x)
        return run_tiled(self.model.g_a, x, tile, self.halo, Fraction(1, 16))

    @torch.inference_mode()
    def _encode_features(self, features: torch.Tensor, quality: "float | None") -> CodedLatents:
        y = features
        if self.model.gain_units is not None:
            y = y * self.model.gain_units.gain(quality).to(y.device, y.dtype)
        return self._encode_yz(y, self.model.h_a(y), quality)

    @torch.inference_mode()
    def _encode_yz(self, y: torch.Tensor, z: torch.Tensor, quality: "float | None") -> CodedLatents:
        """Entropy-code a (gained) latent y with its hyper-latent z."""
        model = self.model
        z_symbols = torch.round(z - self._medians.to(z.dtype))
        params, device, dtype = self._parameter_model(self.portable)
        hyper = params.hyper_features(z_symbols.to(device, dtype) + self._medians.to(device, dtype))
        encoders = [SymbolEncoder(self._models) for _ in range(y.shape[0])]
        z_cpu = z_symbols.long().cpu().numpy()
        checksums = [zlib.crc32(_int32_bytes(z_cpu[b])) for b in range(y.shape[0])]
        for b, encoder in enumerate(encoders):
            for c, table in enumerate(self._z_tables):
                encoder.add(z_cpu[b, c], table)
        tables = self.gaussian_tables(self.scale_table_size)
        y_hat_slices: list[torch.Tensor] = []
        for index, y_slice in enumerate(y.to(device, dtype).chunk(model.config.num_slices, dim=1)):
            ctx = params.slice_context(index, hyper, y_hat_slices)
            residual = torch.round(y_slice - ctx.mean)
            idx = tables.indexes(ctx.scale).cpu().numpy()
            res_cpu = residual.long().cpu().numpy()
            for b, encoder in enumerate(encoders):
                checksums[b] = zlib.crc32(_int32_bytes(res_cpu[b]), checksums[b])
                for table_index, positions in _groups(idx[b]):
                    encoder.add(res_cpu[b].ravel()[positions], tables.tables[table_index])
            y_hat_slices.append(params.refine_slice(index, ctx, residual + ctx.mean))
        y_hat = torch.cat(y_hat_slices, dim=1).to(self.device, torch.float32)
        return CodedLatents([e.finish() for e in encoders], checksums, y_hat)

    @torch.inference_mode()
    def decode_latents(
        self,
        payloads: Sequence[bytes],
        padded_size: tuple[int, int],
        quality: "float | None",
        scale_table_size: int,
        preview_slices: "int | None" = None,
        portable: bool = False,
        checksums: "Sequence[int | None] | None" = None,
    ) -> torch.Tensor:
        """Rebuild the quantised y of a batch from its payloads (all of one size and quality).

        With ``preview_slices = K`` only the first K slices are read; later slices take their
        predicted means. ``portable`` must be what the encoder used. Where ``checksums`` gives
        an image's latent checksum, a complete decoding is verified against it
        (:class:`LatentMismatchError`).
        """
        model = self.model
        params, device, dtype = self._parameter_model(portable)
        height, width = padded_size
        z_shape = (model.config.N, height // 64, width // 64)
        decoders = [SymbolDecoder(p, self._models) for p in payloads]
        z_symbols = np.stack(
            [
                np.stack([d.take(z_shape[1] * z_shape[2], t).reshape(z_shape[1:]) for t in self._z_tables])
                for d in decoders
            ]
        )
        found = [zlib.crc32(_int32_bytes(z_symbols[b])) for b in range(len(decoders))]
        hyper = params.hyper_features(torch.from_numpy(z_symbols).to(device, dtype) + self._medians.to(device, dtype))
        tables = self.gaussian_tables(scale_table_size)
        slices = model.config.num_slices
        read = slices if preview_slices is None else max(0, min(preview_slices, slices))
        y_hat_slices: list[torch.Tensor] = []
        for index in range(slices):
            ctx = params.slice_context(index, hyper, y_hat_slices)
            if index < read:
                idx = tables.indexes(ctx.scale).cpu().numpy()
                residual = np.zeros(idx.shape, dtype=np.int64)
                for b, decoder in enumerate(decoders):
                    flat = residual[b].reshape(-1)
                    for table_index, positions in _groups(idx[b]):
                        flat[positions] = decoder.take(len(positions), tables.tables[table_index])
                    found[b] = zlib.crc32(_int32_bytes(residual[b]), found[b])
                y_hat_slice = torch.from_numpy(residual).to(device, dtype) + ctx.mean
            else:
                y_hat_slice = ctx.mean
            y_hat_slices.append(params.refine_slice(index, ctx, y_hat_slice))
        if read == slices:
            for expected, actual in zip(checksums or [], found):
                if expected is not None and expected != actual:
                    raise LatentMismatchError(
                        "the decoded latents fail their checksum: this machine computes the entropy model "
                        "differently from the one that wrote the file; compress with --portable for files "
                        "that must decode on other machines"
                    )
            if not all(d.exhausted() for d in decoders):
                raise FormatError("payload holds more data than the image needs (corrupt or foreign stream)")
        return torch.cat(y_hat_slices, dim=1).to(self.device, torch.float32)

    # ---------------------------------------------------------------------- image API
    def _prepare(self, images: Sequence[ImageLike]) -> tuple[torch.Tensor, list[ColourMode], tuple[int, int]]:
        arrays, modes = zip(*(load_image(image) for image in images))
        sizes = {a.shape[:2] for a in arrays}
        if len(sizes) != 1:
            raise ValueError(f"a batch must hold images of one size, got {sorted(sizes)}")
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)
        return batch, list(modes), arrays[0].shape[:2]

    def compress(
        self,
        image: ImageLike,
        quality: "float | None" = None,
        target_bpp: "float | None" = None,
        target_size: "int | None" = None,
    ) -> bytes:
        """Compress one image (path, PIL image or array) to the bytes of a ``.dcae`` file.

        Give at most one of ``quality``, ``target_bpp`` (bits per pixel of the whole file) or
        ``target_size`` (bytes of the whole file). With a target, the quality is found by
        bisection so the file lands at or below the target, within 3% of it where the model's
        range allows; a target below the smallest file the model can write raises
        :class:`QualityError`.
        """
        given = [v is not None for v in (quality, target_bpp, target_size)]
        if sum(given) > 1:
            raise QualityError("give only one of quality, target_bpp and target_size")
        if target_bpp is None and target_size is None:
            return self.compress_batch([image], quality)[0]
        array, mode = load_image(image)
        height, width = array.shape[:2]
        if target_bpp is not None:
            if not target_bpp > 0:
                raise QualityError(f"target bpp must be positive, got {target_bpp}")
            target_size = int(target_bpp * height * width / 8)
        return self._compress_to_size(array, mode, int(target_size))

    def _compress_to_size(self, array: np.ndarray, mode: ColourMode, max_bytes: int) -> bytes:
        if not self.variable_rate:
            raise QualityError("rate control needs a variable-rate model (this one has a single rate)")
        x = torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].float().div(255)
        height, width = array.shape[:2]
        bitstream._check_size(width, height)
        padded = pad_image(x, self.model.stride, self.pad_mode)
        with torch.inference_mode():
            features = self._features(padded.to(self.device))

        def plain_at(q: float) -> bytes:
            coded = self._encode_features(features, q)
            return self._pack(coded.payloads[0], coded.checksums[0], width, height, q, mode)

        quality, plain = self._bisect_quality(plain_at, max_bytes)
        if not self.optimize_steps:
            return plain

        # The search runs on at most two qualities, not at every bisection step. It lowers the
        # rate-distortion cost, usually by spending a little more rate on much less distortion;
        # when that overshoots the budget, a second bisection aims the plain file lower by the
        # same ratio, more finely than the first (the search gains ~1-3%, less than the first
        # bisection's slack). Of the files that fit, the one closest to the image wins.
        def optimized_at(q: float) -> bytes:
            coded = self._encode_yz(*self._optimized_latents(padded, q, (height, width)), q)
            return self._pack(coded.payloads[0], coded.checksums[0], width, height, q, mode)

        optimized = optimized_at(quality)
        if len(optimized) > max_bytes:
            try:
                budget = int(max_bytes * len(plain) / len(optimized))
                quality, _ = self._bisect_quality(plain_at, budget, tolerance=0.005)
            except QualityError:
                return plain
            optimized = optimized_at(quality)
            if len(optimized) > max_bytes:
                return plain
        reference = np.asarray(array, dtype=np.float64)
        return min((plain, optimized), key=lambda data: float(np.mean((self.decompress(data) - reference) ** 2)))

    def _bisect_quality(
        self, file_at: "Callable[[float], bytes]", max_bytes: int, tolerance: float = 0.03
    ) -> tuple[float, bytes]:
        """The highest quality whose file from ``file_at`` fits in ``max_bytes`` (searched until
        the file is within ``tolerance`` of the budget, where the range allows), and that file."""
        low, high = self.quality_range
        low, high = float(np.float32(low)), float(np.float32(high))
        smallest = file_at(low)
        if len(smallest) > max_bytes:
            raise QualityError(
                f"cannot reach {max_bytes} bytes: the lowest quality already needs {len(smallest)} bytes"
            )
        largest = file_at(high)
        if len(largest) <= max_bytes:
            return high, largest
        best, best_quality = smallest, low
        for _ in range(24):
            if len(best) >= (1 - tolerance) * max_bytes:
                break
            middle = float(np.float32((low + high) / 2))  # the header stores float32
            candidate = file_at(middle)
            if len(candidate) <= max_bytes:
                low, best, best_quality = middle, candidate, middle
            else:
                high = middle
        return best_quality, best

    def _pack(
        self, payload: bytes, checksum: int, width: int, height: int, quality: "float | None", mode: ColourMode
    ) -> bytes:
        header = Header(
            width=width,
            height=height,
            architecture=ARCHITECTURE,
            digest=self.digest,
            quality=quality,
            scale_table_size=self.scale_table_size,
            num_slices=self.model.config.num_slices,
            colour_mode=mode,
            pad_mode=self.pad_mode,
            latent_checksum=checksum,
            portable=self.portable,
        )
        return bitstream.pack(header, payload)

    def compress_batch(self, images: Sequence[ImageLike], quality: "float | None" = None) -> list[bytes]:
        """Compress images of one size together (one network pass); one file per image."""
        quality = self._quality(quality)
        batch, modes, (height, width) = self._prepare(images)
        bitstream._check_size(width, height)
        coded = self._encode_padded(pad_image(batch, self.model.stride, self.pad_mode), quality, (height, width))
        return [
            self._pack(payload, checksum, width, height, quality, mode)
            for payload, checksum, mode in zip(coded.payloads, coded.checksums, modes)
        ]

    def read_header(self, data: bytes) -> tuple[Header, bytes]:
        """Parse ``data`` and check it was written by this codec's model."""
        header, payload = bitstream.unpack(data)
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
        if header.quality is not None:
            self.model.check_quality(header.quality)
        return header, payload

    def decompress(self, data: bytes, preview_slices: "int | None" = None) -> np.ndarray:
        """Decode a ``.dcae`` file to an (H, W, 3) uint8 RGB array."""
        return self.decompress_batch([data], preview_slices)[0]

    def decompress_batch(self, files: Sequence[bytes], preview_slices: "int | None" = None) -> np.ndarray:
        """Decode files of one size and quality together; returns (B, H, W, 3) uint8."""
        parsed = [self.read_header(data) for data in files]
        first = parsed[0][0]
        for header, _ in parsed[1:]:
            if (header.width, header.height, header.quality, header.scale_table_size, header.portable) != (
                first.width,
                first.height,
                first.quality,
                first.scale_table_size,
                first.portable,
            ):
                raise ValueError("batched decoding needs files of one size, quality and coder setting")
        padded = (math.ceil(first.height / 64) * 64, math.ceil(first.width / 64) * 64)
        try:
            y_hat = self.decode_latents(
                [p for _, p in parsed],
                padded,
                first.quality,
                first.scale_table_size,
                preview_slices,
                portable=first.portable,
                checksums=[header.latent_checksum for header, _ in parsed],
            )
        except CodingError as error:
            raise FormatError(str(error)) from None
        return to_uint8(self.reconstruct(y_hat, first.quality)[..., : first.height, : first.width])

    def _encode_padded(self, x: torch.Tensor, quality: "float | None", size: tuple[int, int]) -> CodedLatents:
        """Code a padded batch whose images are ``size`` (height, width), optimising the latents
        first when the codec is set to."""
        if not self.optimize_steps:
            return self.encode_latents(x, quality)
        return self._encode_yz(*self._optimized_latents(x, quality, size), quality)

    def _optimized_latents(
        self, x: torch.Tensor, quality: "float | None", size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-2] * x.shape[-1] > AUTO_TILE_PIXELS:
            side = int(math.sqrt(AUTO_TILE_PIXELS))
            raise QualityError(
                f"latent optimisation handles images up to {side}x{side} pixels (its gradients need the "
                f"whole image in memory); this one is {size[1]}x{size[0]}"
            )
        lmbda = lambda_for_quality(self.lambdas or [], quality)
        found = optimize_latents(
            self.model, x.to(self.device, torch.float32), quality, lmbda, self.optimize_steps, size
        )
        return found.y, found.z

    def _tile_for(self, height: int, width: int) -> int:
        """Tile side for a padded image of this size (0: run whole)."""
        if self.tile is None:
            return DEFAULT_TILE if height * width > AUTO_TILE_PIXELS else 0
        return self.tile if self.tile and (height > self.tile or width > self.tile) else 0

    @torch.inference_mode()
    def reconstruct(self, y_hat: torch.Tensor, quality: "float | None") -> torch.Tensor:
        """The synthesis transform: quantised y to (unclamped) padded images, tiled when large."""
        tile = self._tile_for(y_hat.shape[-2] * 16, y_hat.shape[-1] * 16)
        if not tile:
            return self.model.synthesis(y_hat, quality)
        if self.model.gain_units is not None:
            y_hat = y_hat * self.model.gain_units.inverse_gain(quality).to(y_hat.device, y_hat.dtype)
        return run_tiled(self.model.g_s, y_hat, tile // 16, self.halo // 16, Fraction(16))

    def decompress_image(self, data: bytes, preview_slices: "int | None" = None) -> Image.Image:
        """Decode to a PIL image in the source's colour mode (grayscale stays grayscale)."""
        header, _ = bitstream.unpack(data)
        return to_pil(self.decompress(data, preview_slices), header.colour_mode)


def _groups(indexes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Flat positions of each table index, in raster order within each group, groups ascending."""
    flat = indexes.reshape(-1)
    order = np.argsort(flat, kind="stable")
    sorted_idx = flat[order]
    boundaries = np.flatnonzero(np.diff(sorted_idx)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(flat)]])
    return [(int(sorted_idx[s]), order[s:e]) for s, e in zip(starts, ends)]


def load_codec(
    model: "str | os.PathLike[str] | DCAE" = "default", device: "str | torch.device | None" = None, **options: Any
) -> Codec:
    """A :class:`Codec` for a zoo name (see ``dcae models``), a weights file, or a model object."""
    from .weights import load_weights
    from .zoo import resolve_model_path

    if isinstance(model, DCAE):
        return Codec(model, device=device or "cpu", **options)
    path = resolve_model_path(model)
    net, meta = load_weights(path)
    name = str(model) if not Path(str(model)).exists() else Path(path).name
    if options.get("optimize_steps") and "lambdas" not in options:
        if meta.get("distortion", "mse") != "mse":
            raise QualityError(f"latent optimisation supports models trained for MSE, not {meta['distortion']}")
        options["lambdas"] = meta.get("lambdas")
    return Codec(net, name=name, digest=meta.get("digest"), device=device or "cpu", **options)
