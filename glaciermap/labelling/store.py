"""The label table of the labelling tool: the single source of truth, saved at every change.

:class:`LabelStore` keeps the label table (``tile_id,label,confidence`` with class names, the format of
:mod:`glaciermap.datasets.crevasse_labels`) and a small state file beside it (``<table>.state.json``: a
version counter and the classes added in the tool). Every change is a *delta* (tile ids -> class, or
cleared) applied under an exclusive file lock (``fcntl.flock`` on ``<table>.lock``) to the table as it is
on disk at that moment, then written atomically (temporary name, rename) with the version counter
incremented. Two stores on one file (two servers, two threads, two browser tabs) therefore never lose each
other's labels: the later change is merged into the earlier one, never written over it. A crash leaves
either the old or the new table, never a half-written one.

Undo restores the previous values of the tiles a change touched (the stack is per store, in memory).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from glaciermap.datasets.crevasse_classes import CrevasseClassV1, CrevasseClassV2
from glaciermap.errors import InputError
from glaciermap.io import atomic_output, write_json

Scheme = type[CrevasseClassV2] | type[CrevasseClassV1]
Entry = tuple[int, float]
"""A label: class id and confidence (1.0 for a human label)."""


@dataclass(frozen=True)
class Change:
    """One undoable change: the previous entry (or ``None``) of every tile it touched."""

    before: dict[int, Entry | None]


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


class LabelStore:
    """The label table on disk, changed only through deltas under a file lock (module docstring).

    Args:
        path: The label table CSV (created on the first change if missing; its folder must exist).
        scheme: Class scheme; class ids ``0 ... len(scheme) - 1`` are its classes, added classes follow.

    Raises:
        InputError: If the table exists and cannot be read (unknown class, repeated tile).
    """

    def __init__(self, path: str | os.PathLike[str], scheme: Scheme = CrevasseClassV2) -> None:
        self.path = Path(path)
        self.state_path = self.path.with_name(self.path.name + ".state.json")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.scheme = scheme
        self._mutex = threading.Lock()
        self._undo: list[Change] = []
        self.version = 0
        self.extra_classes: list[str] = []
        self.labels: dict[int, Entry] = {}
        with self._locked():
            self._reload()

    # -- classes -------------------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Names of all classes, in id order: the scheme's (lower-case member names), then added ones."""
        return [m.name.lower() for m in self.scheme] + list(self.extra_classes)

    def class_id(self, name: str) -> int:
        """The id of a class name (scheme names, wording, reference names, or an added class).

        Raises:
            InputError: For an unknown name.
        """
        for i, extra in enumerate(self.extra_classes):
            if _norm(extra) == _norm(name):
                return len(self.scheme) + i
        return int(self.scheme.parse(name))

    def _check_class(self, label: int) -> int:
        if not 0 <= int(label) < len(self.class_names):
            raise InputError(f"class {label}: expected an id in 0 ... {len(self.class_names) - 1}")
        return int(label)

    # -- disk ----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the in-process mutex and the exclusive file lock (threads and processes)."""
        with self._mutex:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.lock_path, "a+") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _reload(self) -> None:
        """Read the state file and the table as they are on disk (caller holds the lock)."""
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        self.version = int(state.get("version", 0))
        self.extra_classes = [str(c) for c in state.get("classes", [])]
        labels: dict[int, Entry] = {}
        if self.path.exists() and self.path.stat().st_size > 0:
            table = pd.read_csv(self.path, dtype={"label": str})
            if "tile_id" not in table or "label" not in table:
                raise InputError(f"{self.path}: lacks tile_id or label (expected a label table CSV)")
            conf = table["confidence"] if "confidence" in table else pd.Series(1.0, index=table.index)
            for i, (tile, name, c) in enumerate(zip(table["tile_id"], table["label"], conf)):
                try:
                    cid = self.class_id(str(name).strip())
                except InputError as err:
                    raise InputError(f"{self.path}, row {i + 1}: {err}") from None
                if int(tile) in labels:
                    raise InputError(f"{self.path}: tile {int(tile)} is labelled more than once")
                labels[int(tile)] = (cid, float(c))
        self.labels = labels

    def _write(self) -> None:
        """Write the table and the state atomically, version + 1 (caller holds the lock)."""
        names = self.class_names
        ids = sorted(self.labels)
        table = pd.DataFrame(
            {
                "tile_id": ids,
                "label": [names[self.labels[t][0]] for t in ids],
                "confidence": [round(self.labels[t][1], 6) for t in ids],
            }
        )
        with atomic_output(self.path) as tmp:
            table.to_csv(tmp, index=False)
        self.version += 1
        write_json(self.state_path, {"version": self.version, "classes": self.extra_classes})

    # -- changes -------------------------------------------------------------------------------------------
    def _apply(self, delta: Mapping[int, Entry | None], record: bool = True) -> int:
        """Merge ``delta`` into the table on disk and save it; returns the number of tiles changed."""
        with self._locked():
            self._reload()
            before = {t: self.labels.get(t) for t in delta}
            changed = {t: v for t, v in delta.items() if before[t] != v}
            if not changed:
                return 0
            for tile, value in changed.items():
                if value is None:
                    self.labels.pop(tile, None)
                else:
                    self.labels[tile] = value
            self._write()
        if record:
            self._undo.append(Change({t: before[t] for t in changed}))
        return len(changed)

    def set_labels(self, tiles: Iterable[int], label: int | None, confidence: float = 1.0) -> int:
        """Label tiles with one class (``None`` clears their labels); saved at once.

        Args:
            tiles: Tile ids.
            label: Class id, or ``None`` to remove the labels.
            confidence: Stored confidence (1.0 for a human label).

        Returns:
            Number of tiles whose label changed.

        Raises:
            InputError: For an unknown class id.
        """
        value = None if label is None else (self._check_class(label), float(confidence))
        return self._apply({int(t): value for t in tiles})

    def set_entries(self, entries: Mapping[int, Entry]) -> int:
        """Set many tiles to their own class and confidence in one undoable change.

        Raises:
            InputError: For an unknown class id.
        """
        delta: dict[int, Entry | None] = {}
        for tile, (label, conf) in entries.items():
            delta[int(tile)] = (self._check_class(label), float(conf))
        return self._apply(delta)

    def undo(self) -> int:
        """Undo this store's last change (its tiles get their previous values back).

        Returns:
            Number of tiles restored (0 when there is nothing to undo).
        """
        if not self._undo:
            return 0
        change = self._undo.pop()
        return self._apply(change.before, record=False)

    def add_class(self, name: str) -> int:
        """Add a class (kept in the state file); returns its id (the existing id if the name is known).

        Raises:
            InputError: For an empty name or one with a comma, quote or line break.
        """
        name = name.strip()
        if not name or any(ch in name for ch in ',"\n\r') or len(name) > 60:
            raise InputError(f"class name {name!r}: expected 1-60 characters without commas or quotes")
        with self._locked():
            self._reload()
            try:
                return self.class_id(name)
            except InputError:
                pass
            self.extra_classes.append(name)
            self._write()
            return len(self.class_names) - 1

    def refresh(self) -> None:
        """Re-read the table and the state from disk (another writer may have changed them)."""
        with self._locked():
            self._reload()

    def table(self) -> pd.DataFrame:
        """The labels as a DataFrame (``tile_id``, ``label`` id, ``confidence``), sorted by tile."""
        ids = sorted(self.labels)
        return pd.DataFrame(
            {
                "tile_id": pd.Series(ids, dtype="int64"),
                "label": pd.Series([self.labels[t][0] for t in ids], dtype="int64"),
                "confidence": pd.Series([self.labels[t][1] for t in ids], dtype="float64"),
            }
        )
