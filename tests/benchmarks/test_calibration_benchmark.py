"""``benchmarks/calibration_benchmark.py --overlap/--window``: the benchmark maps with the windows it is given."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from glaciermap.inference.options import MapOptions
from tests.data.benchmarks import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


def _run(module: ModuleType, work: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> dict[str, float]:
    monkeypatch.setattr(module, "CALIBRATION", [("karakoram", 301)])
    monkeypatch.setattr(module, "HELDOUT", [("svalbard", 313)])
    argv = ["calibration_benchmark.py", "--work-dir", str(work), "--size", "96", "--mc-passes", "2"]
    argv += ["--pearson-from", str(ROOT / "benchmarks" / "calibration_results.json"), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    module.main()
    return {
        name: json.loads((work / "maps" / f"svalbard_313_{name}" / "summary.json").read_text())["options"]
        for name in ("mc0", "mc2")
    }


def test_overlap_and_window_reach_every_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_benchmark("calibration_benchmark")
    defaults = MapOptions()
    # without the options: the maps use glaciermap map's defaults
    for options in _run(module, tmp_path / "default", monkeypatch).values():
        assert (options["overlap"], options["window"]) == (defaults.overlap, defaults.window)
    # with them: both the softmax and the Monte-Carlo maps use the windows asked for
    given = _run(module, tmp_path / "given", monkeypatch, "--overlap", "0.5", "--window", "gaussian")
    assert given["mc2"]["mc_passes"] == 2 and given["mc0"]["mc_passes"] == 0
    for options in given.values():
        assert (options["overlap"], options["window"]) == (0.5, "gaussian")
    assert (0.5, "gaussian") != (defaults.overlap, defaults.window)
