"""engine.memory: glibc keeps the engine's large buffers in its heap once told to."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap

import pytest

from unet_matting.engine.memory import keep_large_buffers

GLIBC = platform.libc_ver()[0] == "glibc"

PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from unet_matting.engine.memory import keep_large_buffers
    tuned = keep_large_buffers() if sys.argv[1] == "tuned" else None
    block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, over glibc's default mmap threshold
    address = block.ctypes.data
    heap = next(
        [int(a, 16) for a in line.split()[0].split("-")]
        for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")
    )
    print(json.dumps({"tuned": tuned, "in_heap": heap[0] <= address < heap[1]}))
    """
)


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="the tuning is glibc's mallopt")
def test_large_blocks_come_from_the_heap_once_tuned():
    plain, tuned = _probe("plain"), _probe("tuned")
    assert plain["in_heap"] is False  # glibc's default: a block this large is a fresh mmap
    assert tuned == {"tuned": True, "in_heap": True}


@pytest.mark.skipif(not GLIBC, reason="the tuning is glibc's mallopt")
def test_tuning_twice_is_harmless():
    assert keep_large_buffers() is True
    assert keep_large_buffers() is True


RETURN_PROBE = textwrap.dedent(
    """
    import json
    import numpy as np
    from unet_matting.engine.memory import give_back_free_memory, keep_large_buffers

    def rss_mb():
        line = next(l for l in open("/proc/self/status") if l.startswith("VmRSS"))
        return int(line.split()[1]) / 1024

    keep_large_buffers()
    block = np.ones(256 << 20, dtype=np.uint8)  # 256 MiB from the heap, touched
    del block
    kept = rss_mb()
    returned = give_back_free_memory()
    print(json.dumps({"kept": kept, "returned": returned, "after": rss_mb()}))
    """
)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_kept_memory_goes_back_when_asked():
    """Tuned, freed memory stays resident (the next pass reuses it) until handed back."""
    out = subprocess.run([sys.executable, "-c", RETURN_PROBE], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout)
    assert figures["returned"] is True
    assert figures["kept"] - figures["after"] > 200  # MB: the freed block left the process
