"""``Prefetcher`` and ``Consumer``: the background threads of mapping (reading ahead, writing behind)."""

from __future__ import annotations

import threading
import time

import pytest

from glaciermap.inference.source import Consumer, Prefetcher


def test_consumer_applies_fn_in_order_in_its_own_thread() -> None:
    threads: set[str] = set()

    def square(x: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.001 * (x % 3))  # uneven work: the order must still hold
        return x * x

    results: list[int] = []
    with Consumer(square, depth=2, name="test-writer") as consumer:
        for x in range(20):
            results += consumer.put(x)
        results += consumer.finish()
    assert results == [x * x for x in range(20)]
    assert threads == {"test-writer"}


def test_consumer_reraises_the_first_error_and_drops_the_rest() -> None:
    done: list[int] = []

    def fail_at_three(x: int) -> int:
        if x == 3:
            raise ValueError("strip 3 could not be written")
        done.append(x)
        return x

    consumer = Consumer(fail_at_three, depth=1)
    with pytest.raises(ValueError, match="strip 3"):
        for x in range(50):
            consumer.put(x)
        consumer.finish()
    consumer.close()
    assert done == [0, 1, 2]  # nothing after the failing item
    with pytest.raises(ValueError, match="strip 3"):
        consumer.finish()  # the error stays, finishing does not hang


def test_consumer_close_stops_without_doing_the_waiting_items() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def slow(x: int) -> int:
        started.set()
        release.wait(5)
        done.append(x)
        return x

    consumer = Consumer(slow, depth=3)
    for x in range(3):
        consumer.put(x)
    assert started.wait(5)
    closer = threading.Thread(target=consumer.close)  # the producer failed: stop while item 0 is being done
    closer.start()
    deadline = time.monotonic() + 5
    while not consumer._stop.is_set() and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    closer.join(5)
    assert done == [0]  # item 0 finished, 1 and 2 were dropped
    assert not consumer._thread.is_alive()


def test_prefetcher_and_consumer_chain_keeps_every_item() -> None:
    with Prefetcher(iter(range(30)), depth=2) as items, Consumer(lambda x: x + 1, depth=2) as consumer:
        out = [r for x in items for r in consumer.put(x)]
        out += consumer.finish()
    assert out == list(range(1, 31))
