"""Keeping glibc's malloc from handing every batch's buffers back to the kernel.

On Linux with glibc, an allocation above the mmap threshold gets fresh pages from the
kernel and gives them back when freed, and freed memory at the top of the heap above the
trim threshold is returned too. CPU inference frees and allocates the same large
activation buffers on every batch (EfficientNets' TF-"same" padding makes a padded copy
per convolution), so each batch faults all of them in again: lite0 at 224 px spent more
time in the kernel than in its convolutions. Raising both thresholds makes malloc keep
and reuse those buffers. The cost is that the process keeps up to its peak heap after a
batch instead of shrinking between batches (see ``benchmarks/RESULTS.md``).

:func:`tune_malloc` is called when the extraction engine has its model (the CLI and the
Python API alike); ``FEATX_MALLOC_TUNING=0`` leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger(__name__)

ENV = "FEATX_MALLOC_TUNING"
# mallopt's parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: allocations below this come from the heap and are reused; above it they are mapped
#: and unmapped as glibc does by default. Set where it keeps EfficientNet's activation
#: buffers (at a CPU batch of 32 at 224 px: the largest, a padded 96-channel map at
#: 112 px, just under it) in the heap but gives VGG's two largest sizes (64 channels at
#: 224 px, 128 at 112) back: kept in the heap, those fragment it and the peak grew by more
#: than a batch (benchmarks/RESULTS.md).
MMAP_THRESHOLD = 160 << 20
#: freed memory at the top of the heap is returned to the kernel only beyond this
TRIM_THRESHOLD = 1 << 30

_done: bool | None = None


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds for this process, once.

    Returns:
        Whether malloc is tuned: False on other C libraries and systems, when
        ``FEATX_MALLOC_TUNING=0``, or when glibc refused.
    """
    global _done
    if _done is None:
        _done = _tune()
    return _done


def _tune() -> bool:
    if os.environ.get(ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
        log.debug("malloc left as it is (%s=0)", ENV)
        return False
    ok = _mallopt(MMAP_THRESHOLD, TRIM_THRESHOLD)
    if ok:
        log.debug("malloc tuned: mmap threshold %d MiB, trim threshold %d MiB", MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20)
    return ok


def _mallopt(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's mmap and trim thresholds; False on other C libraries or when refused."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1)
    except (OSError, AttributeError) as error:
        log.debug("malloc thresholds not set: %s", error)
        return False
