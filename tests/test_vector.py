"""Raster regions -> polygons: strip-wise vectorising of a raster file joins regions across strip borders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS

from glaciermap.errors import InputError
from glaciermap.raster import RasterGrid
from glaciermap.vector import polygonise, polygonise_regions

WGS84 = CRS.from_epsg(4326)
T = Affine(0.01, 0.0, 10.0, 0.0, -0.01, 60.0)  # geographic: every row has its own pixel area


def _pattern() -> tuple[np.ndarray, dict[str, list[tuple[int, int]]]]:
    """12 x 10 uint8 raster: 1 inside four known regions, 255 at one nodata pixel, 0 elsewhere."""
    regions = {
        # a U: two columns joined only at row 7, so strips of 3 rows see it as 2 + 2 + 1 pieces
        "u": [(r, 0) for r in range(8)] + [(r, 2) for r in range(8)] + [(7, 1)],
        # a 3 x 3 ring across the border of rows 2 / 3, its hole at (3, 6)
        "ring": [(r, c) for r in range(2, 5) for c in range(5, 8) if (r, c) != (3, 6)],
        # two pixels touching at a corner only: two regions under 4-connectivity
        "single": [(10, 9)],
        "diagonal": [(11, 8)],
    }
    arr = np.zeros((12, 10), dtype=np.uint8)
    for pixels in regions.values():
        for r, c in pixels:
            arr[r, c] = 1
    arr[0, 9] = 255
    return arr, regions


def _write(path: Path, arr: np.ndarray, nodata: float) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1, dtype=arr.dtype,
        crs=WGS84, transform=T, nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(arr, 1)
    return path


@pytest.fixture
def rasters(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray, dict[str, list[tuple[int, int]]]]:
    arr, regions = _pattern()
    rows, cols = np.indices(arr.shape)
    values = (0.5 + rows * 0.01 + cols * 0.001).astype(np.float32)
    mask = _write(tmp_path / "uncertain.tif", arr, 255)
    conf = _write(tmp_path / "confidence.tif", values, -9999.0)
    return mask, conf, arr, values, regions


@pytest.mark.parametrize("strip_pixels", [30, 10, None])  # strips of 3 rows, 1 row, the whole raster
def test_regions_count_area_mean_and_holes(rasters: tuple, strip_pixels: int | None) -> None:
    mask, conf, _, values, regions = rasters
    out = polygonise_regions(mask, values_path=conf, strip_pixels=strip_pixels)
    assert list(out.columns) == ["region_id", "pixels", "area_km2", "mean_value", "geometry"]
    assert out.crs == WGS84 and len(out) == 4
    row_km2 = RasterGrid(WGS84, T, 12, 10).row_areas_m2() / 1e6
    for (_, row), name in zip(out.iterrows(), ["u", "ring", "single", "diagonal"], strict=True):
        pixels = regions[name]
        assert row["pixels"] == len(pixels)
        assert row["area_km2"] == pytest.approx(sum(row_km2[r] for r, _ in pixels), rel=1e-12)
        assert row["mean_value"] == pytest.approx(np.mean([values[r, c] for r, c in pixels]), rel=1e-9)
        geom = row["geometry"]
        assert geom.geom_type == "Polygon" and geom.is_valid
        assert geom.area == pytest.approx(len(pixels) * 1e-4, rel=1e-9)  # square degrees
    assert list(out["region_id"]) == [1, 2, 3, 4]
    ring = out.geometry.iloc[1]
    assert len(ring.interiors) == 1 and shapely.Polygon(ring.interiors[0]).area == pytest.approx(1e-4)
    assert 0.16 < out["area_km2"].iloc[2] < 0.7  # one pixel of 0.01 degrees at 60 N, about 0.62 km2


def test_strips_give_the_same_polygons_as_the_whole_raster(rasters: tuple) -> None:
    mask, _, arr, _, _ = rasters
    whole = polygonise(arr, T, WGS84, values=[1])
    strips = polygonise_regions(mask, strip_pixels=20)
    assert "mean_value" not in strips.columns
    expected = sorted(shapely.normalize(g).wkb for g in whole.geometry)
    got = sorted(shapely.normalize(g).wkb for g in strips.geometry)
    assert len(got) == 4
    for a, b in zip(expected, got, strict=True):
        assert shapely.from_wkb(a).equals(shapely.from_wkb(b))


def test_no_region_and_grid_mismatch(tmp_path: Path, rasters: tuple) -> None:
    empty = polygonise_regions(_write(tmp_path / "zeros.tif", np.zeros((12, 10), np.uint8), 255))
    assert len(empty) == 0 and {"region_id", "pixels", "area_km2"} <= set(empty.columns)
    mask = rasters[0]
    other = tmp_path / "other.tif"
    with rasterio.open(
        other, "w", driver="GTiff", height=5, width=5, count=1, dtype="float32", crs=WGS84, transform=T
    ) as dst:
        dst.write(np.zeros((1, 5, 5), np.float32))
    with pytest.raises(InputError, match="expected the same grid"):
        polygonise_regions(mask, values_path=other)
