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


def test_study_compares_winograd_with_direct_convolutions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glaciermap.models.winograd import winograd_available

    if not winograd_available():
        pytest.skip("this torch build or CPU has no NNPACK")
    study = load_benchmark("precision_study")
    out = tmp_path / "records.json"
    argv = ["precision_study.py", "--scenes", "alps:404", "--size", "96", "--window-size", "64"]
    monkeypatch.setattr(
        sys, "argv", [*argv, "--compare", "convolution", "--work-dir", str(tmp_path), "--json", str(out)]
    )
    study.main()
    (record,) = json.loads(out.read_text())
    assert record["convolutions"] == ["direct", "winograd"]  # each map really ran with its setting
    for arm in ("direct", "winograd"):
        assert 0.0 < record[f"glacier_iou_{arm}"] <= 1.0 and record[f"seconds_{arm}"] > 0
    # Winograd changes float32 rounding only
    assert 0.0 < record["max_probability_difference"] < 1e-4 and record["changed_labels"] < 1e-3
    assert abs(record["glacier_iou_direct"] - record["glacier_iou_winograd"]) < 1e-3
    table = study.markdown([record], "model", "machine", "probe", "command", "convolution")
    assert table.startswith("## Convolutions on a CPU: Winograd against direct")
    assert "glacier IoU direct / winograd" in table and "| mean |" in table
