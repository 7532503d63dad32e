"""Process memory: how much coding an image needs, how much this process may use, and the
allocator policy of the command line.

**Estimates.** Peak resident memory grows with the pixels in two regimes, measured with
``benchmarks/large_images.py`` (docs/benchmarks.md): up to one entropy chunk (96x96 latent
positions, about 2.4 megapixels) the networks' temporaries grow with the image; beyond it they
stay those of one chunk, and only the per-image buffers (8-bit pixels, latents, hyper features,
one slice's parameters) grow. An image whose estimate exceeds what the process may still use is
refused before any work, with one line, instead of failing after minutes.

Coding a large image allocates and frees many large temporaries of varying sizes, chunk by
chunk. glibc's allocator raises its mmap threshold each time such a block is freed, after which
blocks of that size come from the heap and are kept by the process when freed: on a 14-megapixel
photo that retention was about 40% of the peak resident memory. A fixed threshold hands every
block above it straight back to the kernel when freed.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from pathlib import Path

from .errors import ResourceError

# Peak resident bytes of the ``dcae`` command coding an image: a base (Python, PyTorch, the
# model), a slope up to one chunk's worth of pixels, and a slope beyond it; the larger of
# encoding and decoding, with a margin (measured: docs/benchmarks.md, large photos).
BASE_BYTES = 350_000_000
CHUNK_PIXELS = 1536 * 1536
BYTES_PER_PIXEL_IN_CHUNK = 480
BYTES_PER_PIXEL_BEYOND = 60  # glibc's own threshold (images up to 32 megapixels)
BYTES_PER_PIXEL_FIXED_THRESHOLD = 38  # beyond 32 megapixels, with the fixed threshold
MARGIN = 1.15

# mallopt's parameter number for the mmap threshold, in glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
# Blocks above this size are mapped from the kernel and returned to it when freed.
MMAP_THRESHOLD = 1 << 20
# ... for images above this many pixels, where the memory saved matters more than the time.
FIXED_THRESHOLD_ABOVE_PIXELS = 32_000_000


def return_large_blocks_to_the_system(pixels: int) -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` for this process before coding an
    image of ``pixels``, when it is above :data:`FIXED_THRESHOLD_ABOVE_PIXELS` (Linux; a
    ``MALLOC_MMAP_THRESHOLD_`` set by the user wins). Returns whether the setting was made.

    Only for very large images: every large temporary then costs fresh pages, which made a
    768x512 photo code 55% slower (1.39 s against 0.89 s) and a 2-megapixel one 70% slower,
    while it cut a 14-megapixel photo's peak memory by 40%; an 81-megapixel photo needs it to
    stay within 4 GB. Process-wide and not undone: the ``dcae`` command calls it for its own process; a
    program using the library decides for itself (the same environment variable works there).
    """
    if pixels <= FIXED_THRESHOLD_ABOVE_PIXELS or not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def coding_peak_bytes(width: int, height: int) -> int:
    """Estimated peak resident memory (bytes) of coding a ``width`` x ``height`` image, either
    way, with the default settings of the shipped model."""
    pixels = width * height
    within = min(pixels, CHUNK_PIXELS)
    beyond = min(max(0, pixels - CHUNK_PIXELS), FIXED_THRESHOLD_ABOVE_PIXELS - CHUNK_PIXELS)
    fixed = max(0, pixels - FIXED_THRESHOLD_ABOVE_PIXELS)
    peak = (
        BASE_BYTES
        + within * BYTES_PER_PIXEL_IN_CHUNK
        + beyond * BYTES_PER_PIXEL_BEYOND
        + fixed * BYTES_PER_PIXEL_FIXED_THRESHOLD
    )
    return int(MARGIN * peak)


def _proc_value(path: str, key: str) -> "int | None":
    """A ``key: N kB`` line of a /proc file, in bytes."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: str) -> "int | None":
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_bytes() -> "tuple[int, str] | None":
    """How many more bytes this process may take, and what limits it: the system's available
    memory, a control group's limit, or an address-space limit (``ulimit -v``), whichever is
    least; None where none can be read."""
    found: list[tuple[int, str]] = []
    system = _proc_value("/proc/meminfo", "MemAvailable")
    if system is not None:
        found.append((system, "available memory"))
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            found.append((limit - usage, "the control group's memory limit"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _proc_value("/proc/self/status", "VmSize")
    if soft != resource.RLIM_INFINITY and mapped is not None:
        found.append((soft - mapped, "the address-space limit (ulimit -v)"))
    return min(found) if found else None


def check_fits(width: int, height: int, what: str = "the image") -> None:
    """Raise :class:`ResourceError` when coding ``what`` (``width`` x ``height``) would need more
    memory than this process may still take."""
    room = available_bytes()
    if room is None:
        return
    resident = _proc_value("/proc/self/status", "VmRSS") or 0
    needed = coding_peak_bytes(width, height) - resident
    if needed > room[0]:
        raise ResourceError(
            f"{what} is {width}x{height} ({width * height / 1e6:.1f} million pixels): coding it needs about "
            f"{needed / 1e9:.1f} GB more memory, and {room[1]} leaves {max(room[0], 0) / 1e9:.1f} GB"
        )
