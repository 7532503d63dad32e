"""Entropy coding of a DCAE's latents: (y, z) to one rANS payload per image, and back.

The payload holds z, channel by channel, under the factorised prior's tables, then y, slice by
slice, as residuals from the predicted means under the Gaussian table nearest the predicted
scale (docs/format.md). The entropy parameters come from the model in float32 or, for portable
files, from its float64 copy (:mod:`dcae.portable`); either way the slice loop is the model's own
:func:`dcae.model.run_slices`, so encoder and decoder predict through the same code.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .entropy.coder import ModelCache, SymbolDecoder, SymbolEncoder
from .entropy.tables import GaussianTables, tabulate_factorized
from .errors import CodingError, FormatError, LatentMismatchError
from .model import DCAE, EntropyParameters, SliceContext, run_slices
from .portable import PortableParameters


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
    """

    def __init__(self, model: DCAE, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.z_tables = tabulate_factorized(model.entropy_bottleneck)
        # A symbol of probability p costs -log2(p) bits in any entropy coder, so z alone needs at
        # least this many bits per position (1e-4 covers the coder's rounding of probabilities).
        self._z_bits_per_position = sum(-math.log2(min(1.0, float(t.probs.max()) + 1e-4)) for t in self.z_tables)
        self._medians = model.z_medians().detach()
        self._models = ModelCache()
        self._gaussian: dict[int, GaussianTables] = {}
        self._portable: "PortableParameters | None" = None

    def minimum_payload_bytes(self, latent_size: tuple[int, int]) -> int:
        """A lower bound on the payload of any valid file whose y is ``latent_size``: checked
        before decoding, so a tiny crafted file cannot make the decoder build a huge image."""
        positions = (latent_size[0] // 4) * (latent_size[1] // 4)
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

    def parameters(self, portable: bool) -> tuple[EntropyParameters, torch.device, torch.dtype]:
        """What computes the entropy parameters, on which device, in which precision."""
        if not portable:
            return self.model, self.device, torch.float32
        if self._portable is None:
            self._portable = PortableParameters(self.model)
        return self._portable, torch.device("cpu"), torch.float64

    def _hyper(self, params: EntropyParameters, z_symbols: torch.Tensor, device: torch.device, dtype: torch.dtype):
        return params.hyper_features(z_symbols.to(device, dtype) + self._medians.to(device, dtype))

    @torch.inference_mode()
    def encode(self, y: torch.Tensor, z: torch.Tensor, scale_table_size: int, portable: bool) -> EncodedLatents:
        """Code a batch's (gained) latent y and hyper-latent z; one payload per image."""
        z_symbols = torch.round(z - self._medians.to(z.device, z.dtype))
        params, device, dtype = self.parameters(portable)
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
            residual = torch.round(y_slice - ctx.mean)
            table_indexes = tables.indexes(ctx.scale).cpu().numpy()
            residual_cpu = residual.long().cpu().numpy()
            for b, encoder in enumerate(encoders):
                checksums[b] = zlib.crc32(_int32_bytes(residual_cpu[b]), checksums[b])
                for table_index, positions in _groups(table_indexes[b]):
                    encoder.add(residual_cpu[b].ravel()[positions], tables.tables[table_index])
            return residual + ctx.mean

        y_hat = run_slices(params, hyper, y.to(device, dtype), code_slice)
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
    ) -> torch.Tensor:
        """Rebuild the quantised y of a batch (one latent size) from its payloads.

        ``latent_size`` is y's (height, width). With ``preview_slices = K`` only the first K
        slices are read; later slices take their predicted means. ``portable`` must be what the
        encoder used. Where ``checksums`` gives an image's latent checksum, a complete decoding
        is verified against it (:class:`LatentMismatchError`). A damaged stream raises
        :class:`FormatError`.
        """
        try:
            return self._decode(payloads, latent_size, scale_table_size, portable, preview_slices, checksums)
        except CodingError as error:
            raise FormatError(str(error)) from None

    def _decode(self, payloads, latent_size, scale_table_size, portable, preview_slices, checksums) -> torch.Tensor:
        params, device, dtype = self.parameters(portable)
        z_size = (latent_size[0] // 4, latent_size[1] // 4)
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
                return ctx.mean
            table_indexes = tables.indexes(ctx.scale).cpu().numpy()
            residual = np.zeros(table_indexes.shape, dtype=np.int64)
            for b, decoder in enumerate(decoders):
                flat = residual[b].reshape(-1)
                for table_index, positions in _groups(table_indexes[b]):
                    flat[positions] = decoder.take(len(positions), tables.tables[table_index])
                found[b] = zlib.crc32(_int32_bytes(residual[b]), found[b])
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
