"""Process memory: the allocator policy of the command line.

Coding a large image allocates and frees many large temporaries of varying sizes, chunk by
chunk. glibc's allocator raises its mmap threshold each time such a block is freed, after which
blocks of that size come from the heap and are kept by the process when freed: on a 14-megapixel
photo that retention was about 40% of the peak resident memory. A fixed threshold hands every
block above it straight back to the kernel when freed.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt's parameter number for the mmap threshold, in glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
# Blocks above this size are mapped from the kernel and returned to it when freed.
MMAP_THRESHOLD = 1 << 20


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` for this process (Linux; a
    ``MALLOC_MMAP_THRESHOLD_`` set by the user wins). Returns whether the setting was made.

    Process-wide and not undone: the ``dcae`` command calls it for its own process; a program
    using the library decides for itself (the same environment variable works there).
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
