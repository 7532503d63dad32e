"""Measuring codecs over a folder of images: real files, per-image metrics and timings."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..imageio import load_image
from ..training.data import find_images
from .classic import CLASSIC_CODECS
from .metrics import image_metrics

DCAE_KEY = "dcae"


@dataclass(frozen=True)
class Job:
    """One codec on one image over a list of qualities."""

    codec: str  # "dcae" or a key of CLASSIC_CODECS
    image: str
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


_CODEC_CACHE: dict[tuple[str, int], Any] = {}


def _dcae_codec(model: str, threads: int, optimize_steps: int):
    import torch

    from ..codec import load_codec

    torch.set_num_threads(threads)
    key = (model, optimize_steps)
    if key not in _CODEC_CACHE:
        _CODEC_CACHE[key] = load_codec(model, optimize_steps=optimize_steps)
    return _CODEC_CACHE[key]


def run_job(job: Job) -> tuple[Job, list[dict[str, Any]]]:
    """Encode and decode one image at every quality of the job; returns metric rows."""
    reference, _ = load_image(job.image)
    if job.codec == DCAE_KEY:
        codec = _dcae_codec(job.model, job.threads, job.optimize_steps)
        encode: Callable = lambda a, q: codec.compress(a, quality=q)  # noqa: E731
        decode: Callable = codec.decompress
    else:
        classic = CLASSIC_CODECS[job.codec]
        encode, decode = classic.encode, classic.decode
    rows = []
    for quality in job.qualities:
        start = time.perf_counter()
        data = encode(reference, quality)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = decode(data)
        decode_s = time.perf_counter() - start
        row = {"quality": quality, **image_metrics(reference, decoded, len(data))}
        row.update(encoding_time=encode_s, decoding_time=decode_s)
        rows.append(row)
    return job, rows


def dcae_description(model: str) -> tuple[str, list[float | None]]:
    """A description and the default quality sweep of a dcae model."""
    from ..weights import read_metadata
    from ..zoo import resolve_model_path

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
        raise ValueError(f"unknown codecs {unknown}; choose from {', '.join(CLASSIC_CODECS)}")
    results: dict[str, CodecResult] = {}
    job_list: list[Job] = []
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    if model is not None:
        description, default_q = dcae_description(model)
        if optimize_steps:
            description += f", {optimize_steps} steps of latent optimisation per image"
        sweep = tuple(qualities) if qualities else tuple(default_q)
        results[DCAE_KEY] = CodecResult("dcae", description, list(sweep))
        job_list += [Job(DCAE_KEY, image, sweep, model, threads, optimize_steps) for image in images]
    for key in codecs:
        classic = CLASSIC_CODECS[key]
        results[key] = CodecResult(classic.name, classic.description + ", real files", list(classic.qualities))
        job_list += [Job(key, image, classic.qualities) for image in images]
    done = 0
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            outcomes = pool.map(run_job, job_list)
            for job, rows in outcomes:
                results[job.codec].per_image[Path(job.image).name] = rows
                done += 1
                if progress:
                    progress(done, len(job_list))
    else:
        for job in job_list:
            _, rows = run_job(job)
            results[job.codec].per_image[Path(job.image).name] = rows
            done += 1
            if progress:
                progress(done, len(job_list))
    return results
