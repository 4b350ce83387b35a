"""``benchmarks/bias_optimisation_benchmark.py``: timed bias optimisation and its RESULTS section (issue 14)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.data.benchmarks import load_benchmark

TINY = ["--size", "96", "--window-size", "64", "--windows", "2", "--steps", "2", "--device", "cpu"]
"""A 96 px scene, 64 px windows, two windows and two steps: seconds, not minutes."""

OLD_RESULTS = """# Benchmark results

## Bias optimisation

old figures

Acceptance runs kept by hand.

## Prepare

prepare figures
"""


def _rows(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"model"')]


def test_benchmark_times_both_models_and_rewrites_its_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_benchmark("bias_optimisation_benchmark")
    monkeypatch.setenv("GLACIERMAP_CPU_HEAP", "retain")  # main() sets it; the fixture restores it
    results = tmp_path / "RESULTS.md"
    results.write_text(OLD_RESULTS)
    argv = [*TINY, "--glavitu-windows", "1", "--glavitu-steps", "1", "--work-dir", str(tmp_path)]
    assert bench.main([*argv, "--write-results", "--results", str(results)]) == 0
    light, glavitu = _rows(capsys.readouterr().out)
    assert (light["model"], light["windows"], light["steps"]) == ("light_region_resunet", 2, 2)
    assert (glavitu["model"], glavitu["windows"], glavitu["steps"]) == ("glavitu", 1, 1)
    for row, window_steps in ((light, 4), (glavitu, 1)):
        assert row["heap"] == bench.heap_in_use() and row["precision"] == "32"
        assert row["window_step_seconds"] == pytest.approx(row["optimise_seconds"] / window_steps, abs=1e-4)
        assert row["area_km2"] == pytest.approx(0.9, abs=0.05)  # 96 x 96 px at 10 m
        # seconds are rounded to 0.01 s: per_1000_km2 (from the unrounded time) is within 0.005 / 0.9216 x 1000
        assert row["per_1000_km2"] == pytest.approx(row["seconds"] / 0.9216 * 1000, abs=5.5)
        assert row["faults_per_window_step"] >= 0
    text = results.read_text()
    assert "old figures" not in text and "Acceptance runs kept by hand." in text and "prepare figures" in text
    section = text.split("## Bias optimisation", 1)[1].split("Acceptance runs", 1)[0]
    assert section.count("| light_region_resunet | 32 | ") == 1 and section.count("| glavitu | 32 | ") == 1
    # the projection: reading x area, features x windows, steps x windows x steps (32 x 10 by default)
    expected = (
        glavitu["read_seconds"] * 5000 / glavitu["area_km2"]
        + glavitu["cache_seconds"] * 32
        + glavitu["window_step_seconds"] * 320
    )
    (projected,) = re.findall(r"\): ([\d,]+) s \(32, \w+ heap\)\.", section)
    assert int(projected.replace(",", "")) == round(expected)
    assert "Seconds per window-step with the system heap" not in section  # one heap: no ratio


def test_heaps_run_interleaved_in_child_processes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("bias_optimisation_benchmark")
    results = tmp_path / "RESULTS.md"
    argv = [*TINY, "--models", "light_region_resunet", "--heaps", "retain", "system", "--repeats", "2"]
    assert bench.main([*argv, "--work-dir", str(tmp_path), "--write-results", "--results", str(results)]) == 0
    rows = _rows(capfd.readouterr().out)  # the children print their rows to the same stdout
    # A B then B A, each a process of its own with GLACIERMAP_CPU_HEAP set
    expected = ["retain", "system", "system", "retain"] if bench.heap_in_use() == "retain" else ["system"] * 4
    assert [r["heap"] for r in rows] == expected
    text = results.read_text()
    assert text.count("| light_region_resunet | 32 | ") == 4
    if expected[0] == "retain":
        (ratios,) = re.findall(r"light_region_resunet \(32\): ([\d.]+)x, ([\d.]+)x\.", text)
        by_rep = [rows[1]["window_step_seconds"] / rows[0]["window_step_seconds"]]
        by_rep.append(rows[2]["window_step_seconds"] / rows[3]["window_step_seconds"])
        assert [float(r) for r in ratios] == pytest.approx(by_rep, abs=0.006)


def test_heap_ratios_pair_runs_of_one_repetition() -> None:
    bench = load_benchmark("bias_optimisation_benchmark")

    def row(heap: str, rep: int, seconds: float, model: str = "glavitu") -> dict[str, object]:
        return {"model": model, "precision": "32", "heap": heap, "rep": rep, "window_step_seconds": seconds}

    rows = [row("retain", 0, 2.0), row("system", 0, 3.0), row("system", 1, 5.0), row("retain", 1, 4.0)]
    rows.append(row("retain", 0, 1.0, "light_region_resunet"))  # no system run: no ratio
    assert bench.heap_ratios(rows) == {"glavitu (32)": [1.5, 1.25]}
