"""Karakoram preprocessing helpers: NDVI emissivity and LST, Brovey pan-sharpening, co-registration check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from glaciermap.errors import InputError
from glaciermap.prepare.karakoram import (
    RHO_M_K,
    TIRS_B10_WAVELENGTH_M,
    brovey_pansharpen,
    check_coregistration,
    coregistration_offset,
    emissivity_from_ndvi,
    land_surface_temperature,
    ndvi,
    pansharpen_files,
)


def test_emissivity_from_ndvi() -> None:
    eps = emissivity_from_ndvi(np.array([-0.3, 0.2, 0.53, 0.86, 0.95]))
    # FVC = 0, 0, 0.25, 1, 1 -> eps = 0.97, 0.97, 0.975, 0.99, 0.99
    np.testing.assert_allclose(eps, [0.97, 0.97, 0.975, 0.99, 0.99])
    assert ndvi(np.array([0.1]), np.array([0.3]))[0] == pytest.approx(0.5)
    assert np.isnan(ndvi(np.array([0.0]), np.array([0.0]))[0])


def test_lst_inverse_planck_and_smw() -> None:
    red, nir, tb = np.full(3, 0.2), np.full(3, 0.2), np.array([260.0, 270.0, np.nan])  # NDVI 0 -> eps 0.97
    lst = land_surface_temperature(red, nir, tb)
    expected = 260.0 / (1 + (TIRS_B10_WAVELENGTH_M * 260.0 / RHO_M_K) * math.log(0.97))
    assert lst[0] == pytest.approx(expected, rel=1e-6) and lst[0] > 260.0 and np.isnan(lst[2])
    assert expected - 260.0 == pytest.approx(1.57, abs=0.02)  # eps 0.97 at 260 K: LST is 1.6 K above Tb
    smw = land_surface_temperature(red, nir, tb, smw_coefficients=(1.0, 0.0, 0.0))
    assert smw[1] == pytest.approx(270.0 / 0.97, rel=1e-6)
    with pytest.raises(InputError, match="expected kelvin"):
        land_surface_temperature(red, nir, tb - 273.15)
    with pytest.raises(InputError, match="expected the three bands on one grid"):
        land_surface_temperature(red[:2], nir, tb)


def test_brovey_keeps_ratios_and_takes_pan_intensity() -> None:
    ms = np.stack([np.full((4, 4), v) for v in (0.1, 0.2, 0.3, 0.4)])
    pan = np.full((4, 4), 0.5)
    pan[0, 0] = 0.0
    sharp = brovey_pansharpen(ms, pan)
    np.testing.assert_allclose(sharp[:, 1, 1], [0.2, 0.4, 0.6, 0.8], rtol=1e-6)  # I = 0.25, PAN / I = 2
    np.testing.assert_allclose(sharp[:, 2, 2] / sharp[0, 2, 2], [1, 2, 3, 4], rtol=1e-6)
    assert (sharp[:, 0, 0] == 0).all()
    with pytest.raises(InputError, match="one positive weight each"):
        brovey_pansharpen(ms, pan, weights=[1, 1])


def test_pansharpen_files_on_the_pan_grid(tmp_path: Path) -> None:
    ms_path, pan_path = tmp_path / "mux.tif", tmp_path / "nad.tif"
    with rasterio.open(ms_path, "w", driver="GTiff", width=6, height=6, count=4, dtype="float32", crs="EPSG:32643",
                       transform=from_origin(560000, 4000000, 6, 6)) as dst:  # fmt: skip
        dst.write(np.stack([np.full((6, 6), v, dtype=np.float32) for v in (0.1, 0.2, 0.3, 0.4)]))
    pan = np.tile(np.array([0.2, 0.3], dtype=np.float32), (18, 9))
    with rasterio.open(pan_path, "w", driver="GTiff", width=18, height=18, count=1, dtype="float32",
                       crs="EPSG:32643", transform=from_origin(560000, 4000000, 2, 2)) as dst:  # fmt: skip
        dst.write(pan[None])
    out = pansharpen_files(ms_path, pan_path, tmp_path / "zy3_ms.tif", block_rows=5)
    with rasterio.open(out) as src:
        assert src.res == (2.0, 2.0) and src.count == 4 and src.crs.to_epsg() == 32643
        data = src.read()
    np.testing.assert_allclose(data[3, 9, 8:10], [0.4 * 0.2 / 0.25, 0.4 * 0.3 / 0.25], rtol=1e-5)


def test_coregistration_finds_a_known_shift() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(80, 80))
    base = (base + np.roll(base, 1, 0) + np.roll(base, 1, 1)) / 3  # some spatial correlation
    moved = np.roll(base, (3, -2), axis=(0, 1))
    result = coregistration_offset(base[10:70, 10:70], moved[10:70, 10:70], pixel_size=2.0)
    assert result.shift_px == pytest.approx((-3.0, 2.0), abs=0.11)
    assert result.shift_m == pytest.approx((-6.0, 4.0), abs=0.25)
    assert check_coregistration(base, base).magnitude_px == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError, match=r"LST and ZY-3 are shifted by dy=-3.0, dx=\+2.0 px"):
        check_coregistration(base[10:70, 10:70], moved[10:70, 10:70], what="LST and ZY-3")
    with pytest.raises(InputError, match="constant or all nodata"):
        coregistration_offset(np.zeros((10, 10)), base[:10, :10])
