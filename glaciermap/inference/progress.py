"""A progress bar for scene mapping: km2 mapped, km2/s, elapsed and remaining time (rich)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def format_rate(km2: float, seconds: float) -> str:
    """Throughput as text, e.g. ``"12.3 km²/s"``.

    Args:
        km2: Area done (km2).
        seconds: Time taken (s).

    Returns:
        The rate with three significant digits, or ``"- km²/s"`` before any time has passed.
    """
    if seconds <= 0:
        return "- km²/s"
    return f"{km2 / seconds:.3g} km²/s"


class _AreaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = task.total if task.total is not None else 0.0
        return Text(f"{task.completed:.2f}/{total:.2f} km²")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(format_rate(task.completed, task.elapsed or 0.0))


class MappingProgress:
    """A context manager showing one bar per scene, in km2.

    Args:
        enabled: Show anything at all (``False``: every call is a no-op).
        console: A ``rich.console.Console`` (default: rich's, on stderr-aware terminal detection).
    """

    def __init__(self, enabled: bool = True, console: Any = None) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._console = console
        self._task: Any = None

    def __enter__(self) -> MappingProgress:
        """Start the display."""
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                _AreaColumn(),
                _RateColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self._console,
            )
            self._progress.start()
        return self

    def start_scene(self, name: str, total_km2: float) -> None:
        """Add a bar for a scene.

        Args:
            name: Scene name.
            total_km2: Scene area (km2).
        """
        if self._progress is not None:
            self._task = self._progress.add_task(f"mapping {name}", total=total_km2)

    def advance(self, km2: float) -> None:
        """Advance the current scene's bar.

        Args:
            km2: Area just finished (km2).
        """
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, km2)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the display."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
