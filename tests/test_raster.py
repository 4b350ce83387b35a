"""The raster grid: same-grid test, strips, and the one pixel-area function shared by every part."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from glaciermap.baselines import band_ratio_model
from glaciermap.errors import InputError
from glaciermap.inference import map_scene
from glaciermap.inventory import build_inventory
from glaciermap.raster import RasterGrid, row_windows
from tests.data.scenes import write_scene

WGS84 = CRS.from_epsg(4326)
UTM = CRS.from_epsg(32643)


def test_geographic_row_areas_sum_to_the_ellipsoid_zone_area() -> None:
    """A 1 x 1 degree cell at the equator and the whole band 0..90 N against closed forms (WGS84)."""
    grid = RasterGrid(WGS84, Affine(1.0, 0, 0.0, 0, -1.0, 90.0), 90, 1)
    area, dx, dy = grid.row_geometry()
    a, f = 6378137.0, 1 / 298.257223563
    b = a * (1 - f)
    e = math.sqrt(1 - (b / a) ** 2)
    # Area of the ellipsoid between the equator and a pole: half the total surface (Snyder 1987, Eq. 3-12).
    hemisphere = math.pi * a**2 * (1 + (1 - e**2) / e * math.atanh(e))
    assert area.sum() * 360 == pytest.approx(hemisphere, rel=1e-12)
    assert area[-1] > area[0] * 50  # the equator row is far larger than the polar row
    assert dx[-1] == pytest.approx(2 * math.pi * a / 360 * math.cos(math.radians(0.5)), rel=1e-5)
    assert dy.mean() == pytest.approx(10_001_965.7 / 90, rel=1e-6)  # quarter meridian of WGS84


def test_projected_row_areas_and_units() -> None:
    grid = RasterGrid(UTM, Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0), 3, 4)
    area, dx, dy = grid.row_geometry()
    np.testing.assert_array_equal(area, [100.0] * 3)
    np.testing.assert_array_equal(dx * dy, area)
    feet = RasterGrid(CRS.from_epsg(2229), Affine(10.0, 0, 0.0, 0, -10.0, 0.0), 2, 2)  # US survey feet
    assert feet.row_areas_m2()[0] == pytest.approx((10 * 1200 / 3937) ** 2, rel=1e-9)
    assert grid.area_m2(np.ones((2, 4), bool), row0=1) == 800.0
    with pytest.raises(InputError, match="no CRS"):
        RasterGrid(None, grid.transform, 3, 4).row_geometry()


def test_same_grid_test_and_strips() -> None:
    grid = RasterGrid(UTM, Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0), 30, 40)
    assert (
        grid.difference(RasterGrid(UTM, Affine(10.0, 0, 500000.0 + 1e-6, 0, -10.0, 4000000.0), 30, 40))
        is None
    )
    shifted = RasterGrid(UTM, Affine(10.0, 0, 500001.0, 0, -10.0, 4000000.0), 30, 40)
    with pytest.raises(InputError, match=r"a\.tif and b\.tif have different geotransforms"):
        grid.check_same(shifted, "a.tif", "b.tif")
    with pytest.raises(InputError, match=r"30 x 40 pixels but b\.tif has 30 x 41"):
        grid.check_same(RasterGrid(UTM, grid.transform, 30, 41), "a.tif", "b.tif")
    with pytest.raises(InputError, match="is in CRS"):
        grid.check_same(RasterGrid(WGS84, grid.transform, 30, 40), "a.tif", "b.tif")
    strips = grid.strips(max_pixels=40 * 7)
    assert [w.row_off for w in strips] == [0, 7, 14, 21, 28] and strips[-1].height == 2
    assert row_windows(5, 0)[0].height == 5
    assert grid.bounds == (500000.0, 3999700.0, 500400.0, 4000000.0)


def _glacier_scene(folder: Path, crs: str, pixel: float, origin: tuple[float, float]) -> Path:
    """A scene whose optical bands pass the band-ratio rule inside a blob (glacier) and fail it outside."""
    size = 96
    write_scene(
        folder, size=(size, size), pixel_size=pixel, crs=crs, origin=origin, modalities=("optical", "dem")
    )
    rows, cols = np.mgrid[0:size, 0:size]
    ice = ((rows - 40) ** 2 + (cols - 50) ** 2 < 30**2) | ((rows > 75) & (cols < 20))
    ice_bands = np.array([0.6, 0.55, 0.5, 0.4, 0.05, 0.04], np.float32)
    rock = np.array([0.1, 0.12, 0.14, 0.2, 0.25, 0.2], np.float32)
    data = np.where(ice[None], ice_bands[:, None, None], rock[:, None, None]).astype(np.float32)
    with rasterio.open(folder / "optical.tif", "r+") as dst:
        dst.write(data)
    return folder


@pytest.mark.parametrize(
    ("crs", "pixel", "origin"),
    [("EPSG:4326", 0.0005, (76.0, 61.0)), ("EPSG:32643", 10.0, (500000.0, 4000000.0))],
    ids=["geographic", "utm"],
)
def test_map_summary_and_inventory_agree_on_area(
    tmp_path: Path, crs: str, pixel: float, origin: tuple[float, float]
) -> None:
    """summary.json (mapping) and the inventory report the same glacier area to 0.01 %."""
    scene = _glacier_scene(tmp_path / "scene", crs, pixel, origin)
    result = map_scene(
        band_ratio_model(), scene, tmp_path / "map", window_size=32, device="cpu", quicklook=False
    )
    inventory = build_inventory(
        result.files["classes"], scene / "dem.tif", None, min_area_km2=0.0, method="none"
    )
    mapped = result.summary["glacier_area_km2"]
    inventoried = float(inventory.glaciers["area_km2"].sum())
    assert mapped > 0.05
    assert inventoried == pytest.approx(mapped, rel=1e-4)
    assert len(inventory.glaciers) == 2
