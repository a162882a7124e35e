"""The score command's allocator setting: freed large blocks are reused, not refaulted."""

import platform
import subprocess
import sys

from samsvae_plus.cli import allocator

# A fresh process (mallopt changes the whole process): the page faults of allocating and
# touching 64 MB twice, freeing it in between.
PROBE = """
import resource, sys
import numpy as np
from samsvae_plus.cli.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.empty(64 << 20, dtype=np.uint8)
    block.fill(1)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del block
print(applied, faults[0], faults[1])
"""


def _probe(mode: str) -> tuple[str, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1]), int(out[2])


def test_freed_blocks_are_reused_only_after_keep_freed_memory():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert allocator.keep_freed_memory() is False
        return
    applied, first, second = _probe("keep")
    assert applied == "True"
    # the second block reuses the first's pages: (almost) no new faults
    assert first > 10 and second <= max(2, first // 10)
    # without the setting, the freed block went back to the kernel and faults again
    _, first_default, second_default = _probe("default")
    assert second_default > max(2, first_default // 10)


def test_keep_freed_memory_does_nothing_off_glibc(monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert allocator.keep_freed_memory() is False
