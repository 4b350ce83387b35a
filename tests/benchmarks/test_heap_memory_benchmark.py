"""``benchmarks/heap_memory_benchmark.py``: peak and per-row memory of mapping, retained heap against glibc's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.data.benchmarks import load_benchmark

OLD_RESULTS = """# Benchmark results

## Memory: the retained heap over a tall scene

old figures

## Prepare

prepare figures
"""


def test_it_maps_with_both_heaps_in_fresh_processes_and_rewrites_its_section(tmp_path: Path) -> None:
    bench = load_benchmark("heap_memory_benchmark")
    results = tmp_path / "RESULTS.md"
    results.write_text(OLD_RESULTS)
    argv = [
        *("--model", "band-ratio", "--window-size", "128", "--width", "256", "--heights", "256"),
        *("--batches", "2", "--repeats", "1", "--work-dir", str(tmp_path / "work")),
        *("--results", str(results), "--write-results"),
    ]
    assert bench.main(argv) == 0
    rows = json.loads((tmp_path / "work" / "rows.json").read_text())
    assert [r["heap"] for r in rows] == ["retain", "system"]
    for row in rows:
        assert (row["height"], row["width"], row["batch_size"], row["windows"]) == (256, 256, 2, 4)
        # read once per row of windows (two of 128 px), in this very process: torch alone is hundreds of MB
        assert len(row["resident_mb_rows"]) == 2
        assert all(200 < mb <= row["peak_rss_mb"] + 1 for mb in row["resident_mb_rows"])
    text = results.read_text()
    assert "old figures" not in text and text.endswith("## Prepare\n\nprepare figures\n")
    assert text.count("## Memory: the retained heap over a tall scene\n") == 1
    assert "`python benchmarks/heap_memory_benchmark.py --model band-ratio" in text
    assert "--write-results" not in text
    retain, system = rows
    line = next(x for x in text.splitlines() if x.startswith("| 2 | 256 x 256 | 4 | retain |"))
    first, *_, last = retain["resident_mb_rows"]
    assert f"| {retain['peak_rss_mb']:,.0f} | {first:,}, {last:,}, {last:,} |" in line
    ratio = retain["peak_rss_mb"] / system["peak_rss_mb"]
    assert f"- batch 2, 256 px high (medians): the retained heap {ratio:.2f}x the peak memory" in text


def _row(heap: str, rep: int, peak: float, seconds: float, rows_mb: list[int]) -> dict[str, Any]:
    return {"heap": heap, "rep": rep, "peak_rss_mb": peak, "seconds": seconds, "resident_mb_rows": rows_mb,
            "batch_size": 8, "height": 1536, "width": 1152, "windows": 12, "model": "glavitu",
            "window_size": 384, "page_faults_per_window": 1000}  # fmt: skip


def test_the_report_puts_repetitions_side_by_side_and_takes_medians() -> None:
    bench = load_benchmark("heap_memory_benchmark")
    rows = [
        _row("retain", 0, 3000.0, 10.0, [2500, 2600, 2700, 2800]),
        _row("system", 0, 2000.0, 12.0, [1900, 1900, 1950, 1950]),
        _row("system", 1, 2200.0, 14.0, [1900, 1900, 1950, 1950]),
        _row("retain", 1, 3400.0, 12.0, [2500, 2600, 2700, 2900]),
    ]
    env = dict.fromkeys(("machine", "memory", "flags", "versions", "load"), "x")
    text = bench.report(rows, env, "2026-12-01", "python benchmarks/heap_memory_benchmark.py")
    assert (
        "| 8 | 1536 x 1152 | 12 | retain | 10.0 / 12.0 | 3,000 / 3,400 | 2,500, 2,800, 2,800 / 2,500, "
        in text
    )
    # medians: 3,200 against 2,100 MB; 13 s against 11 s
    assert (
        "- batch 8, 1536 px high (medians): the retained heap 1.52x the peak memory of glibc's, 1.18x" in text
    )
    assert "| 8 | 1536 x 1152 | 12 | system | 12.0 / 14.0 | 2,000 / 2,200 | 1,900, 1,950, 1,950 / " in text
