"""GlacierTileBenchmark on the committed fake benchmark file (tests/data/tile_benchmark/make.py)."""

from __future__ import annotations

import math
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from glaciermap.constants import IGNORE_INDEX
from glaciermap.datasets.tile_benchmark import (
    GlacierTileBenchmark,
    disjoint_patch_count,
    reference_epoch_steps,
)
from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.reference import REFERENCE_MINMAX

DATA = Path(__file__).parents[1] / "data" / "tile_benchmark" / "tiles.hdf5"


def test_epoch_definition_matches_reference() -> None:
    # Reference notes 3.3: n_patches = sum floor(H/p) floor(W/p); steps = floor(n / 8) * 4.
    assert disjoint_patch_count([(1920, 2304), (768, 400)], 384) == 5 * 6 + 2 * 1
    assert reference_epoch_steps(32, 8) == 16
    assert reference_epoch_steps(39, 8, 4) == 16
    with pytest.raises(ConfigError, match="batch_size"):
        reference_epoch_steps(10, 0)


def test_tracks_filter_tiles() -> None:
    assert [t.name for t in GlacierTileBenchmark(DATA, patch_size=16).tiles] == [
        "ALP-1-1",
        "ALP-1-2",
        "HMA-7-3",
        "SC2-5-9",
    ]
    assert [t.name for t in GlacierTileBenchmark(DATA, track="thermal", patch_size=16).tiles] == [
        "ALP-1-1",
        "HMA-7-3",
    ]
    insar = GlacierTileBenchmark(DATA, track="insar", patch_size=16)
    assert [t.name for t in insar.tiles] == ["HMA-7-3"]
    assert insar.num_channels == 6 + 2 + 2 + 2 + 2


def test_region_and_subregion_filters() -> None:
    ds = GlacierTileBenchmark(DATA, regions=["ALP"], patch_size=16)
    assert [t.name for t in ds.tiles] == ["ALP-1-1", "ALP-1-2"]
    ds = GlacierTileBenchmark(DATA, regions=["ALP"], subregions=["ALP2"], patch_size=16)
    assert [t.name for t in ds.tiles] == ["ALP-1-2"]
    assert ds.tiles[0].region == "ALP" and ds.tiles[0].padding == (4, 8)


def test_grid_mode_reads_disjoint_windows_as_stored() -> None:
    ds = GlacierTileBenchmark(
        DATA, regions=["ALP"], subregions=["ALP1"], patch_size=16, mode="grid", region_codes=["ALP", "HMA"]
    )
    # 40x48 px tile: floor(40/16) * floor(48/16) = 2 * 3 windows, row-major.
    assert len(ds) == 6 and ds.n_patches == 6
    assert [ds.window(i)[1:] for i in range(6)] == [(0, 0), (0, 16), (0, 32), (16, 0), (16, 16), (16, 32)]
    sample = ds[4]
    assert sample["image"].shape == (8, 16, 16) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (16, 16) and sample["mask"].dtype == torch.int64
    with h5py.File(DATA) as f:
        optical = f["ALP-1-1/optical"][16:32, 16:32, :]
        dem = f["ALP-1-1/dem"][16:32, 16:32, :]
    np.testing.assert_array_equal(sample["image"][:6].numpy(), optical.transpose(2, 0, 1))
    np.testing.assert_array_equal(sample["image"][6:].numpy(), dem.transpose(2, 0, 1))
    mask = sample["mask"].numpy()
    # Window rows 16-31, cols 16-31: glacier left of col 24, non-glacier right of it up to col 39 (unpadded).
    assert (mask[:, :8] == 1).all() and (mask[:, 8:] == 0).all()
    assert sample["region"] == 0 and sample["tile"] == "ALP-1-1"
    # Window centre (row 24, col 24) -> unpadded (20, 16) of 32x32 over lon 10..10.5, lat 46.25..46.
    assert sample["location"].tolist() == pytest.approx([46.25 - 0.25 * 20 / 32, 10 + 0.5 * 16 / 32])


def test_padding_and_hole_are_ignored_or_background() -> None:
    ds = GlacierTileBenchmark(DATA, regions=["ALP"], subregions=["ALP1"], patch_size=16, mode="grid")
    mask = ds[0]["mask"].numpy()  # rows 0-15, cols 0-15
    assert (mask[:4] == IGNORE_INDEX).all() and (mask[:, :8] == IGNORE_INDEX).all()
    assert (mask[10:14, 10:14] == 0).all() and mask[5, 9] == 1


def test_random_mode_epoch_length_and_determinism() -> None:
    ds = GlacierTileBenchmark(DATA, patch_size=16, batch_size=2, seed=3)
    assert ds.n_patches == 4 * 6
    assert ds.steps_per_epoch == (24 // 2) * 4 and len(ds) == 96
    windows = [ds.window(i) for i in range(len(ds))]
    assert all(0 <= r < 40 - 16 and 0 <= c < 48 - 16 for _, r, c in windows)
    assert {t for t, _, _ in windows} == {0, 1, 2, 3}
    again = pickle.loads(pickle.dumps(ds))
    assert [again.window(i) for i in range(10)] == windows[:10]
    ds.set_epoch(1)
    assert [ds.window(i) for i in range(10)] != windows[:10]


def test_per_modality_and_unseen_region() -> None:
    ds = GlacierTileBenchmark(
        DATA,
        track="insar",
        patch_size=16,
        mode="grid",
        image_format="per_modality",
        region_codes=["HMA"],
        unseen_region=True,
    )
    sample = ds[0]
    assert list(sample["image"]) == ["optical", "dem", "sar", "sar_cross", "insar"]
    assert [v.shape[0] for v in sample["image"].values()] == [6, 2, 2, 2, 2]
    assert sample["region"] == 1
    assert ds.norm.method == "reference" and list(ds.norm.modalities) == list(sample["image"])
    assert ds.norm.modalities["optical"].max == REFERENCE_MINMAX["optical"][1]
    assert ds.norm.modalities["sar_cross"].min == REFERENCE_MINMAX["cross_pol_sar"][0]


def test_tile_smaller_than_patch_names_the_tile() -> None:
    with pytest.raises(InputError, match=r"tile 'ALP-1-1' is 40x48 px, smaller than the 64 px patch"):
        GlacierTileBenchmark(DATA, patch_size=64)


def test_missing_group_names_the_tile(tmp_path: Path) -> None:
    path = tmp_path / "broken.hdf5"
    shutil.copy(DATA, path)
    with h5py.File(path, "a") as f:
        del f["HMA-7-3/dem"]
    with pytest.raises(InputError, match=r"tile 'HMA-7-3' has no 'dem' group"):
        GlacierTileBenchmark(path, patch_size=16)


def test_insar_tile_with_some_sar_groups_names_the_tile_and_group(tmp_path: Path) -> None:
    path = tmp_path / "broken.hdf5"
    shutil.copy(DATA, path)
    with h5py.File(path, "a") as f:
        del f["HMA-7-3/cross_pol_sar"]
    with pytest.raises(
        InputError, match=r"tile 'HMA-7-3' has co_pol_sar, in_sar but no 'cross_pol_sar' group"
    ):
        GlacierTileBenchmark(path, track="insar", patch_size=16)
    assert (
        len(GlacierTileBenchmark(path, track="thermal", patch_size=16).tiles) == 2
    )  # other tracks unaffected


def test_no_tile_left_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no tile has the 'thermal' track's groups.*regions \['SC'\]"):
        GlacierTileBenchmark(DATA, track="thermal", regions=["SC"], patch_size=16)
    bad = tmp_path / "x.hdf5"
    bad.write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        GlacierTileBenchmark(bad, patch_size=16)
    with pytest.raises(ConfigError, match="track"):
        GlacierTileBenchmark(DATA, track="sar")  # type: ignore[arg-type]


def test_location_nan_without_bounds(tmp_path: Path) -> None:
    path = tmp_path / "nobounds.hdf5"
    shutil.copy(DATA, path)
    with h5py.File(path, "a") as f:
        del f["SC2-5-9"].attrs["xmin"]
    ds = GlacierTileBenchmark(path, regions=["SC"], patch_size=16, mode="grid")
    assert all(math.isnan(v) for v in ds[0]["location"].tolist())


def test_feeds_the_segmentation_task_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch import Trainer

    monkeypatch.chdir(tmp_path)  # the task's checkpoint callback writes relative to the working directory
    from torch.utils.data import DataLoader

    from glaciermap.datasets.scene import collate_samples
    from glaciermap.tasks.segmentation import SegmentationTask

    ds = GlacierTileBenchmark(DATA, patch_size=16, batch_size=2, mode="grid")
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_samples)))
    assert batch["image"].shape == (2, 8, 16, 16) and batch["mask"].shape == (2, 16, 16)
    task = SegmentationTask(model="light_fusion_resunet", model_kwargs={"filters": 8}, augment=False)
    trainer = Trainer(fast_dev_run=1, accelerator="cpu", logger=False, default_root_dir=tmp_path, enable_progress_bar=False,
                      enable_model_summary=False)  # fmt: skip
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_samples)
    trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert math.isfinite(metrics["train/loss"]) and metrics["train/loss"] > 0, metrics
    assert 0.0 <= metrics["val/iou_glacier"] <= 1.0
