"""``benchmarks/map_benchmark.py --backends --large-size``: the plans it runs and the tables it writes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.data.benchmarks import BENCHMARKS, load_benchmark


def test_large_plan_runs_each_config_at_both_settings_and_reports_ratios(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_benchmark("map_benchmark")
    seconds = {
        ("torch", 0.5): 100.0,
        ("torch", 0.125): 40.0,
        ("onnxruntime", 0.5): 80.0,
        ("onnxruntime", 0.125): 20.0,
    }

    def fake_child(scene: Path, out: Path, **kw: Any) -> dict[str, Any]:
        s = seconds[(kw["backend"], kw["overlap"])]
        return {
            **kw,
            "windows": 121 if kw["overlap"] == 0.5 else 49,
            "seconds": s,
            "setup_seconds": 0.0,
            "km2": 530.8,
            "km2_per_s": 530.8 / s,
            "km2_per_s_steady": 530.8 / s,
            "peak_rss_mb": 1800.0,
            "load_before": 0.1,
            "height": 2304,
            "width": 2304,
        }

    monkeypatch.setattr(bench, "child", fake_child)
    args = argparse.Namespace(repeats=2, large_configs=["torch-b1-cl", "onnxruntime-b1"], work_dir=tmp_path)
    runs = bench.run_large_plan(args, tmp_path / "scene")
    # 2 repetitions x 2 configurations x (authors' windows, the default), saved as it goes
    assert len(runs) == 8 and json.loads((tmp_path / "backends_large.json").read_text()) == runs
    assert {(r["overlap"], r["window"]) for r in runs} == {(0.5, "gaussian"), (0.125, "cosine")}
    assert all(r["channels_last"] == ("yes" if r["backend"] == "torch" else "no") for r in runs)
    table = bench.large_markdown(runs, "2026-12-01", "python benchmarks/map_benchmark.py ...")
    rows = {
        " | ".join(line.split(" | ")[:2]): line
        for line in table.splitlines()
        if line.startswith("| ") and "batch 1" in line
    }
    # ratios to torch batch 1 at 0.5, Gaussian of the same repetition: 100 s against 100, 40, 80 and 20 s
    assert " | 1.00 | " in rows["| torch batch 1 channels-last | 0.5, gaussian"]
    assert " | 2.50 | " in rows["| torch batch 1 channels-last | 0.125, cosine"]
    assert " | 1.25 | " in rows["| onnxruntime batch 1 | 0.5, gaussian"]
    assert " | 5.00 | " in rows["| onnxruntime batch 1 | 0.125, cosine"]
    assert "2304 x 2304 px scene at 10 m (530.8 km2)" in table and table.startswith(
        "## CPU backends: large scene"
    )


def test_nofold_configurations_are_labelled_and_become_the_ratio_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_benchmark("map_benchmark")
    assert bench.parse_config("torch-b1-cl-nofold") == {
        "backend": "torch",
        "batch_size": 1,
        "channels_last": "yes",
        "fold": "no",
        "precision": "32",
        "heap": "retain",
        "convolution": "auto",
    }
    assert bench.parse_config("torch-b1-wino")["convolution"] == "winograd"
    assert bench.parse_config("torch-b1-cl-nofold-sysheap-direct")["convolution"] == "direct"
    winograd_run = {"model": "glavitu", "backend": "torch", "batch_size": 1, "convolution": "winograd"}
    assert bench._label(winograd_run) == "torch batch 1 Winograd"
    assert bench.parse_config("onnxruntime-b1")["fold"] == "yes"
    assert bench.parse_config("torch-b1-cl-nofold-sysheap")["heap"] == "system"
    assert bench.parse_config("openvino-b1-bf16")["precision"] == "bf16"
    seconds = {("torch", "no"): 30.0, ("torch", "yes"): 24.0, ("onnxruntime", "yes"): 20.0}

    def fake_child(scene: Path, out: Path, **kw: Any) -> dict[str, Any]:
        s = seconds.get((kw["backend"], kw.get("fold", "yes")), 1.0)
        return {
            **kw,
            "windows": 25,
            "seconds": s,
            "setup_seconds": 0.0,
            "km2": 132.7,
            "km2_per_s": 132.7 / s,
            "km2_per_s_steady": 132.7 / s,
            "peak_rss_mb": 1600.0,
            "load_before": 0.1,
        }

    monkeypatch.setattr(bench, "child", fake_child)
    args = argparse.Namespace(
        repeats=1,
        anchor_configs=["torch-b1-cl-nofold", "torch-b1-cl", "onnxruntime-b1"],
        low_overlaps=[],
        work_dir=tmp_path,
    )
    runs = bench.run_backend_plan(args, tmp_path / "scene")
    env = dict.fromkeys(("machine", "memory", "flags", "python", "versions", "threads"), "x")
    table = bench.backends_markdown(runs, env, "2026-12-01", "python benchmarks/map_benchmark.py ...")
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if "batch 1" in line}
    # ratios to the unfolded network: 30 s against 30, 24 and 20 s
    assert " | 1.00 | " in rows["| torch batch 1 channels-last unfolded"]
    assert " | 1.25 | " in rows["| torch batch 1 channels-last"]
    assert " | 1.50 | " in rows["| onnxruntime batch 1"]
    assert "ratios to torch batch 1 channels-last unfolded" in table


def test_isa_emulation_caps_the_runs_and_names_itself_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_benchmark("map_benchmark")
    for key in bench.EMULATED_ISAS["avx2"]:
        monkeypatch.setenv(key, "unset")  # restored after the test
    args = argparse.Namespace(
        isa="avx2",
        work_dir=tmp_path,
        anchor_configs=["torch-b1-cl", "onnxruntime-b1", "openvino-b1"],
        low_overlap_configs=["onnxruntime-b1"],
        large_configs=["torch-b1-cl-nofold", "onnxruntime-b8"],
        glavitu_memory_sizes=["384x1152"],
    )
    bench.emulate_isa(args)
    assert {k: os.environ[k] for k in bench.EMULATED_ISAS["avx2"]} == {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    }
    # runs saved apart from the native ones; ONNX Runtime (no cap) and the memory plan left out
    assert args.work_dir == tmp_path / "isa-avx2" and args.work_dir.is_dir()
    assert args.anchor_configs == ["torch-b1-cl", "openvino-b1"] and args.low_overlap_configs == []
    assert args.large_configs == ["torch-b1-cl-nofold"] and args.glavitu_memory_sizes == []
    run = {
        "model": "glavitu",
        "backend": "torch",
        "batch_size": 1,
        "channels_last": True,
        "fold": "yes",
        "overlap": 0.5,
        "window": "gaussian",
        "rep": 0,
        "windows": 25,
        "seconds": 60.0,
        "setup_seconds": 0.0,
        "km2": 132.7,
        "km2_per_s": 2.2,
        "km2_per_s_steady": 2.2,
        "peak_rss_mb": 1600.0,
        "load_before": 0.1,
        "height": 1152,
        "width": 1152,
        "isa": "ATen AVX2, oneDNN Intel AVX2",
    }
    env = dict.fromkeys(("machine", "memory", "flags", "python", "versions", "threads"), "x")
    table = bench.backends_markdown(
        [run], env, "2026-12-01", "python benchmarks/map_benchmark.py ...", "avx2"
    )
    assert table.startswith("## CPU backends, AVX2 emulated\n")
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in table and "reported ATen AVX2, oneDNN Intel AVX2." in table
    large = bench.large_markdown([run], "2026-12-01", "python benchmarks/map_benchmark.py ...", "avx2")
    assert large.startswith("## CPU backends: large scene, AVX2 emulated\n")
    native = bench.backends_markdown([run], env, "2026-12-01", "python benchmarks/map_benchmark.py ...")
    assert native.startswith("## CPU backends\n") and "ONEDNN_MAX_CPU_ISA" not in native


def test_effective_isa_reads_what_the_runtimes_use() -> None:
    bench = load_benchmark("map_benchmark")
    here = bench.effective_isa("torch")
    assert here.startswith(f"ATen {torch.backends.cpu.get_cpu_capability()}, oneDNN ")
    if torch.backends.mkldnn.is_available():
        assert "unknown" not in here
    # in a process with the AVX2 cap (what --isa avx2 gives its runs) both runtimes report it
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        pytest.skip(f"this CPU's capability is {capability}: AVX2 cannot be emulated")
    code = f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import map_benchmark as m; print(m.effective_isa('torch'))"
    env = {**os.environ, **bench.EMULATED_ISAS["avx2"]}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "ATen AVX2, oneDNN Intel AVX2"


def test_ratios_are_taken_to_the_unfolded_network_with_the_system_heap_where_measured() -> None:
    bench = load_benchmark("map_benchmark")

    def run(config: str) -> dict[str, Any]:
        return {"model": "glavitu", "channels_last": True, **bench.parse_config(config)}

    plain = [run("torch-b1-cl"), run("torch-b1-cl-nofold")]
    assert bench._baseline(plain) == "torch batch 1 channels-last unfolded"
    assert bench._baseline([*plain, run("torch-b1-cl-nofold-sysheap")]) == (
        "torch batch 1 channels-last unfolded system heap"
    )
    assert bench._baseline([run("torch-b1-cl-sysheap")]) == "torch batch 1 channels-last"


def test_the_scene_mapping_report_projects_the_world_from_the_per_window_cost() -> None:
    bench = load_benchmark("map_benchmark")
    assert bench.world_projection(2500.0) == pytest.approx((600 / 3600, 1.0))  # the goal: 10 minutes, one GPU
    row = {"device": "cuda", "precision": "bf16", "channels_last": True, "height": 1152, "width": 1152,
           "overlap": 0.5, "windows": 25, "seconds": 2.0, "seconds_per_window": 0.05, "km2_per_s": 66.4,
           "peak_rss_mb": 3000.0}  # fmt: skip
    text = bench.results_markdown([row], [], "2026-12-01", "0.5")
    windows, hours = bench.estimate_20k(0.05, 0.5)
    rate = 40_000 / (hours * 3600)  # the 20,000 px scene at 10 m
    world_h, devices = 1_500_000 / rate / 3600, 1_500_000 / rate / 600
    assert (
        f"- cuda bf16 channels-last, overlap 0.5: {windows} windows, about {hours:.1f} h ({rate:.3f} km2/s)"
        in text
    )
    assert f"(1.5 M km2 with margins) about {world_h:,.0f} h, or {devices:,.0f} such devices" in text
    assert "No GPU on this machine" not in text  # a CUDA row was measured


def test_the_scene_mapping_report_states_the_load_the_runs_recorded() -> None:
    bench = load_benchmark("map_benchmark")
    row = {"device": "cpu", "precision": "32", "channels_last": False, "height": 1152, "width": 1152,
           "overlap": 0.0, "windows": 9, "seconds": 18.0, "seconds_per_window": 2.0, "km2_per_s": 7.4,
           "peak_rss_mb": 2500.0, "km2": 132.7}  # fmt: skip
    assert "load during the runs not recorded" in bench.results_markdown([row], [], "2026-12-01", "0.5")
    runs = [{**row, "load_after": 1.49}, {**row, "load_after": 2.04}]
    text = bench.results_markdown(runs, [{**row, "load_after": 1.7}], "2026-12-01", "0.5, 0.9, 1.0")
    assert "Load average before the run: 0.5, 0.9, 1.0; after each run 1.5 to 2.0" in text
    assert "varied by up to 40 %" not in text  # no claim the run did not measure
