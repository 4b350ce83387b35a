"""SceneDataModule: loaders for every stage, normalisation statistics, determinism, workers, Lightning."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from glaciermap.datamodules.scenes import SceneDataModule
from glaciermap.datasets.scene_folder import inspect_scene, read_scene_stats
from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.normalisation import merge_stats
from tests.data.scenes import write_scene


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two training scenes (HMA, SVAL in another UTM zone), a validation, a test (AWA) and a label-less scene."""
    root = tmp_path_factory.mktemp("dm")
    mods = ["optical", "dem"]
    return {
        "a": write_scene(root / "a", modalities=mods, region="HMA", nodata_box=(0, 8, 0, 8)),
        "b": write_scene(
            root / "b",
            modalities=mods,
            region="SVAL",
            crs="EPSG:32633",
            origin=(400000.0, 8700000.0),
            size=(48, 80),
        ),
        "val": write_scene(root / "val", modalities=mods, region="HMA", size=(40, 64)),
        "test": write_scene(root / "test", modalities=mods, region="AWA"),
        "unlabelled": write_scene(root / "unlabelled", modalities=mods, labels=False),
    }


def make(folders: dict[str, Path], **kwargs: Any) -> SceneDataModule:
    options: dict[str, Any] = {
        "train_scenes": [folders["a"], folders["b"]],
        "val_scenes": [folders["val"]],
        "test_scenes": [folders["test"]],
        "predict_scenes": [folders["unlabelled"]],
        "modalities": ["optical", "dem"],
        "patch_size": 32,
        "batch_size": 4,
        "samples_per_epoch": 10,
        "seed": 3,
    }
    options.update(kwargs)
    return SceneDataModule(**options)


def test_fit_loaders_shapes_and_dtypes(folders: dict[str, Path]) -> None:
    dm = make(folders)
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert [b["image"].shape[0] for b in train] == [4, 4, 2]
    batch = train[0]
    assert batch["image"].shape == (4, 8, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 32, 32) and batch["mask"].dtype == torch.int64
    assert batch["region"].shape == (4,) and batch["region"].dtype == torch.int64
    assert batch["location"].shape == (4, 2) and batch["bounds"].shape == (4, 4)
    assert len(batch["crs"]) == 4
    assert set(torch.cat([b["mask"].flatten() for b in train]).unique().tolist()) <= {0, 1, 255}
    val = list(dm.val_dataloader())  # type: ignore[arg-type]
    # 40x64 scene, 32 px grid: 2 rows x 2 cols, the top row reaching 24 px past the scene.
    assert sum(b["image"].shape[0] for b in val) == 4
    assert (dm.in_channels, dm.num_classes, dm.bands[:2]) == (8, 2, ["blue", "green"])


def test_validate_test_and_predict_stages(folders: dict[str, Path]) -> None:
    dm = make(folders, target="classes")
    dm.setup("test")
    test = list(dm.test_dataloader())
    assert sum(b["mask"].shape[0] for b in test) == 4
    assert set(torch.cat([b["mask"].flatten() for b in test]).unique().tolist()) == {0, 1, 2}
    assert dm.num_classes == 3
    # Region codes default to the sorted training regions; the AWA test scene is unseen.
    assert dm.region_codes == ("HMA", "SVAL") and dm.num_regions == 3
    assert torch.cat([b["region"] for b in test]).tolist() == [2, 2, 2, 2]
    dm.setup("predict")
    predicted = list(dm.predict_dataloader())
    assert "mask" not in predicted[0] and predicted[0]["image"].shape == (4, 8, 32, 32)
    dm.setup("validate")
    assert len(list(dm.val_dataloader())) == 1  # type: ignore[arg-type]


def test_norm_stats_are_the_merged_training_statistics(folders: dict[str, Path]) -> None:
    dm = make(folders)
    dm.setup("fit")
    stats = dm.norm_stats
    assert stats is not None and stats.method == "zscore"
    infos = [inspect_scene(folders[k], ["optical", "dem"]) for k in ("a", "b")]
    expected = merge_stats([read_scene_stats(i, ["optical", "dem"]) for i in infos])
    assert stats == expected
    assert stats.modalities["optical"].count == 64 * 64 - 64 + 48 * 80
    # Normalised training batches are roughly standardised.
    images = torch.cat([b["image"] for b in dm.train_dataloader()])
    masks = torch.cat([b["mask"] for b in dm.train_dataloader()])
    valid = images.permute(1, 0, 2, 3)[:, masks != 255]
    assert valid.mean().abs() < 1.5 and 0.3 < valid.std() < 3.0
    assert json.loads(json.dumps(stats.to_dict())) == stats.to_dict()


def test_module_preprocessing_reaches_the_data_through_the_trainer(folders: dict[str, Path]) -> None:
    """A task restored from a checkpoint hands its statistics over in the data module's own ``setup``."""
    from types import SimpleNamespace

    trained = make(folders, norm_method="minmax")
    state = trained.state_dict()
    module = SimpleNamespace(preprocessing=lambda: state)
    restored = SceneDataModule(test_scenes=[folders["test"]], modalities=["optical", "dem"], patch_size=32)
    strategy = SimpleNamespace(broadcast=lambda value, src=0: value)
    restored.trainer = SimpleNamespace(lightning_module=module, strategy=strategy)  # type: ignore[assignment]
    restored.setup("test")
    assert restored.norm_stats == trained.norm_stats and restored.region_codes == ("HMA", "SVAL")
    fresh = SceneDataModule(test_scenes=[folders["test"]], modalities=["optical", "dem"], patch_size=32)
    empty = SimpleNamespace(preprocessing=lambda: None)
    fresh.trainer = SimpleNamespace(lightning_module=empty, strategy=strategy)  # type: ignore[assignment]
    fresh.setup("test")
    assert fresh.norm_stats is None  # nothing carried: the data module keeps its own


def test_state_dict_carries_statistics_into_a_test_only_module(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    trained = make(folders, norm_method="minmax")
    state = trained.state_dict()
    assert state["region_codes"] == ["HMA", "SVAL"] and state["bands"]["dem"] == ["elevation", "slope"]
    restored = SceneDataModule(test_scenes=[folders["test"]], modalities=["optical", "dem"], patch_size=32)
    restored.setup("test")  # no trainer: nothing is handed over
    assert restored.norm_stats is None, "not known yet, and asking does not raise"
    with pytest.raises(ConfigError, match="norm='train' needs train_scenes"):
        restored.test_dataloader()
    restored.load_state_dict(state)
    assert restored.norm_stats == trained.norm_stats and restored.region_codes == ("HMA", "SVAL")
    batch = next(iter(restored.test_dataloader()))
    assert torch.equal(batch["region"], torch.full((4,), 2))
    # Statistics from a JSON file give the same batch.
    assert trained.norm_stats is not None
    trained.norm_stats.save(tmp_path / "norm.json")
    from_file = SceneDataModule(
        test_scenes=[folders["test"]],
        modalities=["optical", "dem"],
        patch_size=32,
        norm=str(tmp_path / "norm.json"),
        norm_method="minmax",
        region_codes=["HMA", "SVAL"],
    )
    from_file.setup("test")
    assert torch.equal(next(iter(from_file.test_dataloader()))["image"], batch["image"])
    other_bands = SceneDataModule(test_scenes=[folders["test"]], modalities=["dem"], patch_size=32)
    with pytest.raises(ConfigError, match="the checkpoint was trained on bands"):
        other_bands.load_state_dict(state)


def test_without_normalisation_images_keep_their_units(folders: dict[str, Path]) -> None:
    dm = make(folders, norm=None, modalities=["dem"], fill_value=-1.0)
    dm.setup("test")
    image = next(iter(dm.test_dataloader()))["image"]
    assert image.min() >= 10.0 and image.max() >= 4000.0 and dm.norm_stats is None  # slope and elevation


def test_random_windows_are_reproducible_and_differ_by_epoch(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):  # seed_everything sets them; restore them afterwards
        monkeypatch.setenv(name, "0")
        monkeypatch.delenv(name)

    def bounds(dm: SceneDataModule, epoch: int) -> Tensor:
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        return torch.cat([b["bounds"] for b in loader])

    first = bounds(make(folders, seed=5), 0)
    assert torch.equal(first, bounds(make(folders, seed=5), 0))
    assert not torch.equal(first, bounds(make(folders, seed=5), 1))
    assert not torch.equal(first, bounds(make(folders, seed=6), 0))
    # Without an explicit seed, the seed of seed_everything is used.
    pl.seed_everything(5, verbose=False)
    assert torch.equal(first, bounds(make(folders, seed=None), 0))


def test_two_workers_give_the_same_batches(folders: dict[str, Path]) -> None:
    serial = make(folders, num_workers=0)
    parallel = make(folders, num_workers=2)
    serial.setup("fit")
    parallel.setup("fit")
    for a, b in zip(serial.train_dataloader(), parallel.train_dataloader(), strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])


def test_configuration_errors(folders: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"scene .*val is 64x40 px, smaller than patch_size 48"):
        make(folders, patch_size=48).setup("fit")
    with pytest.raises(ConfigError, match="stage 'test' needs test_scenes"):
        SceneDataModule(train_scenes=[folders["a"]], patch_size=32).setup("test")
    with pytest.raises(ConfigError, match="target is 'soft'"):
        make(folders, target="soft")
    with pytest.raises(ConfigError, match="batch_size is 0"):
        make(folders, batch_size=0)
    with pytest.raises(ConfigError, match="stage is 'tune'"):
        make(folders).setup("tune")
    with pytest.raises(InputError, match=r"has no labels\.tif"):
        make(folders, test_scenes=[folders["unlabelled"]]).setup("test")
    only_train = SceneDataModule(train_scenes=[folders["a"]], patch_size=32, samples_per_epoch=2)
    only_train.setup("fit")
    assert only_train.val_dataloader() == []


class TinySegmenter(pl.LightningModule):
    """A 1x1 convolution, enough to drive the data module through Lightning's loops."""

    def __init__(
        self, in_channels: int, num_classes: int, datamodule_state: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, num_classes, 1)
        self.seen: list[int] = []
        self.datamodule_state = datamodule_state

    def setup(self, stage: str) -> None:
        # What the segmentation task does with the statistics of its checkpoint.
        if self.datamodule_state is not None and stage != "fit":
            self.trainer.datamodule.load_state_dict(self.datamodule_state)  # type: ignore[attr-defined]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        self.seen.append(self.current_epoch)
        logits = self.head(batch["image"])
        return nn.functional.cross_entropy(logits, batch["mask"], ignore_index=255)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss = nn.functional.cross_entropy(self.head(batch["image"]), batch["mask"], ignore_index=255)
        self.log("val_loss", loss, batch_size=batch["image"].shape[0])

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss = nn.functional.cross_entropy(self.head(batch["image"]), batch["mask"], ignore_index=255)
        self.log("test_loss", loss, batch_size=batch["image"].shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_lightning_fit_runs_epochs_with_new_windows(folders: dict[str, Path], tmp_path: Path) -> None:
    dm = make(folders, samples_per_epoch=8)
    model = TinySegmenter(8, 2)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert model.seen == [0, 0, 1, 1]
    assert math.isfinite(float(trainer.callback_metrics["val_loss"]))
    sampler = trainer.train_dataloader.sampler  # type: ignore[union-attr]
    assert sampler.epoch == 1, "Lightning called set_epoch on the sharded sampler"
    assert np.isfinite(dm.state_dict()["norm_stats"]["modalities"]["dem"]["mean"]).all()


def test_lightning_test_with_statistics_from_the_checkpoint(folders: dict[str, Path], tmp_path: Path) -> None:
    trained = make(folders)
    model = TinySegmenter(8, 2, datamodule_state=trained.state_dict())
    test_only = SceneDataModule(test_scenes=[folders["test"]], modalities=["optical", "dem"], patch_size=32)
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    (metrics,) = trainer.test(model, datamodule=test_only, verbose=False)
    assert math.isfinite(metrics["test_loss"])
    assert test_only.norm_stats == trained.norm_stats and test_only.region_codes == ("HMA", "SVAL")
