"""Process memory: how much coding an image needs, how much this process may use, and the
allocator policy of the command line.

**Estimates.** Peak resident memory grows with the pixels in two regimes, measured with
``benchmarks/large_images.py`` (docs/benchmarks.md): up to one entropy chunk (96x96 latent
positions, about 2.4 megapixels) the networks' temporaries grow with the image; beyond it they
stay those of one chunk, and only the per-image buffers (8-bit pixels, latents, hyper features,
one slice's parameters) grow. An image whose estimate exceeds what the process may still use is
refused before any work, with one line, instead of failing after minutes.

Coding a large image allocates and frees many temporaries of varying sizes, chunk by chunk.
glibc's allocator raises its mmap threshold each time such a block is freed (up to 32 MiB), after
which blocks of that size come from the heap and are kept by the process when freed: on a
24-megapixel photo that retention was about a third of the peak. A threshold fixed at 16 MiB
hands the larger blocks (whole-image buffers, tiles' activations) straight back to the kernel
when freed and keeps the smaller, constantly reused ones (a chunk's temporaries) in the heap.
Measured on a 24-megapixel photo (docs/benchmarks.md): 2.9 GB and 101 s to encode with glibc's
own threshold, 2.4 GB and 102 s at 16 MiB, 1.9 GB and 147 s at 1 MiB (every temporary then costs
fresh pages).
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
BYTES_PER_PIXEL_BEYOND = 33  # 8 to 24 megapixels; 25 from 24 to 81; 31 from 81 to 200 (encoding)
MARGIN = 1.15

# mallopt's parameter number for the mmap threshold, in glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
# Blocks above this size are mapped from the kernel and returned to it when freed.
MMAP_THRESHOLD = 16 << 20
# ... for images above this many pixels (smaller ones code as fast either way, or faster with
# glibc's own threshold: 1.7 megapixels took 9.8 s against 8.3-9.1 s).
FIXED_THRESHOLD_ABOVE_PIXELS = 4_000_000


def return_large_blocks_to_the_system(pixels: int) -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` for this process before coding an
    image of ``pixels``, when it is above :data:`FIXED_THRESHOLD_ABOVE_PIXELS` (Linux; a
    ``MALLOC_MMAP_THRESHOLD_`` set by the user wins). Returns whether the setting was made.

    Process-wide and not undone: the ``dcae`` command calls it for its own process; a program
    using the library decides for itself (``MALLOC_MMAP_THRESHOLD_=16777216`` does the same).
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
    beyond = max(0, pixels - CHUNK_PIXELS)
    peak = BASE_BYTES + within * BYTES_PER_PIXEL_IN_CHUNK + beyond * BYTES_PER_PIXEL_BEYOND
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
