"""Peak memory and speed of mapping on a CPU against scene height, retained heap against glibc's (issue 20).

`map_scene` keeps freed activations in the process on a CPU (`glaciermap.inference.heap.retained_heap`). The
heap fragments: freed pieces too small for the next large tensor stay in the process while the heap grows past
them. This script measures what that costs in memory, and whether it keeps growing with the scene's height: it
maps scenes of one width and growing height with both heaps and reports peak resident memory (`ru_maxrss`), the
resident memory after the first, the fourth and the last row of windows, wall time and page faults:

- `retain`: the default (`glaciermap.inference.heap.retained_heap`);
- `system`: glibc's allocator as it is (`GLACIERMAP_CPU_HEAP=system`).

Every run is a fresh child process (`map_benchmark.child`: GlaViTU full size, random weights, float32,
channels-last, no overlap, Gaussian). Repetitions run the heaps in the order A B, then B A, so that drift of the
machine falls on both alike. `--write-results` replaces the section "Memory: the retained heap over a tall
scene" of `benchmarks/RESULTS.md`.

Usage::

    python benchmarks/heap_memory_benchmark.py --write-results   # about 12 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import map_benchmark

TITLE = "## Memory: the retained heap over a tall scene"
HEAPS = ("retain", "system")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--work-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "glaciermap-heap-bench"
    )
    p.add_argument("--width", type=int, default=1152, help="scene width (px)")
    p.add_argument("--heights", type=int, nargs="+", default=[384, 6144], help="scene heights (px)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes")
    p.add_argument("--heaps", nargs="+", choices=HEAPS, default=list(HEAPS))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--model", choices=("glavitu", "band-ratio"), default="glavitu")
    p.add_argument("--window-size", type=int, default=384)
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    p.add_argument("--date", default=time.strftime("%Y-%m-%d"))
    return p.parse_args(argv)


def run_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Map every (height, batch) with every heap, ``--repeats`` times, A B then B A."""
    rows: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        heaps = list(args.heaps) if rep % 2 == 0 else list(reversed(args.heaps))
        for height in args.heights:
            scene = map_benchmark.write_scene(
                args.work_dir / f"scene_{height}x{args.width}", height, args.width
            )
            for batch in args.batches:
                for heap in heaps:
                    figures = map_benchmark.child(
                        scene,
                        args.work_dir / "out",
                        model=args.model,
                        overlap=0.0,
                        window_size=args.window_size,
                        batch_size=batch,
                        device="cpu",
                        precision="32",
                        channels_last="yes",
                        heap=heap,
                        row_memory="yes",
                    )
                    rows.append({**figures, "rep": rep})
    return rows


def _cell(runs: list[dict[str, Any]], key: str, digits: int = 0) -> str:
    """The repetitions' values of ``key``, side by side."""
    return " / ".join(f"{r[key]:,.{digits}f}" for r in runs)


def _resident_cell(runs: list[dict[str, Any]]) -> str:
    """Resident MB after the first, the fourth and the last row of windows, per repetition."""
    cells = []
    for r in runs:
        mb = r["resident_mb_rows"]
        cells.append(f"{mb[0]:,}, {mb[min(3, len(mb) - 1)]:,}, {mb[-1]:,}")
    return " / ".join(cells)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def report(rows: list[dict[str, Any]], env: dict[str, str], date: str, command: str) -> str:
    """The RESULTS.md section: one table row per (batch, height, heap), repetitions side by side."""
    heaps = list(dict.fromkeys(r["heap"] for r in rows))
    width = rows[0]["width"]
    lines = [
        TITLE,
        "",
        f"`{command}` on {date}; machine: {env['machine']}, {env['memory']}; CPU flags: {env['flags']}; "
        f"{env['versions']}; load average before the first run: {env['load']}.",
        "",
        f"{rows[0]['model']}, float32, channels-last, {rows[0]['window_size']} px windows, no overlap, scenes "
        f"{width} px wide; one fresh process per run, repetitions side by side (A B, then B A). 'retain': the "
        "default, the retained heap; 'system': `GLACIERMAP_CPU_HEAP=system`. Resident memory is read once each "
        "row of windows is predicted (`/proc/self/statm`).",
        "",
        "| batch | scene (px) | windows | heap | wall s | peak RSS MB | resident MB after rows 1, 4, last "
        "| page faults per window |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary: list[str] = []
    for batch, height in sorted({(r["batch_size"], r["height"]) for r in rows}):
        by_heap = {
            h: [r for r in rows if (r["batch_size"], r["height"], r["heap"]) == (batch, height, h)]
            for h in heaps
        }
        for heap, runs in by_heap.items():
            lines.append(
                f"| {batch} | {height} x {width} | {runs[0]['windows']} | {heap} | {_cell(runs, 'seconds', 1)} "
                f"| {_cell(runs, 'peak_rss_mb')} | {_resident_cell(runs)} | "
                f"{_cell(runs, 'page_faults_per_window')} |"
            )
        if "system" in by_heap and "retain" in by_heap:
            retain, system = by_heap["retain"], by_heap["system"]
            summary.append(
                f"- batch {batch}, {height} px high (medians): the retained heap "
                f"{_median(retain, 'peak_rss_mb') / _median(system, 'peak_rss_mb'):.2f}x the peak memory of "
                f"glibc's, {_median(system, 'seconds') / _median(retain, 'seconds'):.2f}x its speed"
            )
    return "\n".join([*lines, "", *summary, ""])


def main(argv: list[str] | None = None) -> int:
    """Run the plan, print and optionally write the section; returns the exit status."""
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    env = {**map_benchmark.environment(), "load": ", ".join(f"{v:.1f}" for v in os.getloadavg())}
    print(json.dumps(env), flush=True)
    rows = run_plan(args)
    (args.work_dir / "rows.json").write_text(json.dumps(rows))
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(
        ["python benchmarks/heap_memory_benchmark.py", *(a for a in given if a != "--write-results")]
    )
    section = report(rows, env, args.date, command)
    print(section)
    if args.write_results:
        map_benchmark.write_results(section, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
