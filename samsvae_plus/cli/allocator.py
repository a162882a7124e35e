"""Let a short-lived command reuse the memory it frees instead of returning it to the kernel.

glibc's ``malloc`` serves every allocation above a threshold (128 KiB at start, rising to
at most 32 MiB) with a mapping of its own, and unmaps it on ``free``. The scorer
allocates and frees arrays of tens of MB many times per file, so each one is fresh
memory: the kernel faults it in again, and where numpy asks for transparent huge pages
it may first compact memory to find them. On the 2-core VM of our benchmarks this made
a process's first evaluation take twice as long as the following ones, mostly in system
time. Serving large blocks from the heap, and keeping the heap when blocks are freed,
lets every later allocation of the command reuse pages already mapped.

It changes the whole process, so only a command that ends when its work is done calls
it (``samsvae-plus score``), never the library. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Large enough that no array of a scorer run is mapped on its own or trimmed away.
HEAP_BLOCKS_UP_TO = 1 << 30


def keep_freed_memory() -> bool:
    """Serve allocations up to ``HEAP_BLOCKS_UP_TO`` from the heap and keep freed heap
    memory in the process; True when glibc accepted both settings."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO)
    trim_ok = libc.mallopt(M_TRIM_THRESHOLD, HEAP_BLOCKS_UP_TO)
    return bool(mmap_ok and trim_ok)
