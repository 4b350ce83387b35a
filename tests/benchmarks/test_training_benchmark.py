"""``benchmarks/training_benchmark.py``: loader, training step and fit rates of a recipe (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.benchmarks import load_benchmark

TINY = [
    *("--set", "data.init_args.scene_size", "[96,96]"),
    *("--set", "data.init_args.patch_size", "64"),
    *("--set", "data.init_args.batch_size", "2"),
    *("--set", "data.init_args.num_workers", "0"),
    *("--set", "model.model", "light_fusion_resunet"),
    *("--set", "model.model_kwargs", '{"filters": 8}'),
    *("--batches", "3", "--loader-batches", "3", "--warmup", "1", "--workers", "0", "--precision", "32-true"),
]
"""The GlaViTU global recipe with 96 px scenes, 64 px patches, batches of 2 and a light model: seconds."""

OLD_RESULTS = """# Benchmark results

## Training throughput

old figures

## Prepare

prepare figures
"""


def _rows(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"phase"')]


def test_benchmark_times_the_three_phases_of_the_recipe_and_rewrites_its_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_benchmark("training_benchmark")
    monkeypatch.delenv("GLACIERMAP_CPU_HEAP", raising=False)  # the default: retain
    results = tmp_path / "RESULTS.md"
    results.write_text(OLD_RESULTS)
    argv = [*TINY, "--work-dir", str(tmp_path / "work"), "--write-results", "--results", str(results)]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    recipe = json.loads(next(line for line in out.splitlines() if line.startswith('{"config"')))
    assert recipe["config"] == "examples/glavitu_global.yaml" and recipe["model"] == "light_fusion_resunet"
    assert (recipe["batch_size"], recipe["patch_size"], recipe["max_epochs"]) == (2, 64, 150)
    assert recipe["channels"] == 8  # optical (6 bands) + DEM (elevation, slope), as the recipe states
    # the default epoch: 4x the non-overlapping 64 px windows of the eight 96 px training scenes
    assert recipe["patches_per_epoch"] == 4 * 8
    loader, step, fit = _rows(out)
    assert [r["phase"] for r in (loader, step, fit)] == ["loader", "step", "fit"]
    for row in (loader, step, fit):
        assert row["patches"] == 3 * 2  # the timed batches only, not the warm-up one
        assert row["patches_per_s"] == pytest.approx(row["patches"] / row["seconds"], rel=0.02)
    for row in (step, fit):
        assert row["seconds_per_step"] == pytest.approx(row["seconds"] / 3, abs=1e-3)
        assert row["gpu_utilisation"] is None and row["peak_gpu_mb"] is None  # no CUDA device here
        # the task's RetainedHeap stayed among the callbacks, and was in effect
        assert row["heap"] == "retain"
    assert not (tmp_path / "work" / "trainer").exists() or not any(
        (tmp_path / "work" / "trainer").rglob("*.ckpt")
    )
    assert (tmp_path / "work" / "scenes").is_dir()  # the synthetic scenes went to the work folder
    text = results.read_text()
    assert "old figures" not in text and "prepare figures" in text
    section = text.split("## Training throughput", 1)[1].split("## Prepare", 1)[0]
    assert f"| fit | 0 | 6 | {fit['seconds']} | {fit['patches_per_s']} |" in section
    assert bench.verdict(step, fit) in section
    hours = 32 * 150 / fit["patches_per_s"] / 3600
    assert f"about {hours:,.1f} h" in section


def test_verdict_calls_training_input_bound_below_nine_tenths_of_the_step_rate() -> None:
    bench = load_benchmark("training_benchmark")
    step = {"patches_per_s": 100.0}
    assert bench.verdict(step, {"patches_per_s": 89.0}).startswith("input-bound: training runs at 89%")
    assert bench.verdict(step, {"patches_per_s": 91.0}).startswith("not input-bound: training runs at 91%")


def test_bad_counts_are_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("training_benchmark")
    with pytest.raises(SystemExit):
        bench.parse_args(["--batches", "0"])
    assert "--batches is 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--loader-batches", "0"])
    assert "--loader-batches 0" in capsys.readouterr().err


def test_the_heap_comparison_times_the_step_in_fresh_processes_in_the_order_a_b_b_a(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_benchmark("training_benchmark")
    argv = [*TINY, "--work-dir", str(tmp_path / "work"), "--heaps", "retain", "system", "--repeats", "2"]
    compared = bench.compare_heaps(bench.parse_args(argv))
    assert [(r["phase"], r["heap"], r["rep"]) for r in compared] == [
        ("step", "retain", 0), ("step", "system", 0), ("step", "system", 1), ("step", "retain", 1),
    ]  # fmt: skip
    assert all(r["patches"] == 6 and r["faults_per_step"] >= 0 for r in compared)
    # the row says what was in effect: the task's RetainedHeap kept freed memory only where allowed to
    assert [r["heap"] for r in compared] == ["retain", "system", "system", "retain"]
    paragraph = " ".join(bench.heap_lines(compared, ["retain", "system"]))
    per = {(r["rep"], r["heap"]): r["seconds_per_step"] for r in compared}
    ratios = ", ".join(f"{per[rep, 'system'] / per[rep, 'retain']:.2f}x" for rep in (0, 1))
    assert f"`retain` is {ratios} as fast as `system` (per repetition)" in paragraph
    assert f"retain: {per[0, 'retain']} s, {per[1, 'retain']} s" in paragraph
    assert bench.heap_lines(compared, ["retain"]) == []  # nothing compared: no paragraph
    env = {"machine": "m", "flags": "f", "memory": "1 GiB RAM", "python": "3", "versions": "v"}
    recipe = {"config": "c.yaml", "model": "light", "batch_size": 2, "patch_size": 64, "channels": 8,
              "patches_per_epoch": 32, "max_epochs": 1, "num_workers": 0, "precision": "32", "device": "cpu"}  # fmt: skip
    step = {k: v for k, v in compared[0].items() if k != "rep"}
    rows = [step, {**step, "phase": "fit"}, *compared]
    text = bench.markdown(env, [0.0, 0.0, 0.0], recipe, rows, "cmd", [paragraph, ""])
    assert text.count("| step (heap comparison, run 2) | 0 | 6 |") == 2 and paragraph in text
    assert text.count("| step | 0 | 6 |") == 1  # the main process's own step row keeps its plain name
