"""Entropy coding of a DCAE's latents: (y, z) to one rANS payload per image, and back.

The payload holds z, channel by channel, under the factorised prior's tables, then y, slice by
slice, as residuals from the predicted means under the Gaussian table nearest the predicted
scale (docs/format.md). The entropy parameters come from the model's networks in float64 for
portable files and in float32 for machine-specific ones, evaluated chunk by chunk so memory stays
bounded for any image size (:mod:`dcae.entropy_parameters`); either way the slice loop is the
model's own :func:`dcae.model.run_slices`, so encoder and decoder predict through the same code.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .entropy.coder import ModelCache, SymbolDecoder, SymbolEncoder
from .entropy.tables import GaussianTables, tabulate_factorized
from .entropy_parameters import DEFAULT_CHUNK, ChunkPlan, EntropyParameterNetworks
from .errors import CodingError, FormatError, LatentMismatchError
from .model import DCAE, EntropyParameters, SliceContext, run_slices

# Reports progress of the entropy stage: (steps done, steps in all).
StepProgress = Callable[[int, int], None]


@dataclass
class EncodedLatents:
    """One payload and latent checksum per image of a batch, and the quantised y."""

    payloads: list[bytes]
    checksums: list[int]
    y_hat: torch.Tensor


def _int32_bytes(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<i4").tobytes()


def _groups(indexes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Flat positions of each table index, in raster order within each group, groups ascending."""
    flat = indexes.reshape(-1)
    order = np.argsort(flat, kind="stable")
    sorted_idx = flat[order]
    boundaries = np.flatnonzero(np.diff(sorted_idx)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(flat)]])
    return [(int(sorted_idx[s]), order[s:e]) for s, e in zip(starts, ends)]


class LatentCoder:
    """Codes the latents of one model; built once per model (the tables are the costly part).

    Args:
        model: the model whose entropy model codes (in eval mode).
        device: where the float32 entropy parameters run (portable ones run on the CPU).
        chunk: side (latent positions, a multiple of 4) of the chunks the entropy-parameter
            networks run on; 0 runs every image in one piece (memory then grows with the image).
    """

    def __init__(self, model: DCAE, device: torch.device, chunk: int = DEFAULT_CHUNK) -> None:
        self.model = model
        self.device = device
        self.chunk = chunk
        self.z_tables = tabulate_factorized(model.entropy_bottleneck)
        # A symbol of probability p costs -log2(p) bits in any entropy coder, so z alone needs at
        # least this many bits per position (1e-4 covers the coder's rounding of probabilities).
        self._z_bits_per_position = sum(-math.log2(min(1.0, float(t.probs.max()) + 1e-4)) for t in self.z_tables)
        self._medians = model.z_medians().detach()
        self._models = ModelCache()
        self._gaussian: dict[int, GaussianTables] = {}
        self._networks: dict[tuple[torch.dtype, int], EntropyParameterNetworks] = {}

    def minimum_payload_bytes(self, latent_size: tuple[int, int]) -> int:
        """A lower bound on the payload of any valid file whose y is ``latent_size``: checked
        before decoding, so a tiny crafted file cannot make the decoder build a huge image."""
        ratio = self.model.config.hyper_ratio
        positions = (latent_size[0] // ratio) * (latent_size[1] // ratio)
        return max(0, math.floor((positions * self._z_bits_per_position - 64) / 8))  # 64: the coder's final state

    def table_fingerprint(self, scale_table_size: int) -> str:
        """SHA-256 of every table's whole alphabet coded under it (z tables, then y tables).

        Two coders with equal fingerprints turn every symbol into the same bits, so a release's
        fingerprint, recorded when it was made, shows whether this machine and this dcae still
        build its probability tables exactly.
        """
        digest = hashlib.sha256()
        for table in [*self.z_tables, *self.gaussian_tables(scale_table_size).tables]:
            encoder = SymbolEncoder(self._models)
            encoder.add(np.arange(table.low, table.high + 1), table)
            digest.update(encoder.finish())
        return digest.hexdigest()

    def gaussian_tables(self, size: int) -> GaussianTables:
        """The y coder's tables for a scale table of ``size`` entries (built once)."""
        if size not in self._gaussian:
            self._gaussian[size] = GaussianTables(size)
        return self._gaussian[size]

    def plan(self, latent_size: tuple[int, int]) -> ChunkPlan:
        """How the entropy pass cuts a latent grid of ``latent_size`` into chunks."""
        return ChunkPlan(self.model.config, latent_size, self.chunk)

    def steps(self, latent_size: tuple[int, int], portable: bool) -> int:
        """Progress steps of one encode or decode: chunks computed (none are reported when the
        model itself computes a machine-specific file's parameters), and one per coded slice."""
        chunked = isinstance(self.parameters(portable, latent_size)[0], EntropyParameterNetworks)
        return (self.plan(latent_size).steps if chunked else 0) + self.model.config.num_slices

    def parameters(
        self, portable: bool, latent_size: tuple[int, int], chunk: "int | None" = None
    ) -> tuple[EntropyParameters, torch.device, torch.dtype]:
        """What computes the entropy parameters of a ``latent_size`` grid, on which device, in
        which precision: float64 networks on the CPU for portable files; for machine-specific
        ones the model itself when one chunk holds the grid (exactly as before chunking),
        float32 networks in chunks otherwise. ``chunk`` overrides the coder's chunk side."""
        chunk = self.chunk if chunk is None else chunk
        if portable:
            return self._chunked(torch.float64, torch.device("cpu"), chunk), torch.device("cpu"), torch.float64
        if ChunkPlan(self.model.config, latent_size, chunk).chunks == 1:
            return self.model, self.device, torch.float32
        return self._chunked(torch.float32, self.device, chunk), self.device, torch.float32

    def _chunked(self, dtype: torch.dtype, device: torch.device, chunk: int) -> EntropyParameterNetworks:
        if (dtype, chunk) not in self._networks:
            self._networks[(dtype, chunk)] = EntropyParameterNetworks(self.model, dtype, device, chunk)
        return self._networks[(dtype, chunk)]

    def _hyper(self, params: EntropyParameters, z_symbols: torch.Tensor, device: torch.device, dtype: torch.dtype):
        return params.hyper_features(z_symbols.to(device, dtype) + self._medians.to(device, dtype))

    @staticmethod
    def _counter(on_step: "StepProgress | None", total: int) -> tuple[Callable[[], None], "Callable | None"]:
        """A step callback and a per-chunk one for the networks, both feeding ``on_step``."""
        done = [0]

        def step(*_ignored: int) -> None:
            done[0] += 1
            if on_step is not None:
                on_step(min(done[0], total), total)

        return step, (step if on_step is not None else None)

    @staticmethod
    def _reporting(params: EntropyParameters, on_chunk: "Callable | None") -> EntropyParameters:
        if isinstance(params, EntropyParameterNetworks):
            return params.reporting(on_chunk)
        return params

    @torch.inference_mode()
    def encode(
        self,
        y: torch.Tensor,
        z: torch.Tensor,
        scale_table_size: int,
        portable: bool,
        on_step: "StepProgress | None" = None,
    ) -> EncodedLatents:
        """Code a batch's (gained) latent y and hyper-latent z; one payload per image.
        ``on_step`` hears (steps done, steps in all) as chunks and slices finish."""
        latent_size = (y.shape[-2], y.shape[-1])
        step, on_chunk = self._counter(on_step, self.steps(latent_size, portable))
        z_symbols = torch.round(z - self._medians.to(z.device, z.dtype))
        params, device, dtype = self.parameters(portable, latent_size)
        params = self._reporting(params, on_chunk)
        hyper = self._hyper(params, z_symbols, device, dtype)
        batch = y.shape[0]
        encoders = [SymbolEncoder(self._models) for _ in range(batch)]
        z_cpu = z_symbols.long().cpu().numpy()
        checksums = [zlib.crc32(_int32_bytes(z_cpu[b])) for b in range(batch)]
        for b, encoder in enumerate(encoders):
            for c, table in enumerate(self.z_tables):
                encoder.add(z_cpu[b, c], table)
        tables = self.gaussian_tables(scale_table_size)

        def code_slice(index: int, y_slice: "torch.Tensor | None", ctx: SliceContext) -> torch.Tensor:
            assert y_slice is not None
            residual = torch.round(y_slice.to(device, dtype) - ctx.mean)
            table_indexes = tables.indexes(ctx.scale).cpu().numpy()
            residual_cpu = residual.long().cpu().numpy()
            for b, encoder in enumerate(encoders):
                checksums[b] = zlib.crc32(_int32_bytes(residual_cpu[b]), checksums[b])
                for table_index, positions in _groups(table_indexes[b]):
                    encoder.add(residual_cpu[b].ravel()[positions], tables.tables[table_index])
            step()
            return residual + ctx.mean

        y_hat = run_slices(params, hyper, y, code_slice)
        return EncodedLatents([e.finish() for e in encoders], checksums, y_hat.to(self.device, torch.float32))

    @torch.inference_mode()
    def decode(
        self,
        payloads: Sequence[bytes],
        latent_size: tuple[int, int],
        scale_table_size: int,
        portable: bool,
        preview_slices: "int | None" = None,
        checksums: "Sequence[int | None] | None" = None,
        on_step: "StepProgress | None" = None,
    ) -> torch.Tensor:
        """Rebuild the quantised y of a batch (one latent size) from its payloads.

        ``latent_size`` is y's (height, width). With ``preview_slices = K`` only the first K
        slices are read; later slices take their predicted means. ``portable`` must be what the
        encoder used. Where ``checksums`` gives an image's latent checksum, a complete decoding
        is verified against it (:class:`LatentMismatchError`). A damaged stream raises
        :class:`FormatError`. ``on_step`` hears (steps done, steps in all).

        A machine-specific file of an image larger than one chunk that fails its checksum is
        decoded once more in one piece: files written before chunking (dcae 0.1) were computed
        that way, and machine-specific arithmetic is only reproducible operation for operation.
        """
        try:
            try:
                return self._decode(
                    payloads, latent_size, scale_table_size, portable, preview_slices, checksums, on_step, self.chunk
                )
            except LatentMismatchError:
                if portable or self.plan(latent_size).chunks == 1:
                    raise
                return self._decode(
                    payloads, latent_size, scale_table_size, portable, preview_slices, checksums, None, 0
                )
        except CodingError as error:
            raise FormatError(str(error)) from None

    def _decode(
        self, payloads, latent_size, scale_table_size, portable, preview_slices, checksums, on_step, chunk
    ) -> torch.Tensor:
        step, on_chunk = self._counter(on_step, self.steps(latent_size, portable))
        params, device, dtype = self.parameters(portable, latent_size, chunk)
        params = self._reporting(params, on_chunk)
        z_size = (latent_size[0] // self.model.config.hyper_ratio, latent_size[1] // self.model.config.hyper_ratio)
        decoders = [SymbolDecoder(p, self._models) for p in payloads]
        z_symbols = np.stack(
            [np.stack([d.take(z_size[0] * z_size[1], t).reshape(z_size) for t in self.z_tables]) for d in decoders]
        )
        found = [zlib.crc32(_int32_bytes(z_symbols[b])) for b in range(len(decoders))]
        hyper = self._hyper(params, torch.from_numpy(z_symbols), device, dtype)
        tables = self.gaussian_tables(scale_table_size)
        slices = self.model.config.num_slices
        read = slices if preview_slices is None else max(0, min(preview_slices, slices))

        def decode_slice(index: int, _y_slice: "torch.Tensor | None", ctx: SliceContext) -> torch.Tensor:
            if index >= read:
                step()
                return ctx.mean
            table_indexes = tables.indexes(ctx.scale).cpu().numpy()
            residual = np.zeros(table_indexes.shape, dtype=np.int64)
            for b, decoder in enumerate(decoders):
                flat = residual[b].reshape(-1)
                for table_index, positions in _groups(table_indexes[b]):
                    flat[positions] = decoder.take(len(positions), tables.tables[table_index])
                found[b] = zlib.crc32(_int32_bytes(residual[b]), found[b])
            step()
            return torch.from_numpy(residual).to(device, dtype) + ctx.mean

        y_hat = run_slices(params, hyper, None, decode_slice)
        if read == slices:
            for expected, actual in zip(checksums or [], found):
                if expected is not None and expected != actual:
                    raise LatentMismatchError(
                        "the decoded latents fail their checksum (a damaged file)"
                        if portable
                        else "the decoded latents fail their checksum: this machine computes the entropy model "
                        "differently from the one that wrote this machine-specific file; files written with "
                        "the default (portable) setting decode on any machine"
                    )
            if not all(d.exhausted() for d in decoders):
                raise FormatError("payload holds more data than the image needs (corrupt or foreign stream)")
        return y_hat.to(self.device, torch.float32)
