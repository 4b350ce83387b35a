"""Mapping many scenes through Lightning: the scene sampler, the prediction writer and the example config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from lightning.pytorch import Trainer

from glaciermap.baselines import band_ratio_classes
from glaciermap.datamodules.mapping import MappingSceneSampler, SceneList, SceneMappingDataModule
from glaciermap.inference.options import MapOptions
from glaciermap.tasks.mapping import SceneMappingTask, ScenePredictionWriter
from tests.data.scenes import write_scene

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "predict_scenes.yaml"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("many")
    for i, size in enumerate(((40, 50), (64, 30), (33, 33))):
        write_scene(root / f"scene{i}", size=size, modalities=("optical",), labels=False)
    return root


def test_scene_sampler_shards_without_padding(scenes: Path) -> None:
    dataset = SceneList(sorted(str(p) for p in scenes.iterdir()))
    shards = [list(MappingSceneSampler(dataset, rank=r, world_size=2)) for r in range(2)]
    assert set(shards[0]).isdisjoint(shards[1]) and sorted(shards[0] + shards[1]) == [0, 1, 2]
    assert [len(MappingSceneSampler(dataset, rank=r, world_size=2)) for r in range(2)] == [
        len(s) for s in shards
    ]
    assert list(MappingSceneSampler(dataset, rank=0, world_size=5)) != list(
        MappingSceneSampler(dataset, rank=1, world_size=5)
    )


def test_trainer_predict_maps_every_scene_once(scenes: Path, tmp_path: Path) -> None:
    writer = ScenePredictionWriter(str(tmp_path / "maps"), quicklook=False)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[writer],
    )
    task = SceneMappingTask("band-ratio", MapOptions(window_size=32, overlap=0.5))
    trainer.predict(task, datamodule=SceneMappingDataModule([str(scenes)]), return_predictions=False)
    index = json.loads((tmp_path / "maps" / "index.json").read_text())
    assert index["scenes"] == 3 and [s["scene"] for s in index["summaries"]] == ["scene0", "scene1", "scene2"]
    assert not list((tmp_path / "maps").glob(".index-rank*"))
    for folder in sorted(scenes.iterdir()):
        with rasterio.open(tmp_path / "maps" / folder.name / "classes.tif") as src:
            np.testing.assert_array_equal(src.read(1), band_ratio_classes(folder))


def test_example_config_runs_with_glaciermap_predict(scenes: Path, tmp_path: Path) -> None:
    from glaciermap.cli import main

    out = tmp_path / "maps"
    assert (
        main(
            [
                "predict",
                "--config",
                str(EXAMPLE),
                "--trainer.accelerator",
                "cpu",
                f"--data.scenes=[{scenes}]",
                f"--trainer.callbacks.init_args.output_dir={out}",
                "--trainer.callbacks.init_args.quicklook=false",
            ]
        )
        == 0
    )
    index = json.loads((out / "index.json").read_text())
    assert index["scenes"] == 3
    assert all(s["window_size"] == 256 for s in index["summaries"])
    assert sorted(p.name for p in (out / "scene1").iterdir()) == [
        "classes.tif",
        "confidence.tif",
        "summary.json",
    ]


@pytest.mark.slow
def test_ddp_two_cpu_processes_map_each_scene_once(scenes: Path, tmp_path: Path) -> None:
    """Real DDP (gloo, 2 CPU processes) through LightningCLI and the example config."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "maps"
    cmd = [
        sys.executable, "-m", "glaciermap", "predict",
        "--config", str(EXAMPLE),
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        f"--data.scenes=[{scenes}]",
        f"--trainer.callbacks.init_args.output_dir={out}",
        "--trainer.callbacks.init_args.quicklook=false",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "PL_TORCH_DISTRIBUTED_BACKEND": "gloo",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = json.loads((out / "index.json").read_text())
    assert [s["scene"] for s in index["summaries"]] == ["scene0", "scene1", "scene2"]  # each exactly once
    assert {s["rank"] for s in index["summaries"]} == {0, 1}
    assert not list(out.glob(".index-rank*"))


def test_predict_config_switches_bias_optimisation_on(tmp_path: Path) -> None:
    """``model.options.bias_optimisation: true``: each scene gets its vector, file and summary record."""
    from glaciermap.cli import main
    from glaciermap.inference.bias_optimisation import load_region_vector, optimise_region
    from glaciermap.models.pretrained import load_pretrained
    from tests.data.checkpoints import save_tiny_region_checkpoint, scene_stats

    scenes = tmp_path / "scenes"
    for i in range(2):
        write_scene(scenes / f"s{i}", size=(64, 64 + 32 * i), modalities=("optical", "dem"), labels=False)
    ckpt = save_tiny_region_checkpoint(tmp_path / "region.ckpt", scene_stats(scenes / "s0"))
    out = tmp_path / "maps"
    argv = ["predict", "--config", str(EXAMPLE), "--trainer.accelerator", "cpu", f"--data.scenes=[{scenes}]"]
    argv += [f"--model.checkpoint={ckpt}", "--model.options.window_size=32", "--model.options.seed=1"]
    argv += ["--model.options.bias_optimisation=true", "--model.options.bo_windows=3"]
    argv += ["--model.options.bo_steps=4", f"--trainer.callbacks.init_args.output_dir={out}"]
    assert main([*argv, "--trainer.callbacks.init_args.quicklook=false"]) == 0
    mapping = load_pretrained(ckpt)
    for name in ("s0", "s1"):
        saved = load_region_vector(out / name / "region_vector.json", ("ALP", "SVAL"))
        expected = optimise_region(
            mapping, scenes / name, windows=3, steps=4, seed=1, window_size=32, device="cpu"
        )
        assert saved.logits == pytest.approx(expected.logits, abs=1e-6) and saved.windows == 3
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["bias_optimisation"]["file"] == "region_vector.json"
        assert summary["bias_optimisation"]["steps"] == saved.steps
        assert summary["location"]["vector"] == pytest.approx(saved.probabilities, abs=1e-6)
