"""A stand-in for glibc that records the allocator calls of :mod:`glaciermap.inference.heap`."""

from __future__ import annotations

import pytest

from glaciermap.inference import heap


class RecordingLibc:
    """Records ``mallopt`` and ``malloc_trim`` calls as ``(name, *args)`` tuples."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, ...]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


RETAIN_CALLS = [
    ("mallopt", heap.M_MMAP_MAX, 0),
    ("mallopt", heap.M_TRIM_THRESHOLD, heap.RETAIN_TRIM_THRESHOLD),
]
"""What entering the outermost retained-heap block calls."""

RESTORE_CALLS = [
    ("mallopt", heap.M_MMAP_MAX, heap.DEFAULT_MMAP_MAX),
    ("mallopt", heap.M_TRIM_THRESHOLD, heap.DEFAULT_TRIM_THRESHOLD),
    ("malloc_trim", 0),
]
"""What leaving the outermost retained-heap block calls."""


def recording_libc(monkeypatch: pytest.MonkeyPatch) -> RecordingLibc:
    """Put a :class:`RecordingLibc` where :func:`glaciermap.inference.heap.glibc` finds the C library."""
    libc = RecordingLibc()
    monkeypatch.setattr(heap, "glibc", lambda: libc)
    monkeypatch.delenv(heap.CPU_HEAP_ENV, raising=False)
    return libc
