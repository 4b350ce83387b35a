"""LabelStore: every change saved at once, atomically, merged under a lock; undo; added classes."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pandas as pd
import pytest

from glaciermap.datasets.crevasse_classes import CrevasseClassV2
from glaciermap.datasets.crevasse_labels import read_label_table
from glaciermap.errors import InputError
from glaciermap.labelling.store import LabelStore


def _csv(path: Path) -> list[tuple[int, str, float]]:
    t = pd.read_csv(path)
    return list(zip(t["tile_id"].tolist(), t["label"].tolist(), t["confidence"].tolist()))


def test_every_change_is_on_disk_at_once(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    store = LabelStore(path)
    assert not path.exists() and store.version == 0
    assert store.set_labels([5, 2], 3) == 2
    assert _csv(path) == [(2, "parallel", 1.0), (5, "parallel", 1.0)]
    assert store.set_labels([5], 8, confidence=0.5) == 1
    assert _csv(path) == [(2, "parallel", 1.0), (5, "chaos", 0.5)]
    assert store.set_labels([5], 8, confidence=0.5) == 0  # no change: nothing written
    assert store.set_labels([2], None) == 1
    assert _csv(path) == [(5, "chaos", 0.5)]
    assert store.version == 3
    # the table stays readable by the library's reader, and a fresh store sees the same
    assert read_label_table(path)["label"].tolist() == [int(CrevasseClassV2.CHAOS)]
    again = LabelStore(path)
    assert again.labels == {5: (8, 0.5)} and again.version == 3
    assert not list(tmp_path.glob(".*partial*"))


def test_undo_restores_previous_values(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    store = LabelStore(path)
    store.set_labels([1, 2], 0)
    store.set_labels([2, 3], 4)
    assert store.labels == {1: (0, 1.0), 2: (4, 1.0), 3: (4, 1.0)}
    assert store.undo() == 2
    assert store.labels == {1: (0, 1.0), 2: (0, 1.0)}
    assert _csv(path) == [(1, "undisturbed_snow", 1.0), (2, "undisturbed_snow", 1.0)]
    assert store.undo() == 2 and store.labels == {}
    assert _csv(path) == []
    assert store.undo() == 0


def test_undo_keeps_another_writers_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    a, b = LabelStore(path), LabelStore(path)
    a.set_labels([1], 2)
    b.set_labels([7], 5)
    a.undo()
    assert _csv(path) == [(7, "subordinate_shear", 1.0)]


def test_two_stores_merge_instead_of_overwriting(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    a, b = LabelStore(path), LabelStore(path)
    a.set_labels([1], 1)
    b.set_labels([2], 2)  # b never saw tile 1: its write merges into the table on disk
    a.set_labels([3], 3)
    assert [r[0] for r in _csv(path)] == [1, 2, 3]
    assert a.version == 3 and b.version == 2


def test_concurrent_threads_never_lose_a_label(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    stores = [LabelStore(path), LabelStore(path)]

    def work(k: int) -> None:
        for i in range(25):
            stores[k % 2].set_labels([100 * k + i], k % 11)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    table = read_label_table(path)
    assert sorted(table["tile_id"].tolist()) == sorted(100 * k + i for k in range(4) for i in range(25))
    assert dict(zip(table["tile_id"], table["label"]))[301] == 3
    assert LabelStore(path).version == 100


def _label_range(path: str, start: int) -> None:
    store = LabelStore(path)
    for i in range(15):
        store.set_labels([start + i], 6)


def test_concurrent_processes_never_lose_a_label(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_label_range, args=(str(path), s)) for s in (0, 1000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    ids = read_label_table(path)["tile_id"].tolist()
    assert sorted(ids) == list(range(15)) + list(range(1000, 1015))


def test_added_class_is_kept_and_labels_by_name(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    store = LabelStore(path)
    assert store.add_class("Rift") == 11
    assert store.add_class("rift") == 11  # known name: same id
    assert store.add_class("Chaos") == int(CrevasseClassV2.CHAOS)
    store.set_labels([4], 11)
    assert _csv(path) == [(4, "Rift", 1.0)]
    again = LabelStore(path)
    assert again.class_names[-1] == "Rift" and again.labels == {4: (11, 1.0)}
    with pytest.raises(InputError, match="without commas"):
        store.add_class("a,b")
    with pytest.raises(InputError, match=r"expected an id in 0 \.\.\. 11"):
        store.set_labels([1], 12)


def test_unreadable_table_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("tile_id,label\n1,glacier_pizza\n")
    with pytest.raises(InputError, match="row 1"):
        LabelStore(path)
    path.write_text("tile_id,label\n1,chaos\n1,melt\n")
    with pytest.raises(InputError, match="more than once"):
        LabelStore(path)
