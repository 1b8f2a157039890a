"""How the process's C allocator (glibc's malloc) treats the engine's large buffers.

A forward pass and a 12 MP post-processing allocate and free maps of tens to hundreds of MB
(IS-Net at 1024: 64-128 MiB per activation in fp32). glibc serves anything above its mmap
threshold (at most 32 MiB by default) with a fresh ``mmap`` and unmaps it on free, so every pass
page-faults and zeroes each of those maps again; worker threads also get their own arenas, which
cannot hold blocks of that size at all and map them afresh too. ``keep_large_buffers`` asks glibc,
once and before the process starts threads, to serve large blocks from one heap and keep freed
memory for the next pass: the memory a pass needs stays mapped and is reused, and an idle
process keeps its high-water mark instead of handing it back (the peak itself did not grow in the
runs measured; gains and costs on two VMs: docs/models.md, issue 23). Elsewhere (another C
library, or no ``mallopt``) it does nothing and returns False. ``give_back_free_memory`` hands
what is kept back at once, for a process whose model will not run again (the daemon's own copy
when render processes run the passes, ``engine.processes``).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's <malloc.h>
MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap (IS-Net's largest map: 128 MiB at 1024, 512 at 2048)
TRIM_THRESHOLD = 2**31 - 1  # freed heap memory is kept (the next pass needs it again)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def keep_large_buffers() -> bool:
    """Tune glibc's malloc as above (one arena, large blocks from the heap, nothing trimmed); True
    when glibc took every setting. Call it first thing in the process, before any thread starts:
    a thread keeps the arena it first allocated in."""
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all([mallopt(option, value) == 1 for option, value in settings])


def give_back_free_memory() -> bool:
    """Return the heap's free memory to the system now (glibc's ``malloc_trim``); True when some
    was returned, False when none was or this is not glibc."""
    try:
        trim = _libc().malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return trim(0) == 1
