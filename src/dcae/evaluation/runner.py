"""Measuring codecs over a folder of images: real files, per-image metrics and timings."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..codecs import CodecCache
from ..errors import ConfigError
from ..files import find_images
from ..imageio import load_image
from ..metrics import image_metrics
from ..runtime import available_cpus, torch_threads, worker_pool
from ..weights import read_metadata
from ..zoo import resolve_model_path
from .classic import CLASSIC_CODECS

DCAE_KEY = "dcae"


@dataclass(frozen=True)
class Job:
    """One codec on a few images over a list of qualities (dcae loads its model once per job)."""

    codec: str  # "dcae" or a key of CLASSIC_CODECS
    images: tuple[str, ...]
    qualities: tuple["float | None", ...]
    model: str = ""
    threads: int = 1
    optimize_steps: int = 0  # dcae: encoder-side latent optimisation


@dataclass
class CodecResult:
    """Everything measured for one codec: per-image rows, in the order of its qualities."""

    name: str
    description: str
    qualities: list["float | None"]
    per_image: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """CompressAI's result layout (means over images per rate point) plus per-image values."""
        keys = ["bpp", "psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db", "encoding_time", "decoding_time"]
        results: dict[str, Any] = {"quality": list(self.qualities)}
        for key in keys:
            column = []
            for point in range(len(self.qualities)):
                values = [rows[point][key] for rows in self.per_image.values() if rows[point][key] is not None]
                column.append(float(np.mean(values)) if values else None)
            results[key] = column
        per_image = {
            image: {key: [row[key] for row in rows] for key in ["bpp", "psnr-rgb", "ms-ssim-rgb"]}
            for image, rows in sorted(self.per_image.items())
        }
        return {"name": self.name, "description": self.description, "results": results, "per_image": per_image}


def run_job(job: Job) -> tuple[Job, list[list[dict[str, Any]]]]:
    """Encode and decode each image of the job at every quality; returns metric rows per image."""
    with torch_threads(job.threads):
        if job.codec == DCAE_KEY:
            codec = CodecCache().get(job.model, optimize_steps=job.optimize_steps)
            encode: Callable = lambda a, q: codec.compress(a, quality=q).data  # noqa: E731
            decode: Callable = lambda data: codec.decompress(data).pixels  # noqa: E731
        else:
            classic = CLASSIC_CODECS[job.codec]
            encode, decode = classic.encode, classic.decode
        return job, [_measure(image, job.qualities, encode, decode) for image in job.images]


def _measure(image: str, qualities: Sequence["float | None"], encode: Callable, decode: Callable) -> list[dict]:
    reference, _ = load_image(image, max_pixels=None)
    rows = []
    for quality in qualities:
        start = time.perf_counter()
        data = encode(reference, quality)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = decode(data)
        decode_s = time.perf_counter() - start
        row = {"quality": quality, **image_metrics(reference, decoded, len(data))}
        row.update(encoding_time=encode_s, decoding_time=decode_s)
        rows.append(row)
    return rows


def dcae_description(model: str) -> tuple[str, list[float | None]]:
    """A description and the default quality sweep of a dcae model."""
    meta = read_metadata(resolve_model_path(model))
    points = int(meta.get("config", {}).get("num_rate_points", 0))
    step = meta.get("step")
    text = f"dcae model {model} ({meta.get('digest', '')[:16]}, {step} training steps), real bitstreams"
    return text, [float(q) for q in range(points)] if points else [None]


def evaluate(
    dataset: "str | Path",
    codecs: Sequence[str],
    model: "str | None" = None,
    qualities: "Sequence[float] | None" = None,
    jobs: int = 1,
    max_images: "int | None" = None,
    progress: "Callable[[int, int], None] | None" = None,
    optimize_steps: int = 0,
    threads: "int | None" = None,
) -> dict[str, CodecResult]:
    """Measure dcae (when ``model`` is given, with ``optimize_steps`` of latent optimisation per
    image) and the named classic codecs on every image; dcae runs ``threads`` torch threads per
    job (default: the machine's CPUs shared among the jobs)."""
    images = [str(p) for p in find_images(dataset)][: max_images or None]
    unknown = [c for c in codecs if c not in CLASSIC_CODECS]
    if unknown:
        raise ConfigError(f"unknown codecs {unknown}; choose from {', '.join(CLASSIC_CODECS)}")
    results: dict[str, CodecResult] = {}
    threads = threads or max(1, available_cpus() // max(1, jobs))
    # A few images per job: dcae loads its model once per job, and progress stays fine-grained.
    per_job = max(1, math.ceil(len(images) / (4 * jobs)))
    chunks = [tuple(images[i : i + per_job]) for i in range(0, len(images), per_job)]
    job_list: list[Job] = []
    if model is not None:
        description, default_q = dcae_description(model)
        if optimize_steps:
            description += f", {optimize_steps} steps of latent optimisation per image"
        sweep = tuple(qualities) if qualities else tuple(default_q)
        results[DCAE_KEY] = CodecResult("dcae", description, list(sweep))
        job_list += [Job(DCAE_KEY, chunk, sweep, model, threads, optimize_steps) for chunk in chunks]
    for key in codecs:
        classic = CLASSIC_CODECS[key]
        results[key] = CodecResult(classic.name, classic.description + ", real files", list(classic.qualities))
        job_list += [Job(key, chunk, classic.qualities, threads=threads) for chunk in chunks]
    done, total = 0, sum(len(job.images) for job in job_list)
    with contextlib.ExitStack() as stack:
        if jobs > 1:
            pool = stack.enter_context(worker_pool(jobs))  # leaving it terminates the workers
            outcomes = pool.imap(run_job, job_list)
        else:
            outcomes = map(run_job, job_list)
        for job, rows_per_image in outcomes:
            for image, rows in zip(job.images, rows_per_image):
                results[job.codec].per_image[Path(image).name] = rows
            done += len(job.images)
            if progress:
                progress(done, total)
    return results
