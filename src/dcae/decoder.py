"""Decoding: ``.dcae`` files to pixels with one set of weights, and what every codec shares.

A file is parsed and checked against the model (:meth:`Decoder.read_header`), its payload is
bounded from below before anything is built, the latents are decoded
(:mod:`dcae.latent_coder`) and the synthesis makes 8-bit pixels (:mod:`dcae.transforms`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from . import bitstream
from . import quality_map as quality_maps
from .bitstream import Header
from .codec_types import CodecOptions, CompressedImage, DecodedImage, is_whole
from .errors import ConfigError, FormatError, ModelMismatchError, QualityError
from .imageio import check_pixels, decode_alpha
from .latent_coder import LatentCoder
from .memory import check_fits
from .model import DCAE
from .progress import Progress, StagedProgress
from .transforms import Transforms
from .weights import state_digest

ARCHITECTURE = "dcae"


class Decoder:
    """Decodes ``.dcae`` files written with one set of weights (:class:`dcae.codec.Codec` also
    encodes).

    Args:
        model: a trained :class:`DCAE`; it runs where it is (its device), unchanged.
        name: how the model is called in messages (a release name or a file name).
        digest: hex SHA-256 of the weights (computed when not given).
        options: how to code (:class:`CodecOptions`).
    """

    def __init__(
        self, model: DCAE, name: str = "custom", digest: "str | None" = None, options: "CodecOptions | None" = None
    ) -> None:
        self.options = options or CodecOptions()
        stride = model.config.stride
        for option, value in (("tile", self.options.tile or 0), ("halo", self.options.halo)):
            if not is_whole(value) or value < 0 or value % stride:
                raise ConfigError(f"{option} must be a non-negative multiple of {stride}, got {value!r}")
        self.model = model
        self.name = name
        self.device = next(model.parameters()).device
        self.digest_hex = digest or state_digest(model.state_dict())
        self.digest = bytes.fromhex(self.digest_hex)[:8]
        self.latents = LatentCoder(model, self.device, self.options.entropy_chunk)
        onnx = None
        if self.options.onnx_synthesis is not None:
            from .export import OnnxSynthesis  # onnxruntime loads only when asked for

            onnx = OnnxSynthesis(self.options.onnx_synthesis, self.digest_hex)
        self.transforms = Transforms(model, self.options, self.device, onnx)

    @property
    def variable_rate(self) -> bool:
        """Whether ``quality`` is continuous (gain units) rather than fixed."""
        return self.model.variable_rate

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
        if preview_slices is not None and (not is_whole(preview_slices) or not 0 <= preview_slices <= slices):
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
            [
                ("entropy decoding", self.latents.steps(latent_size, first.portable)),
                ("synthesis", self.transforms.synthesis_steps(*padded)),
            ],
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
            pixels = self.transforms.synthesise(y_hat, quality, (first.height, first.width), stages.stage("synthesis"))
        del y_hat
        share = (time.perf_counter() - start) / len(parsed)
        return [DecodedImage(p, header, share, _alpha(header)) for p, (header, _) in zip(pixels, parsed)]


def _alpha(header: Header) -> "np.ndarray | None":
    """The alpha plane a file carries, decoded (its size checked against the image first)."""
    if not header.side_parts or header.side_parts.alpha_image is None:
        return None
    return decode_alpha(header.side_parts.alpha_image, header.width, header.height)
