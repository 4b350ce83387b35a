"""Tests of the split-image data module (seeded, stratified train / validation / test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glaciermap.datamodules.split_images import SplitImageDataModule, stratified_split
from glaciermap.datasets.crevasse_labels import export_image_folder, read_label_table
from glaciermap.datasets.split_images import SplitImageDataset
from glaciermap.errors import ConfigError
from glaciermap.synthetic.crevasses import generate_crevasse_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 22 regions of 2 x 2 split-images: 8 per class
    return generate_crevasse_world(
        tmp_path_factory.mktemp("dm") / "w", seed=1, tiles=(22, 4), tile_size=(30, 40)
    )


def test_stratified_split_counts_and_seed() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 4, 6])
    train, val, test = stratified_split(labels, (0.5, 0.25, 0.25), seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(40))
    assert np.bincount(labels[train]).tolist() == [5, 10, 2, 3]
    assert np.bincount(labels[val], minlength=4).tolist() == [3, 5, 1, 1]  # cuts rint(7.5)=8, rint(4.5)=4
    again = stratified_split(labels, (0.5, 0.25, 0.25), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(train, stratified_split(labels, (0.5, 0.25, 0.25), seed=4)[0])
    with pytest.raises(ConfigError, match="summing to 1"):
        stratified_split(labels, (0.5, 0.6))


def test_datamodule_batches_and_subsets(world: Path) -> None:
    dm = SplitImageDataModule(root=world, fractions=(0.5, 0.25, 0.25), batch_size=8, seed=0)
    dm.setup("fit")
    assert dm.num_classes == 11
    sizes = {name: len(dm.subsets[name]) for name in ("train", "val", "test")}
    assert sizes == {"train": 44, "val": 22, "test": 22}
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 1, 30, 40) and batch["image"].dtype == torch.float32
    assert batch["vario"].shape == (8, 24) and batch["vario"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and len(batch["crs"]) == 8
    val_labels = torch.cat([b["label"] for b in dm.val_dataloader()])
    assert torch.bincount(val_labels, minlength=11).tolist() == [2] * 11
    first = [b["tile_id"] for b in dm.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, [b["tile_id"] for b in dm.val_dataloader()]))


def test_rotation_augmentation_only_on_training(world: Path) -> None:
    plain = SplitImageDataModule(root=world, fractions=(0.5, 0.25, 0.25), seed=0)
    rotated = SplitImageDataModule(root=world, fractions=(0.5, 0.25, 0.25), seed=0, rotate_vario=True)
    plain.setup()
    rotated.setup()
    torch.testing.assert_close(plain.subsets["val"][0]["vario"], rotated.subsets["val"][0]["vario"])
    sample = plain.subsets["train"][0]["vario"]
    n = sample.shape[0] // 3
    draws = {tuple(rotated.subsets["train"][0]["vario"][[0, n, 2 * n]].tolist()) for _ in range(40)}
    assert len(draws) > 1


def test_datamodule_from_an_image_folder(world: Path, tmp_path: Path) -> None:
    ds = SplitImageDataset(
        world / "pan.tif", world / "index.gpkg", labels=world / "labels.csv", intensity="uint8"
    )
    labels = read_label_table(world / "labels.csv")
    assert export_image_folder(ds, labels, tmp_path / "folder") == 88
    dm = SplitImageDataModule(folder=tmp_path / "folder", fractions=(0.75, 0.25, 0.0), batch_size=4)
    dm.setup()
    assert len(dm.subsets["train"]) == 66 and len(dm.subsets["test"]) == 0
    assert next(iter(dm.val_dataloader()))["image"].max() <= 255
    with pytest.raises(ConfigError, match="exactly one"):
        SplitImageDataModule(root=world, folder=tmp_path / "folder")
