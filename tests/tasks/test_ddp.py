"""Two CPU processes with DDP (gloo) through ``glaciermap fit``: ranks train on disjoint windows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ddp_two_cpu_processes_shard_the_windows(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    cmd = [
        sys.executable, "-m", "glaciermap", "fit",
        "--config", str(ROOT / "examples" / "synthetic_cpu.yaml"),
        f"--data.init_args.root={tmp_path / 'scenes'}",
        "--data.init_args.train=[karakoram:1, svalbard:4]",
        "--data.init_args.scene_size=[128,128]",
        "--data.init_args.patch_size=64",
        "--data.init_args.batch_size=2",
        "--data.init_args.samples_per_epoch=8",
        "--data.init_args.eval_stride=64",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.max_epochs=1",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--trainer.callbacks+=tests.data.probes.RecordWindows",
        f"--trainer.callbacks.out_dir={probe}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PL_TORCH_DISTRIBUTED_BACKEND": "gloo",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    w0 = {tuple(w) for w in records[0]["windows"]}
    w1 = {tuple(w) for w in records[1]["windows"]}
    assert len(records[0]["windows"]) == len(records[1]["windows"]) == 4  # 8 windows per epoch, half each
    assert w0 and w1 and not (w0 & w1)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
