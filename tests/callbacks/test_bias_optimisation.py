"""The BiasOptimisation callback inside Trainer.predict with the scene mapping task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from glaciermap.callbacks import BiasOptimisation
from glaciermap.datamodules.mapping import SceneMappingDataModule
from glaciermap.errors import ConfigError
from glaciermap.inference.bias_optimisation import FAST_LR_FLOOR, load_region_vector, optimise_region
from glaciermap.inference.options import MapOptions
from glaciermap.models.pretrained import load_pretrained
from glaciermap.tasks.mapping import SceneMappingTask, ScenePredictionWriter
from tests.data.checkpoints import save_tiny_checkpoint, save_tiny_region_checkpoint, scene_stats
from tests.data.scenes import write_scene


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def region_checkpoint(path: Path, scene: Path) -> Path:
    """An untrained light region-encoding model (regions ALP, SVAL) saved as a SegmentationTask checkpoint."""
    return save_tiny_region_checkpoint(path, scene_stats(scene))


def predict(
    checkpoint: Path, scenes: Path, out: Path, callback: BiasOptimisation, batch_size: int = 1
) -> None:
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ScenePredictionWriter(str(out), quicklook=False), callback],
    )
    task = SceneMappingTask(str(checkpoint), MapOptions(window_size=32))
    dm = SceneMappingDataModule([str(scenes)], batch_size=batch_size)
    trainer.predict(task, datamodule=dm, return_predictions=False)


def test_callback_optimises_each_scene_and_maps_it_with_the_vector(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    for i in range(2):
        write_scene(scenes / f"s{i}", size=(64, 64 + 32 * i), modalities=("optical", "dem"), labels=False)
    ckpt = region_checkpoint(tmp_path / "region.ckpt", scenes / "s0")
    out = tmp_path / "maps"
    callback = BiasOptimisation(windows=4, steps=5, seed=1)
    predict(ckpt, scenes, out, callback)

    mapping = load_pretrained(ckpt)
    for name in ("s0", "s1"):
        saved = load_region_vector(out / name / "region_vector.json", ("ALP", "SVAL"))
        expected = optimise_region(
            mapping, scenes / name, windows=4, steps=5, seed=1, window_size=32, device="cpu"
        )
        assert saved.logits == pytest.approx(expected.logits, abs=1e-6)
        assert saved.entropy < saved.entropy_trace[0]
        summary = json.loads((out / name / "summary.json").read_text())
        record = summary["bias_optimisation"]
        assert record["file"] == "region_vector.json" and record["steps"] == saved.steps
        assert record["vector"] == [round(v, 6) for v in saved.probabilities]
        # the scene was mapped with the optimised vector, not the "unseen" one-hot
        assert summary["location"]["region"] == "vector"
        assert summary["location"]["vector"] == pytest.approx(saved.probabilities, abs=1e-6)
    assert sorted(callback.vectors) == ["s0", "s1"]


def test_callback_passes_its_lr_floor(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    write_scene(scenes / "s0", size=(64, 64), modalities=("optical", "dem"), labels=False)
    ckpt = region_checkpoint(tmp_path / "region.ckpt", scenes / "s0")
    callback = BiasOptimisation(windows=4, steps=20, seed=1, lr_floor=0.3)
    predict(ckpt, scenes, tmp_path / "maps", callback)
    expected = optimise_region(
        load_pretrained(ckpt),
        scenes / "s0",
        windows=4,
        steps=20,
        seed=1,
        lr_floor=0.3,
        window_size=32,
        device="cpu",
    )
    vector = callback.vectors["s0"]
    assert vector.lr_floor == 0.3 and vector.stop_reason == expected.stop_reason
    assert vector.lr_trace == expected.lr_trace and vector.logits == pytest.approx(
        expected.logits, rel=1e-5, abs=1e-6
    )
    assert BiasOptimisation().lr_floor == FAST_LR_FLOOR


def test_callback_errors_for_a_model_without_region_encoding_and_several_scenes_per_step(
    tmp_path: Path,
) -> None:
    scenes = tmp_path / "scenes"
    for i in range(2):
        write_scene(scenes / f"s{i}", size=(64, 64), modalities=("optical", "dem"), labels=False)
    plain = save_tiny_checkpoint(tmp_path / "plain.ckpt", scene_stats(scenes / "s0"))
    with pytest.raises(ConfigError, match="needs a region-encoding model"):
        predict(plain, scenes, tmp_path / "a", BiasOptimisation(windows=2, steps=1))
    region = region_checkpoint(tmp_path / "region.ckpt", scenes / "s0")
    with pytest.raises(ConfigError, match=r"set data\.batch_size to 1"):
        predict(region, scenes, tmp_path / "b", BiasOptimisation(windows=2, steps=1), batch_size=2)


def test_acceptance_example_runs_on_a_tiny_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "bias_optimisation_acceptance.py"
    scene = write_scene(tmp_path / "stats", size=(32, 32), modalities=("optical", "dem"), labels=False)
    ckpt = region_checkpoint(tmp_path / "region.ckpt", scene)
    out = tmp_path / "out"
    argv = [str(example), "--ckpt", str(ckpt), "--out", str(out), "--root", str(tmp_path / "synthetic")]
    argv += [
        "--scenes",
        "alps:1",
        "--scene-size",
        "128",
        "--window-size",
        "32",
        "--windows",
        "4",
        "--steps",
        "3",
    ]
    argv += ["--authors-max-epochs", "2", "--figure", str(tmp_path / "curve.png"), "--unseen-init"]
    argv += ["--val-scenes", "svalbard:1", "--one-hots"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(example), run_name="__main__")
    assert exc.value.code == 0
    figures = json.loads((out / "acceptance.json").read_text())
    rows = figures["scenes"]["alps:1"]
    assert rows["valid_windows"] == 16 and rows["fast"]["steps"] <= 3 and rows["authors"]["steps"] == 2 * 2
    assert rows["fast"]["stop_reason"] in ("tolerance", "lr_floor", "steps")
    assert all(1 <= k <= rows["fast"]["steps"] for k in rows["fast"]["rejected_steps"])
    # all 16 valid windows are sampled, so the objective on every window is the lowest entry of the trace
    assert rows["fast"]["objective"] == pytest.approx(min(figures["traces"]["alps:1"]["fast"]), abs=2e-5)
    for name in ("unseen", "one_hot_ALP", "one_hot_SVAL", "fast", "fast_unseen_init", "authors"):
        assert 0.0 <= rows[name]["iou_glacier"] <= 1.0 and 0.0 <= rows[name]["mapped_entropy"] <= 1.0
    # started at the "unseen" one-hot, keeping the lowest entropy: never above the one-hot on every window
    assert rows["fast_unseen_init"]["objective"] <= rows["unseen"]["objective"] + 2e-3
    # a scene of a training region (SVAL), mapped with its own one-hot and with "unseen": two different maps
    val = figures["val_scenes"]["svalbard:1"]
    assert val["region"] == "SVAL" and set(val) == {"region", "own_region", "unseen"}
    for name, vector in (("own_region", [0.0, 1.0, 0.0]), ("unseen", [0.0, 0.0, 1.0])):
        summary = json.loads((out / "val" / "svalbard-1" / name / "summary.json").read_text())
        assert summary["location"]["vector"] == vector
    assert all(0.0 <= val[k]["iou_glacier"] <= 1.0 for k in ("own_region", "unseen"))
    assert (tmp_path / "curve.png").stat().st_size > 1000
