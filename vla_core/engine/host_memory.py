"""Host memory that training frees goes back to the system at once (glibc's malloc).

torch's CPU tensors come from `malloc`. glibc serves a request of at least its *mmap
threshold* with a private mapping, unmapped on `free`; smaller ones come from its heaps,
where freed memory stays resident until a later request happens to fit it. The threshold
is dynamic: each time a mapped block is freed it rises to that block's size (up to 32 MiB).
A training step frees and allocates thousands of tensors of a few MiB (unsharded layers
and their gradients under FSDP2, activations, AdamW temporaries), so after the first
steps they all land on the heaps, and the freed ones, fragmented, keep the process's
peak RSS far above what is alive at any moment.

Measured with `benchmarks/fsdp_memory.py` (a 302M VLA, fp32 + AdamW, 2 processes on
gloo, peak RSS per process): 4.68 GB with the dynamic threshold, 3.61 GB with a fixed
1 MiB one, 3.47 GB with a fixed 128 KiB one (activations of one sample are a few
hundred KiB); one process: 5.98 GB -> 5.89 GB (1 MiB). See docs/benchmarks.md.

`release_freed_tensor_memory()` fixes the threshold at 128 KiB, glibc's own starting
value (`mallopt(M_MMAP_THRESHOLD)`, which also turns the dynamic adjustment off), so
every tensor of 128 KiB or more is mapped on its own and returned on free. Smaller
allocations keep using the heaps. It changes
nothing off glibc (macOS, musl) and is skipped when `MALLOC_MMAP_THRESHOLD_` is set in the
environment (the user chose a value). The price is a page fault per 4 KiB of each such
tensor when it is first written, instead of reusing resident heap memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: glibc's `M_MMAP_THRESHOLD` parameter of `mallopt` (malloc.h).
M_MMAP_THRESHOLD = -3
#: Tensors of at least this many bytes are mapped on their own and unmapped when freed.
MMAP_THRESHOLD_BYTES = 128 << 10

_applied = False


def release_freed_tensor_memory() -> bool:
    """Make glibc return freed tensor memory at once (see the module docstring); True when
    the setting is in effect (now or from an earlier call)."""
    global _applied
    if _applied:
        return True
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return _applied
