"""Keep freed memory in the process, so the megabyte buffers of every gRPC hop are reused, not re-faulted.

A hop between stages allocates several buffers of megabytes (the serialized message, protobuf's copy of a
bytes field, the decoded array, gRPC's receive buffer) and frees them when the call ends. With glibc's
defaults those come from fresh memory mappings, or from heap memory trimmed back to the kernel after the
previous call, so every call touches them page by page again: on the development VM a freshly allocated
2.4 MB buffer took ~10 ms to fill against 0.2 ms for a reused one, and gRPC moved a 4 MB message in ~12 ms
instead of ~6.5 ms (docs/BENCHMARKS.md, "A lean wire between stages").

:func:`retain_freed_memory` sets two malloc parameters (the same as the ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` environment variables, which must be set before the process starts): blocks up
to 32 MiB (images up to ~2900 x 2900 RGBA) come from the heap, and up to 256 MiB of freed heap stay in
the process. Both are needed: fixing either parameter alone turns off glibc's adaptive choice of the other.
The cost is memory: a process keeps up to 256 MiB of freed heap as resident set instead of returning it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

#: mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap; glibc refuses more than 32 MiB (HEAP_MAX_SIZE / 2).
HEAP_BLOCK_LIMIT = 32 * 1024 * 1024
#: Freed heap kept in the process before glibc returns the top of the heap to the kernel.
RETAINED_FREE_BYTES = 256 * 1024 * 1024


def retain_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed memory (see the module docstring); False where the C library is
    not glibc (musl, macOS), which is then left as it is."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no glibc: musl has no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success, 0 on a refused value.
    done = (
        mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_LIMIT) == 1
        and mallopt(M_TRIM_THRESHOLD, RETAINED_FREE_BYTES) == 1
    )
    if not done:
        log.warning("malloc did not accept the thresholds: freed memory is returned to the kernel as usual")
    return done
