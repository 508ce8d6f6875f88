"""Keep freed tensor memory inside the process on glibc, so training steps stop page-faulting.

PyTorch's CPU allocator is plain ``malloc``. glibc serves a block above its mmap threshold (128 kB,
raised as far as the largest block freed so far, at most 32 MB) with a fresh ``mmap`` and returns
it with ``munmap`` on free, and it gives the top of the heap back to the kernel once 2x that
threshold is free there. A training step allocates its activations and frees them all at its end
— far more than 2x the largest one — so every step pays the kernel to zero and map those pages
again: in a population CNN step (16 members, ~4 MB per activation) ~2,000 page faults, a third of
the step (9.4 ms -> 6.4 ms per step on 2 cores, measured for ``benchmarks/bench_eval.py``). Raising the mmap threshold, the trim threshold and the top
pad makes freed blocks stay in the heap for the next step to reuse — what PyTorch's CUDA caching
allocator does on the GPU. The cost: the process keeps up to its peak working set (plus
:data:`TRIM` of free heap) instead of handing it back between steps.

Applied once per process by the trainers on CPU; ``ACTSEARCH_MALLOC=0`` leaves glibc's defaults,
and it is a no-op where ``mallopt`` does not exist (macOS, musl).
"""
from __future__ import annotations

import ctypes
import functools
import os

__all__ = ["retain_freed_memory"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: Blocks up to this size come from the heap: larger than any per-step tensor of the presets
#: (the biggest, a 1,000-example evaluation batch of a population CNN, is ~40 MB).
MMAP_THRESHOLD = 256 << 20
#: Free heap kept before any is returned to the kernel.
TRIM = 1 << 30
#: Extra heap requested per growth, so a growing working set takes fewer, larger brk calls.
TOP_PAD = 64 << 20


@functools.lru_cache(maxsize=1)
def retain_freed_memory() -> bool:
    """Tune glibc malloc as described above (once per process); True if it applied."""
    if os.environ.get("ACTSEARCH_MALLOC", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # glibc before 2.26 refuses thresholds over 32 MB (HEAP_MAX_SIZE / 2). Setting any of these
    # turns off the dynamic threshold, so the others are set only once the threshold took.
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM) and mallopt(_M_TOP_PAD, TOP_PAD))
