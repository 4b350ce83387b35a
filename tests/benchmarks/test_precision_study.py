"""``benchmarks/precision_study.py``: bf16 against float32 on held-out scenes, through the real mapping (issue 20)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.data.benchmarks import load_benchmark


def test_study_maps_both_precisions_and_reports_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = load_benchmark("precision_study")
    out = tmp_path / "records.json"
    argv = ["precision_study.py", "--scenes", "alps:404", "--size", "96", "--window-size", "64"]
    monkeypatch.setattr(sys, "argv", [*argv, "--work-dir", str(tmp_path), "--json", str(out)])
    study.main()
    (record,) = json.loads(out.read_text())
    assert record["scene"] == "alps_404_96"
    for precision in ("32", "bf16"):
        assert 0.0 < record[f"glacier_iou_{precision}"] <= 1.0 and record[f"seconds_{precision}"] > 0
    # bf16 really ran (the maps differ) and stayed within bf16 rounding of float32
    assert 0.0 < record["max_probability_difference"] < 0.1 and record["changed_labels"] < 0.02
    assert abs(record["glacier_iou_32"] - record["glacier_iou_bf16"]) < 0.02
    table = study.markdown([record], "model", "machine", "probe", "command")
    assert table.startswith(study.TITLE) and "| mean |" in table and "| alps_404_96 |" in table
