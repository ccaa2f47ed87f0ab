"""tryon.memory: freed megabyte buffers are reused instead of being faulted in again on every call."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tryon import memory

#: Allocates, fills and frees a 2.4 MB buffer (one 1024 x 768 RGB image) 20 times, as 20 calls would, and
#: prints the page faults that took.
_FAULTS = """
import resource, sys
from tryon.memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
image = bytes(range(256)) * (1024 * 768 * 3 // 256)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    copy = bytes(bytearray(image))  # two fresh 2.4 MB blocks, freed at once
    del copy
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)
def test_freed_buffers_are_reused_instead_of_faulted_in_again() -> None:
    assert memory.retain_freed_memory()
    assert memory.retain_freed_memory()  # idempotent
    default, retained = _page_faults("default"), _page_faults("retain")
    pages_per_round = 2 * 1024 * 768 * 3 // 4096
    assert default > 5 * pages_per_round  # glibc's defaults fault the blocks in on most rounds
    assert retained < 2 * pages_per_round  # at most the first round's
