"""Sentinel-2 products: metadata, the baseline 04.00 offset, band discovery, and prepared reflectance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from glaciermap.constants import RASTER_NODATA
from glaciermap.errors import InputError
from glaciermap.prepare.bands import BandFile
from glaciermap.prepare.scene import PrepareInputs, prepare_scene
from glaciermap.prepare.sentinel2 import read_sentinel2
from tests.data.prepare import SLOPE_DEG, write_dem
from tests.data.sentinel2.make import LEFT, NODATA, REFLECTANCE, SIZE, TOP, make_safe

BOUNDS = (LEFT, TOP - SIZE * 10, LEFT + SIZE * 10, TOP)


def test_l2a_baseline_05_offsets_and_bands(tmp_path: Path) -> None:
    product = read_sentinel2(make_safe(tmp_path))
    assert product.level == "L2A" and product.baseline == 5.09 and product.quantification == 10000
    assert product.offsets["B02"] == -1000 and len(product.offsets) == 13
    assert product.date == "2023-08-01" and product.spacecraft == "Sentinel-2A"
    blue, swir1 = product.bands["blue"], product.bands["swir1"]
    assert blue.path.name == "T43SFA_20230801T055641_B02_10m.jp2" and blue.path.parent.name == "R10m"
    assert swir1.path.name == "T43SFA_20230801T055641_B11_20m.jp2"
    assert product.bands["nir"].path.name.endswith("_B08_10m.jp2")
    assert blue.scale == pytest.approx(1e-4) and blue.offset == pytest.approx(-0.1) and blue.nodata == 0


def test_l1c_old_baseline_has_no_offset(tmp_path: Path) -> None:
    product = read_sentinel2(make_safe(tmp_path, level="L1C", baseline="02.14"))
    assert product.level == "L1C" and product.offsets == {}
    assert (
        product.bands["red"].offset == 0.0
        and product.bands["red"].path.name == "T43SFA_20230801T055641_B04.jp2"
    )


def test_offset_missing_at_new_baseline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"baseline 05.09 but no BOA_ADD_OFFSET.*\+0.1"):
        read_sentinel2(make_safe(tmp_path, with_offsets=False))


def test_missing_band_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no image of band B11 \(swir1\)"):
        read_sentinel2(make_safe(tmp_path, skip=("B11",)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no MTD_MSIL1C\.xml or MTD_MSIL2A\.xml"):
        read_sentinel2(tmp_path / "empty")


def _prepare(product: Path, out: Path, dem: Path) -> dict[str, np.ndarray]:
    s2 = read_sentinel2(product)
    prepare_scene(
        PrepareInputs(optical=s2.bands, dem=BandFile("elevation", dem, unit="m"), region="HMA", year=2023), out,
        block_rows=7,
    )  # fmt: skip
    with rasterio.open(out / "optical.tif") as src:
        optical = src.read()
        assert src.crs.to_epsg() == 32643 and src.res == (10.0, 10.0) and src.shape == (SIZE, SIZE)
    with rasterio.open(out / "dem.tif") as src:
        dem_values = src.read()
    return {"optical": optical, "dem": dem_values}


def test_offsets_make_baselines_agree(tmp_path: Path) -> None:
    """The same surface processed before (02.14, no shift) and after (05.09, DN + 1000) baseline 04.00."""
    dem = write_dem(tmp_path / "dem.tif", BOUNDS)
    new = _prepare(make_safe(tmp_path / "a"), tmp_path / "new", dem)["optical"]
    old = _prepare(make_safe(tmp_path / "b", level="L1C", baseline="02.14"), tmp_path / "old", dem)["optical"]
    np.testing.assert_allclose(new, old, atol=1e-6)
    rows = np.arange(SIZE)[:, None]
    np.testing.assert_allclose(
        new[0, NODATA:, :], np.broadcast_to(0.30 + 0.001 * rows[NODATA:], (SIZE - NODATA, SIZE)), atol=1e-6
    )
    assert (new[0, :NODATA, :NODATA] == RASTER_NODATA).all() and (new[1, :NODATA, :NODATA] > 0).all()
    # 20 m SWIR bilinear on the 10 m grid: row r of the 10 m grid sits at 20 m row (r + 0.5) / 2 - 0.5.
    expected = REFLECTANCE["B11"] + 0.001 * ((np.arange(2, SIZE - 2) + 0.5) / 2 - 0.5)
    np.testing.assert_allclose(new[4, 2:-2, 20], expected, atol=2e-5)


def test_dem_resampled_and_slope(tmp_path: Path) -> None:
    dem = write_dem(tmp_path / "dem.tif", BOUNDS)  # geographic 1" DEM -> UTM 10 m grid
    out = _prepare(make_safe(tmp_path / "a"), tmp_path / "s", dem)["dem"]
    northing = TOP - (np.arange(SIZE) + 0.5) * 10
    np.testing.assert_allclose(out[0, NODATA:, 20], 3000 + 0.2 * (northing[NODATA:] - 3999000), atol=0.5)
    np.testing.assert_allclose(out[1, NODATA:, :], SLOPE_DEG, atol=0.3)
