"""ground_spacing: pixel sizes in metres on projected (any unit) and geographic grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS

from glaciermap.terrain import ground_spacing, slope_aspect


def test_projected_metres_and_feet() -> None:
    dx, dy = ground_spacing(CRS.from_epsg(32643), Affine(10, 0, 0, 0, -10, 0), range(3))
    assert dx.tolist() == [10.0] * 3 and dy.tolist() == [10.0] * 3
    dx, _ = ground_spacing(CRS.from_epsg(2264), Affine(10, 0, 0, 0, -10, 0), range(1))  # US survey feet
    assert dx[0] == pytest.approx(3.048006, rel=1e-6)


def test_geographic_rows_shrink_with_latitude() -> None:
    arcsec = 1 / 3600
    dx, dy = ground_spacing(CRS.from_epsg(4326), Affine(arcsec, 0, 75, 0, -arcsec, 60.0), [0, 1800])
    assert dx[0] == pytest.approx(15.49, abs=0.02)  # cos(60) * 30.9 m on WGS84
    assert dy[0] == pytest.approx(30.95, abs=0.02)  # meridional arc of 1 arcsec at 60 N
    assert dx[1] > dx[0]  # half a degree further south


def test_slope_on_a_geographic_grid_is_in_degrees_from_metres() -> None:
    arcsec = 1 / 3600
    transform = Affine(arcsec, 0, 75, 0, -arcsec, 36.0)
    dx, dy = ground_spacing(CRS.from_epsg(4326), transform, range(5))
    z = np.repeat((np.arange(5)[::-1] * dy.mean() * 0.2)[:, None], 5, axis=1)  # rises 0.2 m per m northwards
    slope, _ = slope_aspect(z, dx, dy)
    assert slope[2, 2] == pytest.approx(math.degrees(math.atan(0.2)), abs=0.01)
