"""The codec: images to ``.dcae`` files and back with a trained DCAE model.

Data flows one way: an image is padded as 8-bit pixels and analysed (:mod:`dcae.transforms`,
tiled when large), the latents are entropy-coded (:mod:`dcae.latent_coder`), and the payload is
wrapped in the container (:mod:`dcae.bitstream`); decoding (:mod:`dcae.decoder`) reverses each
step. Options and results are in :mod:`dcae.codec_types`, rate control in
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import bitstream
from . import quality_map as quality_maps
from .bitstream import ColourMode, Header, SideParts
from .codec_types import CodecOptions, CompressedImage, DecodedImage, is_real
from .decoder import ARCHITECTURE, Decoder
from .errors import ConfigError, ImageError, QualityError
from .imageio import ImageLike, Photo, encode_alpha, image_tensor, pad_pixels, read_photo
from .latent_coder import EncodedLatents
from .latent_optimization import optimize_for_quality
from .memory import check_fits
from .model import DCAE
from .progress import Progress, StagedProgress, StageProgress
from .rate_control import MAX_BISECTION_STEPS, bisect_quality, fit_optimized_to_size
from .weights import load_weights
from .zoo import resolve_model_path

__all__ = ["Codec", "CodecOptions", "CompressedImage", "DecodedImage", "load_codec"]


class Codec(Decoder):
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
        super().__init__(model, name, digest, options)
        rate_points = max(model.config.num_rate_points, 1)
        if self.options.optimize_steps and (lambdas is None or len(lambdas) != rate_points):
            raise QualityError(
                f"latent optimisation needs the model's {rate_points} training lambda(s) (from its weights' "
                f"metadata), got {None if lambdas is None else list(lambdas)}"
            )
        self.lambdas = None if lambdas is None else [float(v) for v in lambdas]

    # ------------------------------------------------------------------------------- qualities
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
        if quality is not None and not is_real(quality):
            raise QualityError(f"quality must be a number, got {type(quality).__name__} {quality!r}")
        if quality is None and self.variable_rate:
            quality = self.default_quality()
        try:
            self.model.check_quality(quality)
        except ValueError as error:
            raise QualityError(str(error)) from None
        return None if quality is None else float(np.float32(quality))

    @torch.inference_mode()
    def encode_features(
        self,
        features: torch.Tensor,
        quality: "float | torch.Tensor | None",
        on_step: "StageProgress | None" = None,
        consume: bool = False,
    ) -> EncodedLatents:
        """Entropy-code analysis features (from :meth:`analyse`) at ``quality`` (a number or a
        map). With ``consume`` the features are scaled in place into the gained latent (the
        caller's tensor becomes it): one latent-sized buffer less while the image is coded."""
        y = self.model.gain(features, quality, in_place=consume)
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
        entropy = self.latents.steps((height // stride, width // stride), self.options.portable) * trials
        return StagedProgress(
            progress, [("analysis", self.transforms.analysis_steps(height, width)), ("entropy coding", entropy)]
        )

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
        photo = read_photo(image, self.options.max_pixels, check_fits)
        height, width = photo.pixels.shape[:2]
        bitstream.check_size(width, height)
        if quality_map is not None:
            return self._compress_with_map(photo, quality_map, start, progress)
        if target_bpp is None and target_size is None:
            return self._compress_photos([photo], self.check_quality(quality), start, progress)[0]
        if target_bpp is not None:
            if not is_real(target_bpp) or not math.isfinite(target_bpp) or target_bpp <= 0:
                raise QualityError(f"target bpp must be a positive finite number, got {target_bpp!r}")
            target_size = int(target_bpp * height * width / 8)
        if not is_real(target_size) or not math.isfinite(target_size) or target_size < 1:
            raise QualityError(f"target size must be a positive number of bytes, got {target_size!r}")
        found = self._compress_to_size(photo, int(min(target_size, bitstream.MAX_FILE_BYTES)), progress)
        return dataclasses.replace(found, seconds=time.perf_counter() - start)

    def _compress_with_map(
        self, photo: Photo, pixel_map: np.ndarray, start: float, progress: "Progress | None"
    ) -> CompressedImage:
        if not self.variable_rate:
            raise QualityError("a quality map needs a variable-rate model (this one has a single rate)")
        if self.options.optimize_steps:
            raise QualityError("latent optimisation does not take a quality map")
        height, width = photo.pixels.shape[:2]
        latent_map = quality_maps.to_latent_map(pixel_map, width, height)
        for level in latent_map.levels:
            self.check_quality(level)
        pixels = self._padded_pixels([photo.pixels])
        stages = self._encode_stages(pixels, progress)
        with torch.inference_mode():
            features = self.transforms.analyse(pixels, stages.stage("analysis"))
            map_tensor = quality_maps.as_tensor(latent_map, self.device)
            coded = self.encode_features(features, map_tensor, stages.stage("entropy coding"))
        dominant = quality_maps.dominant_quality(latent_map)
        parts = self.side_parts(photo)
        found = self._pack(
            coded.payloads[0], coded.checksums[0], width, height, dominant, photo.mode, parts, latent_map
        )
        return dataclasses.replace(found, seconds=time.perf_counter() - start)

    def compress_batch(self, images: Sequence[ImageLike], quality: "float | None" = None) -> list[CompressedImage]:
        """Compress images of one size together (one network pass); one file per image."""
        start = time.perf_counter()
        if not images:
            return []
        count = len(images)  # the batch is coded at once: it needs the memory of one image of all their pixels
        photos = [
            read_photo(image, self.options.max_pixels, lambda w, h, what: check_fits(w, h * count, what))
            for image in images
        ]
        sizes = {photo.pixels.shape[:2] for photo in photos}
        if len(sizes) != 1:
            raise ImageError(f"a batch must hold images of one size, got {sorted(sizes)}")
        bitstream.check_size(photos[0].pixels.shape[1], photos[0].pixels.shape[0])
        return self._compress_photos(photos, self.check_quality(quality), start)

    def _compress_photos(
        self, photos: list[Photo], quality: "float | None", start: float, progress: "Progress | None" = None
    ) -> list[CompressedImage]:
        height, width = photos[0].pixels.shape[:2]
        pixels = self._padded_pixels([photo.pixels for photo in photos])
        if self.options.optimize_steps:
            # latent optimisation holds the whole image and its gradients (at most 1536x1536)
            coded = self.encode_latents(*self._optimized_latents(image_tensor(pixels), quality, (height, width)))
        else:
            stages = self._encode_stages(pixels, progress)
            with torch.inference_mode():
                features = self.transforms.analyse(pixels, stages.stage("analysis"))
                del pixels  # a padded copy of the image is not needed past the analysis
                coded = self.encode_features(features, quality, stages.stage("entropy coding"), consume=True)
        files = [
            self._pack(payload, checksum, width, height, quality, photo.mode, self.side_parts(photo))
            for payload, checksum, photo in zip(coded.payloads, coded.checksums, photos)
        ]
        share = (time.perf_counter() - start) / len(files)
        return [dataclasses.replace(found, seconds=share) for found in files]

    def _compress_to_size(self, photo: Photo, max_bytes: int, progress: "Progress | None") -> CompressedImage:
        if not self.variable_rate:
            raise QualityError("rate control needs a variable-rate model (this one has a single rate)")
        height, width = photo.pixels.shape[:2]
        pixels = self._padded_pixels([photo.pixels])
        mode, parts = photo.mode, self.side_parts(photo)  # the budget covers the side parts too
        most_trials = MAX_BISECTION_STEPS + 2
        stages = self._encode_stages(pixels, progress, most_trials)
        with torch.inference_mode():
            features = self.transforms.analyse(pixels, stages.stage("analysis"))
        trials = [0]

        def plain_at(q: float) -> CompressedImage:
            coded = self.encode_features(features, q, stages.stage("entropy coding", trials[0], most_trials))
            trials[0] += 1
            return self._pack(coded.payloads[0], coded.checksums[0], width, height, q, mode, parts)

        if not self.options.optimize_steps:
            found = bisect_quality(plain_at, max_bytes, self.quality_range)[1]
            stages.finish("entropy coding")
            return found

        def optimized_at(q: float) -> CompressedImage:
            coded = self.encode_latents(*self._optimized_latents(image_tensor(pixels), q, (height, width)))
            return self._pack(coded.payloads[0], coded.checksums[0], width, height, q, mode, parts)

        def squared_error(data: CompressedImage) -> float:
            return float(np.mean((self.decompress(data).pixels - photo.pixels.astype(np.float64)) ** 2))

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
        side_parts: "SideParts | None",
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
            side_parts=side_parts,
        )
        return CompressedImage(bitstream.pack(header, payload), header, seconds=0.0)

    def side_parts(self, photo: Photo) -> "SideParts | None":
        """What a photo's file carries beside the colour: its ICC profile always (it is colour,
        not metadata), EXIF and XMP unless ``options.keep_metadata`` is off, its alpha plane
        (lossless); None when there is nothing."""
        keep = self.options.keep_metadata
        alpha = None if photo.alpha is None else encode_alpha(photo.alpha)
        parts = SideParts(photo.icc_profile, photo.exif if keep else None, photo.xmp if keep else None, alpha)
        return parts if parts else None


def load_codec(
    model: "str | os.PathLike[str] | DCAE" = "default",
    device: "str | torch.device | None" = None,
    **options: Any,
) -> Codec:
    """A :class:`Codec` for a released model name (``dcae models``), a weights file, or a model.

    ``device`` places a loaded model (default: the CPU); a model object is used where it is.
    Keyword arguments are :class:`CodecOptions` fields.
    """
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
