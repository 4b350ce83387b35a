"""Tests of split-image tiling, the index and the split-image datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from pyproj import CRS
from rasterio.windows import Window

from glaciermap.datasets.crevasse_labels import export_image_folder
from glaciermap.datasets.split_images import SplitImageDataset, SplitImageFolder, collate_split_images
from glaciermap.datasets.split_index import (
    build_split_index,
    read_split_index,
    scale_max_of_raster,
    utm_epsg_for,
    write_split_index,
)
from glaciermap.transforms.vario import directional_vario, scale_to_uint8, vario_features
from tests.datasets.split_factory import ORIGIN, RES, make_pan, pixel_box, write_aoi

TILE = (30, 40)


def test_index_skips_nodata_and_partial_tiles(tmp_path: Path) -> None:
    pan = make_pan(tmp_path / "pan.tif")  # 100 x 130 px: 3 x 3 complete tiles, a 0 pixel in tile (1, 1)
    index = build_split_index(pan, tile_size=TILE)
    assert len(index) == 8
    assert index["tile_id"].tolist() == list(range(8))
    assert (30, 40) not in set(zip(index["row"], index["col"]))
    assert index[["row", "col"]].iloc[4].tolist() == [30, 80]
    first = index.iloc[0]
    assert first["x"] == pytest.approx(ORIGIN[0] + 20 * RES) and first["y"] == pytest.approx(
        ORIGIN[1] - 15 * RES
    )
    assert index["utm_epsg"].unique().tolist() == [32633]
    np.testing.assert_allclose(index["easting"], index["x"], atol=1e-6)  # the scene is already in that zone
    np.testing.assert_allclose(index.geometry.area, 30 * 40 * RES**2)
    assert CRS.from_user_input(index.crs).to_epsg() == 32633
    assert utm_epsg_for(16.0, 78.6) == 32633 and utm_epsg_for(-70.0, -45.0) == 32719


def test_aoi_in_another_crs_is_reprojected(tmp_path: Path) -> None:
    pan = make_pan(tmp_path / "pan.tif", zero_at=None)
    aoi = write_aoi(tmp_path / "aoi.geojson", pixel_box(-5, -5, 105, 82), crs="EPSG:4326")  # two tile columns
    index = build_split_index(pan, aoi=aoi, tile_size=TILE)
    assert sorted(set(index["col"])) == [0, 40] and len(index) == 6


def test_splitter_reads_by_windows_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pan = make_pan(tmp_path / "pan.tif")
    calls: list[Any] = []
    original = rasterio.io.DatasetReader.read

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("window"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    aoi = write_aoi(tmp_path / "aoi.gpkg", pixel_box(0, 0, 62, 130))  # first two tile rows
    index = build_split_index(pan, aoi=aoi, tile_size=TILE)
    assert len(index) == 5
    assert len(calls) == 2 and all(isinstance(w, Window) for w in calls)
    assert all(w.height == TILE[0] for w in calls)  # one strip of tiles at a time, never the scene
    calls.clear()
    scale_max_of_raster(pan, strip_rows=20)
    assert calls and all(isinstance(w, Window) and w.height <= 20 for w in calls)


def test_index_round_trip_gpkg_and_csv(tmp_path: Path) -> None:
    index = build_split_index(make_pan(tmp_path / "pan.tif"), tile_size=TILE)
    gpkg, csv = write_split_index(index, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["index.csv", "index.gpkg"]
    for path in (gpkg, csv):
        back = read_split_index(path)
        assert back["tile_id"].tolist() == index["tile_id"].tolist()
        np.testing.assert_allclose(back["northing"], index["northing"])
        np.testing.assert_allclose(back.geometry.area, index.geometry.area)
    assert "footprint_wkt" in pd.read_csv(csv).columns


def test_split_image_dataset_sample_contract(tmp_path: Path) -> None:
    pan = make_pan(tmp_path / "pan.tif")
    index = build_split_index(pan, tile_size=TILE)
    labels = pd.DataFrame({"tile_id": [1, 4, 6], "label": ["shear", "Sea Ice", "0"]})
    ds = SplitImageDataset(pan, index, labels=labels)
    assert len(ds) == 3
    sample = ds[1]
    with rasterio.open(pan) as src:
        raw = src.read(1, window=Window(80, 30, 40, 30))
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (1, 30, 40)
    np.testing.assert_array_equal(sample["image"][0].numpy(), raw.astype(np.float32))
    assert sample["label"].dtype == torch.int64 and int(sample["label"]) == 10
    assert int(sample["tile_id"]) == 4
    expected = vario_features(directional_vario(torch.from_numpy(raw.astype(np.float32))))
    assert sample["vario"].dtype == torch.float32 and sample["vario"].shape == (3 * 8,)
    torch.testing.assert_close(sample["vario"], expected)
    x0, y0 = ORIGIN[0] + 80 * RES, ORIGIN[1] - 60 * RES
    assert sample["bounds"].tolist() == pytest.approx([x0, y0, x0 + 40 * RES, y0 + 30 * RES])
    assert CRS.from_user_input(sample["crs"]).to_epsg() == 32633
    batch = collate_split_images([ds[0], ds[1]])
    assert (
        batch["image"].shape == (2, 1, 30, 40)
        and batch["label"].tolist() == [2, 10]
        and len(batch["crs"]) == 2
    )
    unlabelled = SplitImageDataset(pan, index, vario=False)
    assert len(unlabelled) == 8 and int(unlabelled[0]["label"]) == -1 and "vario" not in unlabelled[0]


def test_uint8_intensities_and_legacy_statistics(tmp_path: Path) -> None:
    pan = make_pan(tmp_path / "pan.tif")
    with rasterio.open(pan) as src:
        data = src.read(1)
    data_masked = data[::10, ::10][data[::10, ::10] != 0]
    m = scale_max_of_raster(pan)
    assert m == pytest.approx(min(data_masked.mean() + 4 * data_masked.std(), data_masked.max()))
    with rasterio.open(tmp_path / "holes.tif", "w", **{**rasterio.open(pan).profile}) as dst:
        holes = np.full_like(data, 1000)
        holes[::10, ::10].flat[::20] = 2000  # 5 % of the 1/10 subsample
        holes[:50] = 0  # masked: M = mean + 4 std of the valid half (about 1,900); legacy: the maximum
        dst.write(holes, 1)
    assert scale_max_of_raster(tmp_path / "holes.tif", mask_nodata=False) == 2000.0
    assert 1700 < scale_max_of_raster(tmp_path / "holes.tif") < 1999
    index = build_split_index(pan, tile_size=TILE)
    ds = SplitImageDataset(pan, index, intensity="uint8", vario_mode="legacy_uint8")
    sample = ds[0]
    assert float(sample["image"].max()) <= 255 and float(sample["image"].min()) >= 1
    expected = scale_to_uint8(data[:30, :40], m)
    np.testing.assert_array_equal(sample["image"][0].numpy(), expected.numpy().astype(np.float32))
    legacy = directional_vario(expected, mode="legacy_uint8")
    torch.testing.assert_close(sample["vario"], vario_features(legacy))
    # float mode on 8-bit intensities: the tile goes in as uint8 (exact int8 product path)
    calls: list[int] = []
    original = torch._int_mm

    def counting(*args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "_int_mm", counting)
        exact = SplitImageDataset(pan, index, intensity="uint8")[0]["vario"]
    assert len(calls) == 4  # one product per direction of the one tile
    reference = directional_vario(expected.to(torch.float64), dtype=torch.float64)
    torch.testing.assert_close(exact, vario_features(reference).float(), rtol=1e-6, atol=1e-4)


def test_folder_export_and_import_round_trip(tmp_path: Path) -> None:
    pan = make_pan(tmp_path / "pan.tif")
    index = build_split_index(pan, tile_size=TILE)
    labels = pd.DataFrame({"tile_id": [0, 1, 2], "label": [3, 3, 9]})
    ds = SplitImageDataset(pan, index, intensity="uint8")
    assert export_image_folder(ds, labels, tmp_path / "folder") == 3
    assert sorted(p.name for p in (tmp_path / "folder" / "3").iterdir()) == ["3_0_0.png", "3_1_0.png"]
    folder = SplitImageFolder(tmp_path / "folder")
    assert len(folder) == 3 and folder.labels.tolist() == [3, 3, 9]
    back = folder[2]
    assert int(back["tile_id"]) == 2
    np.testing.assert_array_equal(back["image"][0].numpy(), ds.uint8_tile(2).astype(np.float32))
    torch.testing.assert_close(back["vario"], ds[2]["vario"])
    export_image_folder(ds, labels, tmp_path / "ref", folder_ids="reference")
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == ["11", "4"]  # Melt, Parallel in class_enum
    assert SplitImageFolder(tmp_path / "ref", folder_ids="reference").labels.tolist() == [9, 3, 3]
