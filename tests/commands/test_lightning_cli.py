"""``glaciermap fit|validate|test|predict``: every example config runs through LightningCLI on tiny scenes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glaciermap.cli import main
from glaciermap.tasks import SegmentationTask

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REAL_DATA = {  # tested in tests/datamodules
    "predict_scenes.yaml",
    "karakoram_zy3.yaml",
    "glavitu_tile_benchmark.yaml",
    "glavitu_tile_benchmark_insar.yaml",
}
CONFIGS = sorted(
    p.name
    for p in EXAMPLES.glob("*.yaml")
    if p.name not in REAL_DATA and not p.name.startswith("crevasse_")  # tests/tasks/test_classification.py
)


@pytest.fixture(scope="module")
def scene_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of tiny synthetic scenes shared by every config of this module."""
    return tmp_path_factory.mktemp("synthetic")


def _small(root: Path, out: Path) -> list[str]:
    """Overrides that shrink any example config to seconds on a CPU."""
    return [
        f"--data.init_args.root={root}",
        "--data.init_args.scene_size=[128,128]",
        "--data.init_args.patch_size=64",
        "--data.init_args.eval_stride=64",
        "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.strategy=auto",
        "--trainer.precision=32-true",
        f"--trainer.default_root_dir={out}",
    ]


def test_every_strategy_has_an_example() -> None:
    names = set(CONFIGS)
    for strategy in ("global", "regional", "finetuning", "region_encoding", "coordinate_encoding"):
        assert f"glavitu_{strategy}.yaml" in names
    assert {"synthetic_cpu.yaml", "karakoram_unet_cbam.yaml"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_example_config_fast_dev_run(config: str, scene_cache: Path, tmp_path: Path) -> None:
    args = [
        "fit",
        "--config",
        str(EXAMPLES / config),
        *_small(scene_cache, tmp_path),
        "--trainer.fast_dev_run=true",
    ]
    if config == "glavitu_finetuning.yaml":
        # the fine-tuning config starts from a global checkpoint: make a tiny one first
        global_args = [
            "fit",
            "--config",
            str(EXAMPLES / "glavitu_global.yaml"),
            *_small(scene_cache, tmp_path / "g"),
        ]
        assert (
            main(
                [
                    *global_args,
                    "--trainer.max_steps=1",
                    "--trainer.limit_val_batches=1",
                    "--trainer.logger=false",
                ]
            )
            == 0
        )
        ckpt = tmp_path / "g" / "checkpoints" / "last.ckpt"
        assert ckpt.exists()
        args.append(f"--model.init_from={ckpt}")
        start = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert main(args) == 0
    if config == "glavitu_finetuning.yaml":
        # init_from really loaded the global weights (before the one fast_dev_run step changed them)
        task = SegmentationTask(model="glavitu", init_from=str(ckpt))
        for key, value in task.state_dict().items():
            if key.startswith("model."):
                torch.testing.assert_close(value, start[key])


def test_print_config_links_data_to_model(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(EXAMPLES / "karakoram_unet_cbam.yaml"), "--print_config"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "model: unet_cbam" in out and "loss: dice" in out
    assert "- thermal" in out and "target: classes" in out


def test_fit_then_test_with_checkpoint_reproduces_metrics(scene_cache: Path, tmp_path: Path) -> None:
    """Fit a few steps; the checkpoint alone (no training scenes, no arguments) reproduces the test metrics."""
    import lightning.pytorch as pl

    from glaciermap.datamodules import SceneDataModule, SyntheticDataModule

    cfg = str(EXAMPLES / "synthetic_cpu.yaml")
    common = _small(scene_cache, tmp_path)
    fit = ["fit", "--config", cfg, *common, "--trainer.max_steps=3", "--data.init_args.samples_per_epoch=6"]
    assert main([*fit, "--trainer.logger=false"]) == 0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert main(["test", "--config", cfg, *common, f"--ckpt_path={ckpt}", "--trainer.logger=false"]) == 0

    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["glaciermap"]
    assert meta["model"] == "light_fusion_resunet"
    assert meta["class_names"] == ["background", "clean_ice", "debris_ice"]
    assert list(meta["bands"]) == ["optical", "dem", "thermal", "insar"]
    assert len(meta["norm_stats"]["modalities"]["optical"]["mean"]) == 6  # statistics travel with the weights

    modalities = ["optical", "dem", "thermal", "insar"]
    kw = {"modalities": modalities, "target": "classes", "patch_size": 64, "batch_size": 2, "eval_stride": 64}
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    # as trained: the data module still knows the training scenes
    original = SyntheticDataModule(
        root=str(scene_cache),
        train=["karakoram:1", "karakoram:2", "karakoram:3", "svalbard:4", "alaska:5"],
        val=["karakoram:101"],
        test=["karakoram:201"],
        scene_size=(128, 128),
        **kw,  # type: ignore[arg-type]
    )
    ref = trainer.test(SegmentationTask.load_from_checkpoint(ckpt), original, verbose=False)[0]
    # a new user: only the checkpoint and the held-out scene folder
    held_out = original.folder("karakoram", 201)
    fresh = SceneDataModule(test_scenes=[held_out], **kw)  # type: ignore[arg-type]
    new = trainer.test(SegmentationTask.load_from_checkpoint(ckpt), fresh, verbose=False)[0]
    assert new == ref
    assert set(new) >= {
        "test/iou_glacier",
        "test/miou",
        "test/accuracy",
        "test/recall_debris_ice",
        "test/f1_clean_ice",
    }
    assert 0.0 <= new["test/iou_glacier"] <= 1.0


def test_small_calibrated_glavitu_trains_with_dropout_and_keeps_its_calibrator(
    scene_cache: Path, tmp_path: Path
) -> None:
    """examples/glavitu_small_calibrated.yaml: small GlaViTU, dropout on in training, KRR calibrator in the checkpoint."""
    from glaciermap.models.blocks import MCDropout
    from glaciermap.models.pretrained import load_pretrained

    cfg = str(EXAMPLES / "glavitu_small_calibrated.yaml")
    args = [*_small(scene_cache, tmp_path), "--trainer.logger=false"]
    fit = ["fit", "--config", cfg, *args, "--trainer.max_steps=2", "--data.init_args.samples_per_epoch=4"]
    assert main(fit) == 0
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    kwargs = ckpt["hyper_parameters"]["model_kwargs"]
    assert (kwargs["filters"], kwargs["transformer_depth"], kwargs["unet_depth"]) == (16, 4, 3)
    assert ckpt["hyper_parameters"]["mc_dropout_training"] is True
    calibrator = ckpt["glaciermap"]["calibrator"]  # fitted by CalibrationCallback at the validation epoch
    assert calibrator["kind"] == "krr" and calibrator["class_names"] == ["background", "glacier"]
    assert calibrator["support"][0] == 0.0 and calibrator["support"][-1] == 1.0  # the authors' anchors
    mapping = load_pretrained(tmp_path / "checkpoints" / "last.ckpt")
    assert mapping.calibrator is not None
    assert sum(p.numel() for p in mapping.parameters()) == 603_924
    drops = [m for m in mapping.modules() if isinstance(m, MCDropout)]
    assert drops and all(m.p == 0.1 for m in drops)
