"""Reading the class raster and the DEM: values, grids, reprojection and the errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from glaciermap.errors import ConfigError, InputError
from glaciermap.inventory.inputs import DemReader, read_classes
from tests.data import inventory as scenes


def test_read_classes_maps_nodata_and_binary_maps(tmp_path: Path) -> None:
    arr = np.array([[0, 1, 2], [255, 7, 1]], dtype=np.uint8)
    path = scenes.write_raster(tmp_path / "c.tif", arr, nodata=7)
    classes, grid = read_classes(path)
    assert classes.tolist() == [[0, 1, 2], [255, 255, 1]]
    assert grid.row_area_m2.tolist() == [100.0, 100.0] and grid.pixel_size_m == 10.0
    binary = scenes.write_raster(tmp_path / "b.tif", np.array([[0, 1], [1, 0]], dtype=np.int16))
    assert read_classes(binary)[0].tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "file not found"),
        (lambda p: (p.write_bytes(b"not a tiff at all" * 10), p)[1], "not a readable raster"),
        (lambda p: scenes.write_raster(p, np.array([[0, 3]], dtype=np.uint8)), "unexpected class values"),
        (lambda p: scenes.write_raster(p, np.full((3, 3), 255, dtype=np.uint8)), "nodata everywhere"),
        (lambda p: scenes.write_raster(p, np.zeros((3, 3), dtype=np.float32)), "integer class raster"),
        (lambda p: scenes.write_raster(p, np.zeros((3, 3), dtype=np.uint8), crs=None), "no CRS"),
    ],
)
def test_read_classes_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path / "classes.tif")
    with pytest.raises(InputError, match=message) as err:
        read_classes(path)
    assert "classes.tif" in str(err.value)


def test_read_classes_rejects_even_median_window(tmp_path: Path) -> None:
    path = scenes.write_raster(tmp_path / "c.tif", np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="odd"):
        read_classes(path, median_filter=2)


def test_dem_reader_same_grid_and_nodata(tmp_path: Path) -> None:
    cls_path, dem_path = scenes.write_scene(tmp_path)
    dem = scenes.elevation()
    dem[5, 5] = -9999.0
    scenes.write_raster(dem_path, dem, nodata=-9999.0)
    _, grid = read_classes(cls_path)
    with DemReader(dem_path, grid) as reader:
        assert reader.same_grid
        window = reader.read(4, 3, 3, 4)
    assert np.isnan(window[1, 2])
    assert window[0, 0] == dem[4, 3]


def test_dem_reader_reprojects_other_grids(tmp_path: Path) -> None:
    cls_path, _ = scenes.write_scene(tmp_path)
    _, grid = read_classes(cls_path)
    # Every other 10 m pixel as a 20 m DEM (its pixel centres on those of the 10 m pixels sampled),
    # read back bilinearly on the 10 m grid: exact up to the curvature of the valley (< 0.1 m).
    coarse = scenes.elevation()[::2, ::2]
    t = Affine(20.0, 0, scenes.ORIGIN[0] - 5.0, 0, -20.0, scenes.ORIGIN[1] + 5.0)
    path = scenes.write_raster(tmp_path / "dem20.tif", coarse, transform=t, nodata=-9999.0)
    with DemReader(path, grid) as reader:
        assert not reader.same_grid
        z = reader.read(20, 100, 40, 100)
    assert np.nanmax(np.abs(z - scenes.elevation()[20:60, 100:200])) < 0.1


def test_dem_reader_errors(tmp_path: Path) -> None:
    cls_path, _ = scenes.write_scene(tmp_path)
    _, grid = read_classes(cls_path)
    far = Affine(10.0, 0, 100_000.0, 0, -10.0, 1_000_000.0)
    path = scenes.write_raster(tmp_path / "far.tif", scenes.elevation(), transform=far, nodata=-9999.0)
    with pytest.raises(InputError, match="does not overlap"):
        DemReader(path, grid)
    nocrs = scenes.write_raster(tmp_path / "nocrs.tif", scenes.elevation(), crs=None)
    with pytest.raises(InputError, match="no CRS"):
        DemReader(nocrs, grid)
    with pytest.raises(InputError, match="file not found"):
        DemReader(tmp_path / "missing.tif", grid)
