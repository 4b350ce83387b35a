"""KarakoramDataModule: Karakoram ZY-3 folders feed the U-Net+CBAM recipe (Karakoram paper Sec. 3.3.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glaciermap.cli import main
from glaciermap.datamodules import KarakoramDataModule
from glaciermap.errors import ConfigError
from tests.data.karakoram import make_karakoram_folder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_windows_statistics_and_state(tmp_path: Path) -> None:
    train = make_karakoram_folder(tmp_path / "train", 64)
    val = make_karakoram_folder(tmp_path / "val", 48)
    dm = KarakoramDataModule(train_scenes=[train], val_scenes=[val], patch_size=32, batch_size=2, seed=0)
    dm.setup("fit")
    stats = dm.norm_stats
    assert stats is not None and stats.method == "zscore"
    # 21 of 64 columns background (268.5 K), 43 glacier (262 K)
    assert stats.modalities["thermal"].mean[0] == pytest.approx((21 * 268.5 + 43 * 262.0) / 64)
    assert stats.modalities["dem"].bands == ("slope",) and stats.modalities["optical"].count == 64 * 64
    train_loader = dm.train_dataloader()
    assert len(train_loader) == 4 * 4 // 2  # 4x the 4 disjoint 32 px windows, batch 2
    batch = next(iter(train_loader))
    assert batch["image"].shape == (2, 6, 32, 32) and batch["mask"].shape == (2, 32, 32)
    assert set(batch["mask"].unique().tolist()) <= {0, 1, 2}
    thermal = stats.modalities["thermal"]
    expected = (262.0 - thermal.mean[0]) / thermal.std[0]
    glacier = batch["mask"] > 0
    torch.testing.assert_close(batch["image"][:, 4][glacier], torch.full((int(glacier.sum()),), expected))
    val_loader = dm.val_dataloader()
    assert not isinstance(val_loader, list)
    assert sum(b["image"].shape[0] for b in val_loader) == 4  # grid of 2 x 2 windows over 48 px
    state = dm.state_dict()
    restored = KarakoramDataModule(test_scenes=[val], patch_size=32)
    restored.load_state_dict(state)
    assert restored.norm_stats == stats


def test_rejects_other_modalities(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Karakoram folders hold"):
        KarakoramDataModule(modalities=["optical", "dem"])
    with pytest.raises(ConfigError, match="leave bands unset"):
        KarakoramDataModule(bands={"optical": ["red", "green", "blue", "nir"]})
    with pytest.raises(ConfigError, match="needs train_scenes"):
        KarakoramDataModule(test_scenes=[make_karakoram_folder(tmp_path / "t", 32)], patch_size=32).folders(
            "test"
        )


def test_example_config_fast_dev_run(tmp_path: Path) -> None:
    train = make_karakoram_folder(tmp_path / "train", 64)
    val = make_karakoram_folder(tmp_path / "val", 32)
    code = main(
        [
            "fit",
            "--config",
            str(EXAMPLES / "karakoram_zy3.yaml"),
            f"--data.init_args.train_scenes=[{train}]",
            f"--data.init_args.val_scenes=[{val}]",
            f"--data.init_args.test_scenes=[{val}]",
            "--data.init_args.patch_size=32",
            "--data.init_args.batch_size=2",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            "--trainer.precision=32-true",
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
        ]
    )
    assert code == 0
