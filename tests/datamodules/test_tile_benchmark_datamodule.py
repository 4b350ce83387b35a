"""TileBenchmarkDataModule: the GlaViTU tile benchmark with the authors' epoch (reference notes 3.3, 4.2)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from glaciermap.cli import main
from glaciermap.constants import BANDS
from glaciermap.datamodules import TileBenchmarkDataModule, TileEpochSampler
from glaciermap.datasets.tile_benchmark import GlacierTileBenchmark
from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.normalisation import Normalize
from glaciermap.transforms.reference import REFERENCE_MINMAX, reference_stats

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
    assert dm.norm_stats == reference_stats(["optical", "dem"]).with_method("reference")
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
    with pytest.raises(ConfigError, match="expected one of optical_dem, thermal, insar"):
        TileBenchmarkDataModule(DATA, track="sar")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="the 'insar' track holds"):
        TileBenchmarkDataModule(DATA, track="insar", modalities=["optical", "dem", "sar", "insar"])
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


def test_insar_track_serves_three_sar_branches_with_the_reference_normalisation() -> None:
    dm = TileBenchmarkDataModule(DATA, DATA, track="insar", patch_size=16, batch_size=2, seed=0,
                                 image_format="per_modality")  # fmt: skip
    dm.setup("fit")
    assert list(dm.modalities) == ["optical", "dem", "sar", "sar_cross", "insar"]
    assert dm.region_codes == ("HMA",)  # the only tile with the InSAR groups
    # 1 tile of 40 x 48 px: 2 x 3 windows of 16 px; floor(6 / 2) * 4 = 12 steps
    assert dm.steps_per_epoch == 12
    batch = next(iter(dm.train_dataloader()))
    assert {m: tuple(x.shape) for m, x in batch["image"].items()} == {
        "optical": (2, 6, 16, 16),
        "dem": (2, 2, 16, 16),
        "sar": (2, 2, 16, 16),
        "sar_cross": (2, 2, 16, 16),
        "insar": (2, 2, 16, 16),
    }
    with h5py.File(DATA) as f:
        row, col = batch["window"][0].tolist()
        stored = f["HMA-7-3/cross_pol_sar"][row : row + 16, col : col + 16, :].transpose(2, 0, 1)
    np.testing.assert_array_equal(batch["image"]["sar_cross"][0].numpy(), stored)  # read as stored
    norm = dm.norm_stats
    assert norm.method == "reference" and list(norm.modalities) == list(dm.modalities)
    assert norm.modalities["sar_cross"].bands == BANDS["sar_cross"]
    assert norm.modalities["sar_cross"].max == REFERENCE_MINMAX["cross_pol_sar"][1]
    # a scene mapped with these statistics (linear sigma0 on disk): log10 first, then the published min-max
    sigma0 = torch.tensor([1.0, 0.01]).view(2, 1, 1)
    out = Normalize(norm.modalities["sar"], norm.method)(sigma0).flatten().tolist()
    lo, hi = REFERENCE_MINMAX["sar"]
    expected = [(math.log10(s + 1e-6) - lo[i]) / (hi[i] - lo[i]) for i, s in enumerate((1.0, 0.01))]
    assert out == pytest.approx(expected, rel=1e-5) and out[0] == pytest.approx(6.0 / 7.757612, rel=1e-5)
    coherence = Normalize(norm.modalities["insar"], norm.method)(torch.full((2, 1, 1), 0.5)).flatten()
    assert coherence.tolist() == pytest.approx([0.5 / REFERENCE_MINMAX["insar"][1][i] for i in (0, 1)])


def test_insar_tile_missing_one_sar_group_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.hdf5"
    shutil.copy(DATA, path)
    with h5py.File(path, "a") as f:
        del f["HMA-7-3/in_sar"]
    dm = TileBenchmarkDataModule(path, track="insar", patch_size=16)
    with pytest.raises(InputError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert "\n" not in message
    assert "tile 'HMA-7-3' has co_pol_sar, cross_pol_sar but no 'in_sar' group" in message
    with h5py.File(path, "a") as f:  # no SAR group at all: left out, as the reference does; then none is left
        del f["HMA-7-3/co_pol_sar"], f["HMA-7-3/cross_pol_sar"]
    with pytest.raises(InputError, match=r"no tile has the 'insar' track's groups"):
        TileBenchmarkDataModule(path, track="insar", patch_size=16).setup("fit")


@pytest.mark.slow
def test_insar_track_trains_and_tests_glavitu_through_the_cli(tmp_path: Path) -> None:
    """The InSAR example config: GlaViTU with five fusion branches, fitted and tested from its checkpoint."""
    data = [f"--data.init_args.{split}_path={DATA}" for split in ("train", "val", "test")]
    common = [
        "--config",
        str(EXAMPLES / "glavitu_tile_benchmark_insar.yaml"),
        *data,
        "--data.init_args.patch_size=16",
        "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0",
        '--model.model_kwargs={"img_size": 16}',
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.precision=32-true",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert main(["fit", *common, "--trainer.max_steps=1", "--trainer.limit_val_batches=1"]) == 0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    meta = saved["glaciermap"]
    assert meta["model"] == "glavitu"
    assert meta["bands"] == {m: list(BANDS[m]) for m in ("optical", "dem", "sar", "sar_cross", "insar")}
    assert meta["norm_stats"]["method"] == "reference"
    assert meta["norm_stats"]["modalities"]["sar"]["min"] == [-6.0, -6.0]
    weights = saved["state_dict"]
    for modality, channels in {"optical": 6, "dem": 2, "sar": 2, "sar_cross": 2, "insar": 2}.items():
        assert weights[f"model.fusion.branches.{modality}.conv.conv1.weight"].shape == (64, channels, 3, 3)
    assert main(["test", *common, f"--ckpt_path={ckpt}", "--trainer.limit_test_batches=2"]) == 0
