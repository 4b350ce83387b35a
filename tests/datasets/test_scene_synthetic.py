"""The scene datasets and data module on scenes of the synthetic generator (clouds, nodata stripes, two CRSs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from glaciermap.constants import IGNORE_INDEX
from glaciermap.datamodules.scenes import SceneDataModule
from glaciermap.datasets.scene import SceneDataset
from glaciermap.datasets.scene_folder import compute_raster_stats, inspect_scene, read_scene_stats
from glaciermap.synthetic.generate import generate_scene

MODALITIES = ["optical", "dem", "thermal", "sar", "insar"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A cloudy Karakoram scene with nodata stripes and a Svalbard scene, 256x256 px each."""
    root = tmp_path_factory.mktemp("synthetic")
    return {
        "karakoram": generate_scene(
            root / "karakoram", preset="karakoram", size=(256, 256), seed=1, clouds=True, nodata_stripes=True
        ),
        "svalbard": generate_scene(root / "svalbard", preset="svalbard", size=(256, 256), seed=2),
    }


def test_generated_scene_passes_validation_and_stats_match_streaming(scenes: dict[str, Path]) -> None:
    info = inspect_scene(scenes["karakoram"], MODALITIES)
    assert info.region == "HMA" and (info.height, info.width) == (256, 256)
    recorded = read_scene_stats(info)
    for modality in MODALITIES:
        streamed = compute_raster_stats(info.rasters[modality], recorded.modalities[modality].bands)
        assert streamed.count == recorded.modalities[modality].count
        np.testing.assert_allclose(streamed.mean, recorded.modalities[modality].mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(streamed.std, recorded.modalities[modality].std, rtol=1e-4, atol=1e-6)


def test_nodata_of_the_generator_is_ignored_and_filled(scenes: dict[str, Path]) -> None:
    folder = scenes["karakoram"]
    ds = SceneDataset(folder, MODALITIES, target="classes", fill_value=0.0)
    left, _, _, top = ds.scene.bounds
    sample = ds[(slice(left, left + 2560.0), slice(top - 2560.0, top))]
    mask, image = sample["mask"], sample["image"]
    assert image.shape == (13, 256, 256) and torch.isfinite(image).all()
    assert set(mask.unique().tolist()) <= {0, 1, 2, IGNORE_INDEX}
    invalid = np.zeros((256, 256), dtype=bool)
    for modality in MODALITIES:
        with rasterio.open(folder / f"{modality}.tif") as src:
            data = src.read(window=Window(0, 0, 256, 256))
        invalid |= (np.isnan(data) | (data == -9999.0)).any(axis=0)
    with rasterio.open(folder / "labels.tif") as src:
        labels = src.read(1)
    assert invalid.any(), "the nodata stripes reach the first window"
    invalid_t = torch.from_numpy(invalid)
    assert (mask[invalid_t] == IGNORE_INDEX).all() and (image[:, invalid_t] == 0.0).all()
    keep = torch.from_numpy(~invalid & (labels != IGNORE_INDEX))
    assert torch.equal(mask[keep], torch.from_numpy(labels.astype(np.int64))[keep])


def test_data_module_over_scenes_in_two_utm_zones(scenes: dict[str, Path]) -> None:
    dm = SceneDataModule(
        train_scenes=[scenes["karakoram"], scenes["svalbard"]],
        val_scenes=[scenes["svalbard"]],
        modalities=["optical", "dem"],
        patch_size=128,
        batch_size=4,
        samples_per_epoch=8,
        seed=0,
    )
    dm.setup("fit")
    assert dm.region_codes == ("HMA", "SVAL")
    batches = list(dm.train_dataloader())
    assert [b["image"].shape for b in batches] == [(4, 8, 128, 128)] * 2
    epsg = {crs.to_epsg() for b in batches for crs in b["crs"]}
    assert epsg <= {32643, 32633} and len(epsg) == 2
    val = list(dm.val_dataloader())  # type: ignore[arg-type]
    assert sum(b["mask"].shape[0] for b in val) == 4
    meta = json.loads((scenes["svalbard"] / "scene.json").read_text())
    centres = torch.cat([b["location"] for b in val]).double().mean(0)
    np.testing.assert_allclose(centres.tolist(), [meta["center_lat"], meta["center_lon"]], atol=0.05)
