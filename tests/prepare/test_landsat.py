"""Landsat Collection 2 products: MTL parsing, Level-2 and Level-1 scaling, thermal band, bad products."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio

from glaciermap.errors import InputError
from glaciermap.prepare.bands import BandFile
from glaciermap.prepare.landsat import parse_mtl, read_landsat
from glaciermap.prepare.scene import PrepareInputs, prepare_scene
from tests.data.landsat.make import LEFT, REFLECTANCE, SIZE, ST_K, SUN_ELEVATION, TOP, make_landsat
from tests.data.prepare import write_dem


def test_mtl_groups_keep_level1_and_level2_apart(tmp_path: Path) -> None:
    folder = make_landsat(tmp_path)
    groups = parse_mtl(next(folder.glob("*_MTL.txt")))
    assert groups["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"]["REFLECTANCE_MULT_BAND_2"] == "2.75E-05"
    assert groups["LEVEL1_RADIOMETRIC_RESCALING"]["REFLECTANCE_MULT_BAND_2"] == "2.0000E-05"
    assert groups["IMAGE_ATTRIBUTES"]["SPACECRAFT_ID"] == "LANDSAT_8"
    as_json = tmp_path / "x_MTL.json"
    as_json.write_text(json.dumps({"LANDSAT_METADATA_FILE": {"IMAGE_ATTRIBUTES": {"SUN_ELEVATION": 40.5}}}))
    assert parse_mtl(as_json)["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"] == "40.5"


def test_level2_scale_and_offset(tmp_path: Path) -> None:
    product = read_landsat(make_landsat(tmp_path))
    assert product.level == "L2" and product.sensor == "landsat89" and product.date == "2020-08-10"
    blue = product.bands["blue"]
    assert blue.path.name == "LC08_L2SP_148035_20200810_20200918_02_T1_SR_B2.TIF"
    assert (blue.scale, blue.offset, blue.nodata) == (2.75e-05, -0.2, 0.0)
    assert product.bands["swir2"].path.name.endswith("_SR_B7.TIF")
    assert product.thermal is not None and product.thermal.path.name.endswith("_ST_B10.TIF")
    assert (product.thermal.scale, product.thermal.offset, product.thermal.unit) == (0.00341802, 149.0, "K")


def _prepared(folder: Path, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    product = read_landsat(folder)
    dem = write_dem(tmp_path / "dem.tif", (LEFT, TOP - SIZE * 30, LEFT + SIZE * 30, TOP))
    out = tmp_path / "scene"
    prepare_scene(
        PrepareInputs(optical=product.bands, dem=BandFile("elevation", dem, unit="m"), thermal=product.thermal,
                      region="HMA", year=2020),
        out,
    )  # fmt: skip
    with rasterio.open(out / "optical.tif") as src:
        optical = src.read()
        assert src.res == (30.0, 30.0)
    with rasterio.open(out / "thermal.tif") as src:
        thermal = src.read(1)
    return optical, thermal


@pytest.mark.parametrize("level", ["L2SP", "L1TP"])
def test_reflectance_and_temperature_values(tmp_path: Path, level: str) -> None:
    optical, thermal = _prepared(make_landsat(tmp_path, level=level), tmp_path)
    # blue, green, red, nir, swir1, swir2 = OLI bands 2, 3, 4, 5, 6, 7; DN quantisation <= 1 step.
    step = 2.75e-5 if level == "L2SP" else 2e-5 / math.sin(math.radians(SUN_ELEVATION))
    for i, band in enumerate((2, 3, 4, 5, 6, 7)):
        assert abs(float(optical[i, 5, 5]) - REFLECTANCE[band]) <= step
    assert optical[0, 0, 0] == -9999.0  # DN 0 fill
    assert thermal[5, 5] == pytest.approx(ST_K, abs=0.02)


def test_bad_products(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no \*_SR_B6.TIF \(swir1, band 6\)"):
        read_landsat(make_landsat(tmp_path / "a", skip=(6,)))
    with pytest.raises(InputError, match=r"no LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\.REFLECTANCE_ADD_BAND_4"):
        read_landsat(make_landsat(tmp_path / "b", skip_key="REFLECTANCE_ADD_BAND_4"))
    with pytest.raises(InputError, match=r"no IMAGE_ATTRIBUTES\.SUN_ELEVATION"):
        read_landsat(make_landsat(tmp_path / "c", level="L1TP", skip_key="SUN_ELEVATION"))
    with pytest.raises(InputError, match=r"no \*_MTL\.txt or \*_MTL\.json"):
        read_landsat(tmp_path)
