"""Raster regions to polygons: values, holes, validity, the light-weight iterator."""

from __future__ import annotations

import numpy as np
from affine import Affine

from glaciermap.inventory.polygonise import iter_polygons, polygonise

T = Affine(10.0, 0, 1000.0, 0, -10.0, 2000.0)


def test_iter_polygons_keeps_holes_and_values() -> None:
    arr = np.zeros((9, 9), dtype=np.int32)
    arr[1:8, 1:8] = 5
    arr[2, 2] = 0  # two nunataks of different shapes
    arr[4:6, 4:7] = 0
    arr[0, 8] = 7
    got = list(iter_polygons(arr, T))
    assert sorted(v for _, v in got) == [5, 7]
    poly = next(g for g, v in got if v == 5)
    assert poly.is_valid and len(poly.interiors) == 2
    assert poly.area == (49 - 1 - 6) * 100.0
    assert poly.bounds == (1010.0, 1920.0, 1080.0, 1990.0)
    assert [v for _, v in iter_polygons(arr, T, values=[7])] == [7]


def test_polygonise_connectivity_and_empty() -> None:
    arr = np.zeros((4, 4), dtype=np.uint8)
    arr[0, 0] = arr[1, 1] = 1  # diagonal neighbours
    assert len(polygonise(arr, T, "EPSG:32643")) == 2
    assert len(polygonise(arr, T, "EPSG:32643", connectivity=8)) == 1
    empty = polygonise(np.zeros((3, 3), dtype=np.uint8), T, "EPSG:32643", column="glac_id")
    assert len(empty) == 0 and "glac_id" in empty.columns
