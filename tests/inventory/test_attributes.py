"""Per-glacier attributes, slope/aspect and the buffer uncertainty on hand-computed cases."""

from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from glaciermap.inventory.attributes import (
    aspect_sector,
    circular_mean_deg,
    expand_hypsometry,
    glacier_attributes,
    hypsometry,
    longest_flowline_m,
)
from glaciermap.inventory.uncertainty import buffer_uncertainty_km2, metric_crs
from glaciermap.terrain import slope_aspect


@pytest.mark.parametrize(
    ("angle", "sector"),
    [(0.0, 1), (22.4, 1), (22.6, 2), (90.0, 3), (180.0, 5), (202.4, 5), (247.6, 7), (337.6, 1), (359.9, 1)],
)
def test_aspect_sectors(angle: float, sector: int) -> None:
    assert aspect_sector(angle) == sector
    assert aspect_sector(math.nan) == 0


def test_circular_mean_wraps_around_north() -> None:
    assert circular_mean_deg(np.array([350.0, 10.0])) == pytest.approx(0.0, abs=1e-9) or circular_mean_deg(
        np.array([350.0, 10.0])
    ) == pytest.approx(360.0)
    assert circular_mean_deg(np.array([80.0, 100.0, np.nan])) == pytest.approx(90.0)
    assert math.isnan(circular_mean_deg(np.array([0.0, 180.0])))
    assert math.isnan(circular_mean_deg(np.array([np.nan])))


def test_hypsometry_bands() -> None:
    z = np.array([4999.0, 5000.0, 5049.9, 5050.0, 5210.0])
    bands = hypsometry(z, np.full(5, 1e6))
    assert bands == {4950: 1.0, 5000: 2.0, 5050: 1.0, 5200: 1.0}
    table = expand_hypsometry([json.dumps({"5000": 1.5}), json.dumps({"4950": 0.5, "5100": 2.0})])
    assert table == {4950: [0.0, 0.5], 5000: [1.5, 0.0], 5100: [0.0, 2.0]}


@pytest.mark.parametrize(
    ("p", "q", "aspect"), [(0.0, -0.5, 0.0), (-0.5, 0.0, 90.0), (0.0, 0.5, 180.0), (0.5, 0.0, 270.0)]
)
def test_slope_aspect_of_planes(p: float, q: float, aspect: float) -> None:
    # z = p x + q y_north on 30 m x 20 m pixels (rows run south): downslope azimuth as in the table.
    dx, dy = 30.0, 20.0
    rows, cols = np.mgrid[0:6, 0:7]
    z = p * cols * dx + q * (-rows * dy) + 1000.0
    slope, asp = slope_aspect(z, dx, dy)
    expected = math.degrees(math.atan(math.hypot(p, q)))
    assert np.allclose(slope[1:-1, 1:-1], expected)
    assert np.allclose(asp[1:-1, 1:-1], aspect)
    assert np.isnan(slope[0]).all() and np.isnan(asp[:, -1]).all()


def test_slope_with_row_spacing_and_nodata() -> None:
    z = np.tile(np.arange(5, dtype=np.float64) * 10.0, (5, 1))  # +10 m per column eastwards
    dx = np.array([10.0, 10.0, 20.0, 10.0, 10.0])  # pixel widths per row (geographic grids)
    slope, asp = slope_aspect(z, dx, 10.0)
    assert slope[2, 2] == pytest.approx(math.degrees(math.atan(0.5)))
    assert slope[1, 2] == pytest.approx(45.0)
    assert asp[2, 2] == pytest.approx(270.0)
    z[2, 2] = np.nan
    slope, _ = slope_aspect(z, 10.0, 10.0)
    assert np.isnan(slope[1:4, 1:4]).all()
    flat_slope, flat_aspect = slope_aspect(np.zeros((4, 4)), 10.0, 10.0)
    assert (flat_slope[1:-1, 1:-1] == 0).all() and np.isnan(flat_aspect).all()


def test_longest_flowline_straight_bent_and_coarsened(monkeypatch: pytest.MonkeyPatch) -> None:
    import glaciermap.inventory.attributes as attributes

    monkeypatch.setattr(attributes, "LMAX_STRAIGHT_PIXELS", 0)  # path search even for small shapes
    strip = np.zeros((5, 60), dtype=bool)
    strip[2, 5:55] = True
    assert longest_flowline_m(strip, (2, 5), 10.0, 10.0) == pytest.approx(490.0)
    ell = np.zeros((40, 40), dtype=bool)
    ell[0:30, 0] = True
    ell[29, 0:30] = True  # an L: the path goes round the corner, cutting it with one diagonal step
    assert longest_flowline_m(ell, (0, 0), 10.0, 10.0) == pytest.approx(280.0 + 10 * math.sqrt(2) + 280.0)
    monkeypatch.setattr(attributes, "LMAX_MAX_PIXELS", 100)
    big = np.zeros((50, 400), dtype=bool)
    big[20:30, 0:400] = True
    coarse = longest_flowline_m(big, (25, 0), 10.0, 10.0)
    assert coarse == pytest.approx(3990.0, rel=0.02)
    monkeypatch.setattr(attributes, "LMAX_STRAIGHT_PIXELS", 300)
    assert longest_flowline_m(ell, (0, 0), 10.0, 20.0) == pytest.approx(math.hypot(290.0, 580.0))


def test_glacier_attributes_of_a_tilted_rectangle() -> None:
    h, w = 12, 22
    mask = np.zeros((h, w), dtype=bool)
    mask[1:11, 1:21] = True  # 10 x 20 pixels of 10 m: 0.02 km2
    cols = np.arange(w)[None, :].repeat(h, 0)
    z = 4000.0 + 5.0 * cols  # rising 0.5 m/m eastwards: faces west
    debris = np.zeros_like(mask)
    debris[1:11, 1:3] = True
    slope, aspect = slope_aspect(z, 10.0, 10.0)
    rows = np.full(h, 100.0), np.full(h, 10.0), np.full(h, 10.0)
    a = glacier_attributes(mask, z, slope, aspect, debris, *rows)
    zin = z[mask]
    assert a["area_km2"] == pytest.approx(0.02)
    assert a["area_debris_km2"] == pytest.approx(0.002)
    assert (a["zmin_m"], a["zmax_m"]) == (4005.0, 4100.0)
    assert a["zmean_m"] == pytest.approx(zin.mean()) and a["zmed_m"] == pytest.approx(np.median(zin))
    assert a["slope_deg"] == pytest.approx(math.degrees(math.atan(0.5)))
    assert a["aspect_deg"] == pytest.approx(270.0) and a["aspect_sec"] == 7
    assert json.loads(a["hypso_50m"]) == {
        "4000": pytest.approx(0.009),
        "4050": pytest.approx(0.010),
        "4100": pytest.approx(0.001),
    }
    assert a["term_col"] == 1  # the lowest column
    assert a["lmax_m"] == pytest.approx(math.hypot(190.0, 90.0))  # 200 px: the straight distance
    assert a["dem_cover"] == 1.0
    none = glacier_attributes(mask, np.full((h, w), np.nan), slope, aspect, debris, *rows)
    assert math.isnan(none["zmean_m"]) and none["aspect_sec"] == 0 and none["term_row"] == -1
    assert none["dem_cover"] == 0.0 and none["hypso_50m"] == "{}"


def test_buffer_uncertainty_of_a_rectangle_in_projected_and_geographic_crs() -> None:
    gdf = gpd.GeoDataFrame(geometry=[box(0, 0, 1000, 500)], crs="EPSG:32643")
    d = 20.0
    joins = 16 / 2 * d * d * math.sin(2 * math.pi / 16)
    expected = ((1040 * 540 - 4 * d * d + joins) - 960 * 460) / 2 / 1e6
    assert buffer_uncertainty_km2(gdf, 2, 10.0)[0] == pytest.approx(expected, rel=1e-9)
    assert buffer_uncertainty_km2(gdf, 0, 10.0)[0] == 0.0
    geo = gdf.set_geometry(gdf.geometry.translate(500_000, 4_000_000)).to_crs("EPSG:4326")
    assert metric_crs(geo).is_projected
    assert buffer_uncertainty_km2(geo, 2, 10.0)[0] == pytest.approx(expected, rel=2e-3)
