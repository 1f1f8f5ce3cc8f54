"""The engine gives the C heap's freed pages back when it goes idle (mlx_speechd/engine/memory.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import pytest

from mlx_speechd.engine import memory


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_freed_memory_returns_freed_heap_pages() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # Freeing an mmapped block raises glibc's mmap threshold: the next blocks come from the heap.
    libc.free(libc.malloc(1 << 20))
    blocks = [libc.malloc(512 << 10) for _ in range(64)]  # 32 MB
    for block in blocks:
        ctypes.memset(block, 1, 512 << 10)
    for block in blocks[::2]:  # between live blocks: nothing frees them but a trim
        libc.free(block)
    before = _rss()
    memory.release_freed_memory()
    assert before - _rss() > 8 << 20
    for block in blocks[1::2]:
        libc.free(block)
