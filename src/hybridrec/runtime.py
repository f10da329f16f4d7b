"""Process-wide settings the entry points apply at start.

:func:`tune_allocator`: glibc hands every allocation above its mmap threshold (32 MB at most,
by default) straight to the kernel and returns it on free, so a loop that allocates and frees
50 MB tensors (a (1024 x 12,102) score block per evaluation batch) pays page faults for every
page, every batch. Measured on this kind of machine (docs/benchmarks.md "Allocator"): a
GRU4Rec validation pass on Amazon Beauty spent 3.4-3.7 s of 6.2 s in the kernel; 40 rounds of
clone + compare on such a block take 3.15 s, 1.19 s after this call. Raising the mmap, trim
and top-pad thresholds keeps freed blocks in the heap for reuse, at the price of holding up to
``trim`` bytes of freed memory. ``HYBRIDREC_MALLOC_TUNING=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def tune_allocator(
    mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30, top_pad: int = 256 << 20
) -> bool:
    """Raise glibc's malloc thresholds (Linux only); True when all three were applied."""
    if not sys.platform.startswith("linux") or os.environ.get("HYBRIDREC_MALLOC_TUNING") == "0":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    applied = [
        mallopt(M_MMAP_THRESHOLD, mmap_threshold),
        mallopt(M_TRIM_THRESHOLD, trim_threshold),
        mallopt(M_TOP_PAD, top_pad),
    ]
    ok = all(value == 1 for value in applied)
    if not ok:
        log.debug("mallopt refused some thresholds: %s", applied)
    return ok
