"""``benchmarks/overlap_study.py --checkpoint``: the study with a model other than the bundled one (issue 20)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tests.data.benchmarks import load_benchmark
from tests.data.checkpoints import save_tiny_checkpoint, scene_stats


def test_checkpoint_option_maps_with_that_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = load_benchmark("overlap_study")
    scenes = study.make_scenes(tmp_path / "work", ["karakoram:401"], 96)
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.ckpt", scene_stats(scenes[0]))  # binary, untrained
    out, results = tmp_path / "study.json", tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Overlap and blending\n\nfirst model\n\n## Other\n\nkept\n")
    monkeypatch.setattr(study, "ROOT", tmp_path / "root")
    (study.ROOT / "benchmarks").mkdir(parents=True)
    (study.ROOT / "benchmarks" / "RESULTS.md").write_text(results.read_text())
    argv = ["overlap_study.py", "--checkpoint", str(ckpt), "--scenes", "karakoram:401", "--size", "96"]
    argv += ["--window-sizes", "32", "--work-dir", str(tmp_path / "work"), "--json", str(out)]
    argv += ["--title", "## Overlap and blending: tiny", "--write-results"]
    monkeypatch.setattr(sys, "argv", argv)
    study.main()
    saved = json.loads(out.read_text())
    assert str(ckpt) in saved["model"] and "background, glacier" in saved["model"]
    records = saved["records"]
    # 0 (once), 3 overlaps x 3 windows, and the shifted 50 % Gaussian: 11 settings of one scene
    assert len(records) == 11 and {r["size"] for r in records} == {32}
    assert all(0.0 <= r["glacier_iou"] <= 1.0 and r["seam_ratio"] > 0 for r in records)
    assert all(math.isnan(r["debris_iou"]) for r in records)  # a binary model has no debris class
    # 96 px, window 32 at stride 16 (overlap 1/2): 32 + 4 x 16 = 96, a 5 x 5 grid of windows
    assert next(r for r in records if (r["overlap"], r["blend"]) == (0.5, "cosine"))["windows"] == 25
    text = (study.ROOT / "benchmarks" / "RESULTS.md").read_text()
    # the new section is added next to the first, which stays as it was
    assert "## Overlap and blending\n\nfirst model\n" in text and "## Other\n\nkept\n" in text
    assert text.count("## Overlap and blending: tiny\n") == 1 and "| n/a | n/a |" in text


def test_default_model_is_the_bundled_one() -> None:
    mapping, about = load_benchmark("overlap_study").load_model(None)
    assert about.startswith("bundled `synthetic_cpu`") and mapping.class_names == (
        "background",
        "clean_ice",
        "debris_ice",
    )


def test_a_metric_that_was_not_scored_does_not_decide() -> None:
    study = load_benchmark("overlap_study")
    nan = math.nan
    base = {"size": 32, "scenes": 2, "seam_ratio": 1.0, "debris_iou": nan}
    ref = {**base, "overlap": 0.5, "blend": "gaussian", "layout": "compact"}
    row = {**base, "overlap": 0.125, "blend": "cosine", "layout": "compact"}
    for r, d in ((ref, 0.0), (row, -0.01)):
        r.update({"glacier_iou": 0.9, "polis_m": 10.0, "d_polis_m": 0.0, "se_polis_m": 0.0})
        r.update({"d_glacier_iou": d, "se_glacier_iou": 0.01, "d_debris_iou": nan, "se_debris_iou": nan})
    assert study.acceptable(row, [ref, row], 0.1)  # -0.01 is within 2 standard errors; debris not scored
    row["d_glacier_iou"] = -0.05
    assert not study.acceptable(row, [ref, row], 0.1)
    assert study._pm(row, "debris_iou", 4) == "n/a" and study._value(nan, 4) == "n/a"
