"""Keep freed memory inside the process, so that a training step reuses its pages.

A step of a stacked group allocates and frees the same tensors every iteration: activations,
gradients, temporaries of a few hundred kB to tens of MB each. glibc's malloc serves blocks
above its mmap threshold (128 kB to start) with a fresh ``mmap`` and returns them with
``munmap`` when freed, so every step pays the kernel to map, zero and fault in those pages
again. Raising the mmap and trim thresholds makes malloc keep freed blocks on its heap and hand
the same pages back at the next step. Measured on the quick suite's MLP with K = 16 runs on
one CPU thread: 0.43 -> 0.28 ms per run and step (``benchmarks/batched.py`` shows the effect
on whole suites). Numerics are untouched; the cost is that the process keeps its peak heap.

It matters where tensors are large: a one-run step of a small model allocates below the
threshold and is unchanged. Elsewhere than on glibc (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt(3) parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap and are reused; larger ones are still mapped.
#: Tried in order: the first glibc accepts is kept.
_MMAP_THRESHOLDS = (256 * 1024**2, 32 * 1024**2)
#: Free memory at the top of the heap is returned to the system only above this.
TRIM_THRESHOLD = 2**31 - 1

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True where applied."""
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc
                return False
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            # glibc refuses an mmap threshold above its heap limit (32 MiB on some builds).
            mapped = any(mallopt(_M_MMAP_THRESHOLD, size) for size in _MMAP_THRESHOLDS)
            _applied = bool(mapped and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
