"""The retained heap: freed activations stay in the process while a scene is mapped on a CPU."""

from __future__ import annotations

import resource

import pytest
import torch

from glaciermap.errors import ConfigError
from glaciermap.inference import heap
from tests.data.heap import RESTORE_CALLS, RETAIN_CALLS, recording_libc

MB64 = 64 * 2**20 // 4
"""float32 elements of a 64 MiB tensor: above glibc's largest mmap threshold (32 MiB)."""


def _faults_of_a_fresh_64_mib_tensor(trim: bool = False) -> int:
    if (
        trim
    ):  # hand free heap pages back first: earlier tests may have left a resident 64 MiB hole in the heap
        libc = heap.glibc()
        assert libc is not None
        libc.malloc_trim(0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(MB64)
    t.fill_(1.0)  # touch every page
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del t
    return faults


@pytest.mark.skipif(heap.glibc() is None, reason="the retained heap needs glibc's allocator")
def test_inside_the_block_a_freed_tensor_is_reused_without_page_faults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(heap.CPU_HEAP_ENV, raising=False)
    _faults_of_a_fresh_64_mib_tensor()
    # outside, glibc maps every one afresh: a fault per page (16,384 of 4 KiB), or per huge page
    outside = [_faults_of_a_fresh_64_mib_tensor(trim=True) for _ in range(3)]
    with heap.retained_heap() as retained:
        assert retained
        # the first ones grow the heap (after earlier tests in this process, up to four of them: the heap's
        # free space is split by their small allocations); later ones reuse its pages (now and then a small
        # allocation in between splits the free space and the heap grows once more)
        inside = [_faults_of_a_fresh_64_mib_tensor() for _ in range(10)]
    assert min(outside) > 0
    assert sum(faults < max(10, min(outside) // 100) for faults in inside[4:]) >= 4, (outside, inside)
    after = [_faults_of_a_fresh_64_mib_tensor(trim=True) for _ in range(2)]  # restored: mapped afresh again
    assert min(after) > 0, after


def test_the_outermost_block_sets_and_restores_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = recording_libc(monkeypatch)
    with heap.retained_heap() as outer:
        assert outer and libc.calls == RETAIN_CALLS
        with heap.retained_heap() as inner:  # nested: nothing more
            assert inner and libc.calls == RETAIN_CALLS
        assert libc.calls == RETAIN_CALLS
    assert libc.calls == RETAIN_CALLS + RESTORE_CALLS
    # restored also when the block raises
    libc.calls.clear()
    with pytest.raises(RuntimeError), heap.retained_heap():
        raise RuntimeError("boom")
    assert libc.calls == RETAIN_CALLS + RESTORE_CALLS


def test_disabled_or_switched_off_it_leaves_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = recording_libc(monkeypatch)
    with heap.retained_heap(enabled=False) as retained:
        assert retained is False
    monkeypatch.setenv(heap.CPU_HEAP_ENV, "system")
    assert not heap.heap_retention_enabled()
    with heap.retained_heap() as retained:
        assert retained is False
    assert libc.calls == []
    monkeypatch.setenv(heap.CPU_HEAP_ENV, " Retain ")
    assert heap.heap_retention_enabled()
    monkeypatch.setenv(heap.CPU_HEAP_ENV, "jemalloc")
    with pytest.raises(ConfigError, match="GLACIERMAP_CPU_HEAP is 'jemalloc'; expected 'retain'"):
        with heap.retained_heap():
            pass
    assert libc.calls == []


def test_off_glibc_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "glibc", lambda: None)
    monkeypatch.delenv(heap.CPU_HEAP_ENV, raising=False)
    with heap.retained_heap() as retained:
        assert retained is False
