"""Training data: random crops from any folder tree of images, resumable and shardable."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from ..errors import DataError, ImageError
from ..files import find_images
from ..imageio import load_image
from .config import CROP_LEANS


def split_holdout(root: "str | Path", count: int) -> tuple[list[Path], list[Path]]:
    """Split the images under ``root`` into ``(train, held_back)`` with ``count`` held back.

    The held-back photos are those whose SHA-256 of the path relative to ``root`` is smallest:
    the choice depends only on file names, so it is the same on every machine and for every run,
    and adding photos to the folder moves few of them between the two sets.
    """
    files = find_images(root)
    if not 0 <= count < len(files):
        raise DataError(f"cannot hold back {count} of the {len(files)} images under {root}")
    root = Path(root)
    rank = sorted(files, key=lambda p: hashlib.sha256(p.relative_to(root).as_posix().encode()).digest())
    held = set(rank[:count])
    return [p for p in files if p not in held], sorted(held)


def _load_rgb(path: Path) -> "np.ndarray | None":
    """A training photo as RGB, or None (with a warning) when it is unreadable or above
    Pillow's pixel limit: one bad photo must not end a run."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the image's own warnings (16 bits, frames) do not matter here
            return load_image(path)[0]
    except ImageError as error:
        warnings.warn(f"skipping unreadable training image: {error}", stacklevel=2)
        return None


# A step between neighbouring pixels' luma above this many levels of 255 is a sharp edge (the
# analysis scripts, scripts/per_image_bd.py and scripts/edge_errors.py, count edges by it too).
SHARP_STEP = 48
# Luma of RGB (BT.601 weights).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


# A sharp step lies on a contour (a hull, a window frame) rather than in texture (fur, gravel) when
# the luma gradients around it share one orientation: the structure tensor's coherence over a
# CONTOUR_WINDOW-pixel square is at least CONTOUR_COHERENCE (1: one direction, 0: none).
CONTOUR_WINDOW = 15
CONTOUR_COHERENCE = 0.8


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array(LUMA_WEIGHTS, dtype=np.float32)


def sharp_steps(rgb: np.ndarray) -> int:
    """How many neighbouring-pixel luma steps of an (H, W, 3) uint8 crop exceed :data:`SHARP_STEP`."""
    luma = _luma(rgb)
    return int((np.abs(np.diff(luma, axis=0)) > SHARP_STEP).sum() + (np.abs(np.diff(luma, axis=1)) > SHARP_STEP).sum())


def _window_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sum over the ``size x size`` square centred on every pixel (mirrored at the borders)."""
    half = size // 2
    padded = np.pad(values.astype(np.float64), half, mode="symmetric")
    total = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1))
    total[1:, 1:] = padded.cumsum(0).cumsum(1)
    return total[size:, size:] - total[:-size, size:] - total[size:, :-size] + total[:-size, :-size]


def contour_pixels(rgb: np.ndarray) -> np.ndarray:
    """(H, W) mask of the pixels of an (H, W, 3) uint8 image that sit on a sharp luma step
    (either side of a step above :data:`SHARP_STEP`) and on a contour: the gradients in the
    :data:`CONTOUR_WINDOW` square around them share one orientation (coherence of at least
    :data:`CONTOUR_COHERENCE`). Long straight or smooth contours count; fine texture does not."""
    luma = _luma(rgb)
    grad_y, grad_x = np.gradient(luma)
    xx, yy, xy = (_window_sums(g, CONTOUR_WINDOW) for g in (grad_x * grad_x, grad_y * grad_y, grad_x * grad_y))
    energy = xx + yy
    spread = np.sqrt((xx - yy) ** 2 + 4 * xy**2)
    coherent = spread >= CONTOUR_COHERENCE * np.maximum(energy, 1e-9)
    sharp = np.zeros(luma.shape, dtype=bool)
    across = np.abs(np.diff(luma, axis=1)) > SHARP_STEP
    down = np.abs(np.diff(luma, axis=0)) > SHARP_STEP
    sharp[:, :-1] |= across
    sharp[:, 1:] |= across
    sharp[:-1] |= down
    sharp[1:] |= down
    return sharp & coherent


class RandomCropDataset(Dataset):
    """Random ``patch x patch`` crops with flips and an optional random downscale.

    Items are addressed by ``(image_index, seed)``: every random choice of a crop comes from a
    generator seeded by ``seed``, so a run can be resumed or sharded exactly. Images smaller
    than the patch (after downscaling) are upscaled until the patch fits. Unreadable files are
    dropped with a warning when the dataset is built.

    Args:
        source: folder searched recursively for images, or a list of image files.
        patch: side of the square crops.
        downscale: ``(low, high)`` range of a random resize factor applied before cropping
            (``(1, 1)`` disables it). Downscaling hides JPEG block artefacts of training photos.
        cache: keep decoded images in memory (fast; about 3 bytes per pixel of the data set).
        candidates: crop positions drawn per crop; the one scoring highest by ``lean`` is kept.
            1 gives uniform crops; more lean the crops towards edges, where a model trained on
            uniform crops loses most (docs/training-log.md).
        lean: what a candidate is scored by: ``"edges"``, its sharp steps (:func:`sharp_steps`,
            texture included), or ``"contours"``, its pixels on contours (:func:`contour_pixels`).
    """

    def __init__(
        self,
        source: "str | Path | Sequence[Path]",
        patch: int = 256,
        downscale: tuple[float, float] = (1.0, 1.0),
        cache: bool = True,
        candidates: int = 1,
        lean: str = "edges",
    ) -> None:
        if patch < 16:
            raise DataError(f"patch size must be at least 16, got {patch}")
        low, high = downscale
        if not 0 < low <= high <= 1:
            raise DataError(f"downscale range must satisfy 0 < low <= high <= 1, got {downscale}")
        self.patch = patch
        self.downscale = (float(low), float(high))
        self.cache = cache
        if candidates < 1:
            raise DataError(f"crop candidates must be at least 1, got {candidates}")
        self.candidates = candidates
        if lean not in CROP_LEANS:
            raise DataError(f"crop lean must be one of {', '.join(CROP_LEANS)}, got {lean!r}")
        self.lean = lean
        self.paths: list[Path] = []
        self._images: list[np.ndarray] = []
        files = find_images(source) if isinstance(source, (str, Path)) else list(source)
        for path in files:
            array = _load_rgb(path)
            if array is None:
                continue
            self.paths.append(path)
            if cache:
                self._images.append(array)
        if not self.paths:
            raise DataError(f"no readable images in {source if isinstance(source, (str, Path)) else 'the list'}")

    def __len__(self) -> int:
        return len(self.paths)

    def _image(self, index: int) -> np.ndarray:
        if self.cache:
            return self._images[index]
        array = _load_rgb(self.paths[index])
        if array is None:  # vanished or damaged after the scan: use a neighbour instead
            return self._image((index + 1) % len(self.paths))
        return array

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, seed = item
        rng = torch.Generator().manual_seed(int(seed))
        image = Image.fromarray(self._image(index))
        low, high = self.downscale
        factor = low + (high - low) * torch.rand((), generator=rng).item()
        # Never shrink below the patch; grow images that are too small.
        factor = max(factor, self.patch / min(image.size))
        if abs(factor - 1.0) > 1e-6:
            size = (max(self.patch, round(image.width * factor)), max(self.patch, round(image.height * factor)))
            image = image.resize(size, Image.Resampling.BICUBIC if factor > 1 else Image.Resampling.LANCZOS)
        array = np.asarray(image)
        positions = [
            (
                int(torch.randint(0, array.shape[0] - self.patch + 1, (), generator=rng)),
                int(torch.randint(0, array.shape[1] - self.patch + 1, (), generator=rng)),
            )
            for _ in range(self.candidates)
        ]
        top, left = positions[0]
        if self.candidates > 1:  # the first of the best scored
            score = sharp_steps if self.lean == "edges" else lambda rgb: int(contour_pixels(rgb).sum())
            side = self.patch
            top, left = max(positions, key=lambda at: score(array[at[0] : at[0] + side, at[1] : at[1] + side]))
        crop = torch.from_numpy(array[top : top + self.patch, left : left + self.patch].copy())
        crop = crop.permute(2, 0, 1).float().div_(255.0)
        flips = torch.rand(2, generator=rng)
        if flips[0] < 0.5:
            crop = crop.flip(-1)
        if flips[1] < 0.5:
            crop = crop.flip(-2)
        return crop


class ResumableSampler(Sampler):
    """Endless ``(image_index, crop_seed)`` pairs in per-epoch random order, split across ranks.

    The global stream of samples is a pure function of ``seed``; rank ``r`` of ``world`` takes
    every ``world``-th sample starting at ``r``. ``start`` skips the first samples of this rank
    (a resumed run passes the number it has already consumed).
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1, start: int = 0) -> None:
        if size < 1:
            raise DataError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world, self.start = size, seed, rank, world, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start * self.world + self.rank  # index into the global stream
        while True:
            epoch, offset = divmod(position, self.size)
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            while offset < self.size:
                yield int(order[offset]), (self.seed * 1_000_003 + position) % (2**63 - 1)
                position += self.world
                offset += self.world

    def __len__(self) -> int:  # an endless sampler; DataLoader only needs a number
        return 2**62
