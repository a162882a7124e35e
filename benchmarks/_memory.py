"""The peak memory of this process, as the benchmarks report it.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not the process's own peak when it was started by
a larger one: Linux carries the high-water mark across ``fork`` and ``exec``, so a worker
launched by a parent that peaked at 0.4 GiB reports at least 0.4 GiB. ``VmHWM`` in
``/proc/self/status`` belongs to the address space the worker's ``exec`` created, so it
counts the worker's memory alone; ``ru_maxrss`` stays as the fallback off Linux.
"""

from __future__ import annotations

import resource
import sys

_STATUS = "/proc/self/status"


def peak_rss_bytes() -> int:
    """Peak resident memory of this process in bytes."""
    try:
        with open(_STATUS) as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere
