"""Interleaved child runs with glibc's allocator as it is and with the retained heap, for the benchmarks' ratios.

Setting glibc's ``mallopt`` parameters once changes the allocator for the rest of a process, so each heap is
measured in a fresh child process of the calling script, which writes its rows to ``--rows-json FILE``. Runs go
in the order A B B A ... so that drift of the machine falls on both heaps alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def interleaved_heap_runs(
    script: str, argv: list[str], heaps: list[str], repeats: int, what: str
) -> list[dict[str, Any]]:
    """Run ``script argv --rows-json FILE`` per repetition and heap (``GLACIERMAP_CPU_HEAP``), A B B A ...

    Args:
        script: The benchmark script to run as the child (its ``__file__``).
        argv: The child's options, less ``--rows-json``.
        heaps: The heaps to compare (``"retain"``, ``"system"``).
        repeats: Repetitions; odd ones run the heaps in reverse order.
        what: What a child measures, for the error message (``"the run"``, ``"the step phase"``).

    Returns:
        The children's rows, each with ``rep`` (the repetition, from 0) added.

    Raises:
        SystemExit: When a child fails (its error is on the terminal already).
    """
    from glaciermap.inference.heap import CPU_HEAP_ENV

    rows: list[dict[str, Any]] = []
    for rep in range(repeats):
        for heap in heaps if rep % 2 == 0 else heaps[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "rows.json"
                command = [sys.executable, script, *argv, "--rows-json", str(out)]
                if (code := subprocess.run(command, env={**os.environ, CPU_HEAP_ENV: heap}).returncode) != 0:
                    raise SystemExit(
                        f"{Path(script).stem}: {what} with the {heap} heap (repetition {rep + 1}) exited with "
                        f"status {code}; its error is printed above"
                    )
                rows += [{**row, "rep": rep} for row in json.loads(out.read_text())]
    return rows
