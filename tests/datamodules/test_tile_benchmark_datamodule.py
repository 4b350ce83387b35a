"""TileBenchmarkDataModule: the GlaViTU tile benchmark with the authors' epoch (reference notes 3.3, 4.2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glaciermap.cli import main
from glaciermap.datamodules import TileBenchmarkDataModule, TileEpochSampler
from glaciermap.datasets.tile_benchmark import GlacierTileBenchmark
from glaciermap.errors import ConfigError
from glaciermap.transforms.reference import reference_stats

DATA = Path(__file__).resolve().parents[1] / "data" / "tile_benchmark" / "tiles.hdf5"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_reference_epoch_regions_and_norm() -> None:
    dm = TileBenchmarkDataModule(DATA, DATA, DATA, patch_size=16, batch_size=2, seed=0)
    dm.setup("fit")
    # 4 tiles of 40 x 48 px: 2 x 3 disjoint 16 px windows each = 24; floor(24 / 2) * 4 = 48 steps
    assert dm.steps_per_epoch == 48
    train = dm.train_dataloader()
    assert len(train) == 48
    assert dm.region_codes == ("ALP", "HMA", "SC")
    assert dm.norm_stats == reference_stats(["optical", "dem"])
    first = next(iter(train))
    assert first["image"].shape == (2, 8, 16, 16) and first["region"].tolist()[0] in (0, 1, 2)
    sampler = train.sampler
    assert isinstance(sampler, TileEpochSampler)
    sampler.set_epoch(1)
    second = next(iter(train))
    assert not torch.equal(first["window"], second["window"])  # a new epoch draws new windows
    val = dm.val_dataloader()
    assert not isinstance(val, list) and len(val) == 12  # the 24 disjoint windows, batch 2


def test_sampler_shards_and_carries_the_epoch() -> None:
    ds = GlacierTileBenchmark(DATA, patch_size=16, batch_size=2, mode="grid")
    shards = [list(TileEpochSampler(ds, rank=r, world_size=2, pad=False)) for r in (0, 1)]
    assert sorted(i for shard in shards for _, i in shard) == list(range(24))
    padded = TileEpochSampler(ds, rank=1, world_size=5, pad=True)
    padded.set_epoch(3)
    items = list(padded)
    assert len(items) == len(padded) == 5 and all(e == 3 for e, _ in items)
    random = GlacierTileBenchmark(DATA, patch_size=16, batch_size=2, seed=7)
    assert random.window(5, 2) == random.window(5, 2) != random.window(5, 3)
    assert torch.equal(random[(2, 5)]["window"], torch.tensor(random.window(5, 2)[1:]))


def test_rejects_what_it_cannot_serve() -> None:
    with pytest.raises(ConfigError, match="InSAR"):
        TileBenchmarkDataModule(DATA, track="insar")
    with pytest.raises(ConfigError, match="holds"):
        TileBenchmarkDataModule(DATA, modalities=["optical", "dem", "thermal"])
    with pytest.raises(ConfigError, match="binary"):
        TileBenchmarkDataModule(DATA, target="classes")
    with pytest.raises(ConfigError, match="needs test_path"):
        TileBenchmarkDataModule(DATA, patch_size=16).setup("test")


def test_example_config_fast_dev_run(tmp_path: Path) -> None:
    code = main(
        [
            "fit",
            "--config",
            str(EXAMPLES / "glavitu_tile_benchmark.yaml"),
            f"--data.init_args.train_path={DATA}",
            f"--data.init_args.val_path={DATA}",
            f"--data.init_args.test_path={DATA}",
            "--data.init_args.patch_size=16",
            "--data.init_args.batch_size=2",
            "--data.init_args.num_workers=0",
            "--model.model=light_fusion_resunet",
            '--model.model_kwargs={"filters": 8}',
            "--model.aux_weight=0",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            "--trainer.precision=32-true",
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    assert code == 0
