"""Keep freed memory in the process while a scene is mapped on a CPU (glibc's allocator only).

A GlaViTU forward pass on a 384 px window allocates about 0.6-0.9 GB of activations, in tensors of 9-75 MB.
glibc's ``malloc`` serves a request above its mmap threshold (which it raises by itself to 32 MB at most) with
fresh pages from ``mmap`` and gives them back with ``munmap`` when the tensor is freed, so every window starts
again from unmapped memory: 140,000-225,000 page faults per window, each one a page the kernel has to zero.
Measured on 2 cores (``benchmarks/RESULTS.md``, "Page faults: the retained heap"): a 1.2-2.4 s window spent
0.2-0.5 s on them, while OpenVINO, which plans its own memory, had about 8,000 faults per window.

:func:`retained_heap` sets two of glibc's ``mallopt`` parameters for its duration: ``M_MMAP_MAX = 0`` (serve
large requests from the heap, not from ``mmap``) and a ``M_TRIM_THRESHOLD`` high enough that freed memory
stays in the heap, where the next window's tensors reuse it without a fault. On leaving, it restores glibc's
start values (``M_MMAP_MAX`` 65,536, ``M_TRIM_THRESHOLD`` 128 KiB) and hands the retained memory back to the
system with ``malloc_trim(0)``. The price is the heap's fragmentation (freed pieces too small for the next
large tensor stay while the heap grows past them): over a tall scene GlaViTU's peak was 1.14-1.20x glibc's at
batch 1 and 1.40-1.43x at batch 8. The heap settles within the first rows of windows and is flat in the scene's
height after that (``benchmarks/RESULTS.md``, "Memory: the retained heap over a tall scene"), and the memory the
process holds between windows stays at that peak instead of falling back. Setting a parameter also ends
glibc's own adjustment of its mmap and trim thresholds for the rest of the process (it cannot be switched
back on); the restored start values then stay fixed.

Only the main thread's heap is kept: glibc gives every other thread a heap of its own whose pieces are at most
64 MB, so larger tensors allocated there are mapped and unmapped whatever these parameters say. Mapping
therefore runs the network in the calling thread and writes in a background one
(:class:`~glaciermap.inference.source.Consumer`).

``GLACIERMAP_CPU_HEAP=system`` leaves the allocator as it is. On other C libraries (macOS, Windows, musl) and
under a preloaded allocator such as jemalloc the function does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Iterator
from typing import Final

from glaciermap.errors import ConfigError

__all__ = ["CPU_HEAP_ENV", "glibc", "heap_retention_enabled", "retained_heap"]

CPU_HEAP_ENV: Final[str] = "GLACIERMAP_CPU_HEAP"
"""Environment variable: ``retain`` (default: :func:`retained_heap` keeps freed memory) or ``system``."""

M_TRIM_THRESHOLD: Final[int] = -1
M_MMAP_MAX: Final[int] = -4
"""``mallopt`` parameter numbers of glibc's ``malloc.h``."""

DEFAULT_TRIM_THRESHOLD: Final[int] = 128 * 1024
DEFAULT_MMAP_MAX: Final[int] = 65536
"""glibc's start values of the two parameters, restored on leaving."""

RETAIN_TRIM_THRESHOLD: Final[int] = 2**31 - 1
"""The trim threshold while retaining: the largest value ``mallopt`` takes (an ``int``), 2 GiB."""

_lock = threading.Lock()
_depth = 0


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """glibc, when it is the C library of this process (``gnu_get_libc_version`` and ``mallopt`` exist)."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError off glibc
        libc.mallopt  # noqa: B018
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def heap_retention_enabled() -> bool:
    """Whether :data:`CPU_HEAP_ENV` allows :func:`retained_heap` (``retain``, the default) or not (``system``).

    Raises:
        ConfigError: When the variable holds anything else.
    """
    setting = os.environ.get(CPU_HEAP_ENV, "retain").strip().lower() or "retain"
    if setting not in ("retain", "system"):
        raise ConfigError(
            f"{CPU_HEAP_ENV} is {setting!r}; expected 'retain' (keep freed memory while mapping) or 'system'"
        )
    return setting == "retain"


@contextlib.contextmanager
def retained_heap(enabled: bool = True) -> Iterator[bool]:
    """Keep freed memory in the process for the duration (module docstring); nests, thread-safe.

    The parameters are set by the outermost active block and restored, with the memory trimmed, when the
    last one leaves.

    Args:
        enabled: ``False`` makes the block do nothing (for a caller that maps on a GPU, say).

    Yields:
        Whether the allocator retains freed memory inside the block.

    Raises:
        ConfigError: When :data:`CPU_HEAP_ENV` is neither ``retain`` nor ``system``.
    """
    libc = glibc() if enabled and heap_retention_enabled() else None
    if libc is None:
        yield False
        return
    global _depth
    with _lock:
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, RETAIN_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
