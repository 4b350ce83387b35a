"""Karakoram preprocessing helpers: NDVI emissivity and LST, Brovey pan-sharpening, co-registration check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from glaciermap.errors import ConfigError, InputError
from glaciermap.prepare.karakoram import (
    RHO_M_K,
    TIRS_B10_WAVELENGTH_M,
    brovey_pansharpen,
    check_coregistration,
    coregistration_offset,
    emissivity_from_ndvi,
    gram_schmidt_pansharpen,
    gram_schmidt_stats,
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


def _field(seed: int, shape: tuple[int, int] = (16, 20)) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    rng = np.random.default_rng(seed)
    return np.sin(xx / 3.0 + rng.uniform()) + np.cos(yy / 2.0) + 0.3 * rng.standard_normal(shape)


def test_gram_schmidt_recovers_detail_of_a_linear_scene() -> None:
    """MS_k = a_k X + b_k and a pan showing another field Y with X's mean and std: GS gives a_k Y + b_k."""
    x = _field(0)
    y = x[::-1, ::-1].copy()  # same values, other places: same mean and standard deviation
    a, b = np.array([0.5, 1.0, 1.5, 2.0]), np.array([0.1, 0.0, -0.2, 0.3])
    ms = a[:, None, None] * x + b[:, None, None]
    pan = 3.0 * y + 7.0  # any gain and offset: the pan is matched to the intensity first
    sharp = gram_schmidt_pansharpen(ms, pan)
    np.testing.assert_allclose(sharp, a[:, None, None] * y + b[:, None, None], atol=1e-5)
    np.testing.assert_allclose(sharp.mean(axis=(1, 2)), ms.mean(axis=(1, 2)), atol=1e-5)  # means kept


def test_gram_schmidt_gain_form_equals_the_explicit_transform() -> None:
    """Laben & Brower 2000: forward GS with I first, swap in the matched pan, inverse; equals the gain form."""
    rng = np.random.default_rng(4)
    ms = np.stack([_field(i) + rng.uniform(0, 1) * _field(9) for i in range(4)]).reshape(4, -1)
    pan = (_field(7) + 0.5 * _field(9)).reshape(-1)
    w = np.array([0.1, 0.2, 0.3, 0.4])
    intensity = w @ ms
    comps = [intensity - intensity.mean()]
    phis = []
    for k in range(4):
        band = ms[k] - ms[k].mean()
        phi = [band @ c / (c @ c) for c in comps]
        comps.append(band - sum(p * c for p, c in zip(phi, comps, strict=True)))
        phis.append(phi)
    matched = (pan - pan.mean()) * intensity.std() / pan.std() + intensity.mean()
    comps[0] = matched - intensity.mean()  # the swap
    explicit = np.stack(
        [
            comps[k + 1] + ms[k].mean() + sum(p * c for p, c in zip(phis[k], comps, strict=False))
            for k in range(4)
        ]
    )
    ours = gram_schmidt_pansharpen(ms[:, None, :], pan[None, :], weights=list(w))[:, 0, :]
    np.testing.assert_allclose(ours, explicit, atol=1e-5)
    stats = gram_schmidt_stats(ms[:, None, :], pan[None, :], weights=list(w))
    assert stats.weights == pytest.approx(tuple(w)) and stats.pan_std == pytest.approx(pan.std())
    with pytest.raises(InputError, match="constant"):
        gram_schmidt_pansharpen(np.ones((4, 3, 3)), np.ones((3, 3)))


def test_pansharpen_files_gram_schmidt(tmp_path: Path) -> None:
    ms_path, pan_path = tmp_path / "mux.tif", tmp_path / "nad.tif"
    coarse = np.stack([v + 0.05 * _field(i, (6, 6)) for i, v in enumerate((0.1, 0.2, 0.3, 0.4))])
    with rasterio.open(ms_path, "w", driver="GTiff", width=6, height=6, count=4, dtype="float32", crs="EPSG:32643",
                       transform=from_origin(560000, 4000000, 6, 6)) as dst:  # fmt: skip
        dst.write(coarse.astype(np.float32))
    pan = (0.25 + 0.05 * _field(5, (18, 18))).astype(np.float32)
    with rasterio.open(pan_path, "w", driver="GTiff", width=18, height=18, count=1, dtype="float32",
                       crs="EPSG:32643", transform=from_origin(560000, 4000000, 2, 2)) as dst:  # fmt: skip
        dst.write(pan[None])
    gs = pansharpen_files(ms_path, pan_path, tmp_path / "gs_ms.tif", block_rows=5, method="gram_schmidt")
    whole = pansharpen_files(ms_path, pan_path, tmp_path / "gs1_ms.tif", block_rows=18, method="gram_schmidt")
    with rasterio.open(gs) as src, rasterio.open(whole) as one:
        data = src.read()
        np.testing.assert_array_equal(data, one.read())  # strips share the scene statistics
    with rasterio.open(ms_path) as src:
        assert data.mean(axis=(1, 2)) == pytest.approx(src.read().mean(axis=(1, 2)), abs=0.01)
    with pytest.raises(ConfigError, match="gram_schmidt"):
        pansharpen_files(ms_path, pan_path, tmp_path / "x.tif", method="ihs")  # type: ignore[arg-type]
