"""Ice divides on hand-made DEMs: complexes split at cols and ridges, robust to noise and nodata."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from glaciermap.inventory.divides import (
    DivideParams,
    condition_dem,
    copy_split,
    divide_lines,
    flowshed_split,
    split_complex,
)

PX = 10.0


def _rows(h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.full(h, PX * PX), np.full(h, PX), np.full(h, PX)


def col_valley(noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two valley glaciers flowing west and east from a col at column 250 (each 100 x 200 px = 2 km2)."""
    h, w = 140, 500
    y = (np.arange(h) + 0.5) * PX
    x = (np.arange(w) + 0.5) * PX
    xx, yy = np.meshgrid(x, y)
    z = 3000 - 0.25 * np.abs(xx - 2500) + 0.0015 * (yy - 700) ** 2
    if noise:
        z = z + np.random.default_rng(seed).normal(0, noise, z.shape)
    ice = (np.abs(yy - 700) < 500) & (xx > 500) & (xx < 4500)
    return ice, z


def tributaries() -> tuple[np.ndarray, np.ndarray]:
    """Two parallel valleys (rows 20-59 and 80-119) flowing west, separated by a ridge at row 70 that is
    lower than the ice at their heads, so one ice body spans both accumulation areas: the divide is the
    ridge crest (row 70)."""
    h, w = 140, 400
    y = (np.arange(h) + 0.5) * PX
    x = (np.arange(w) + 0.5) * PX
    xx, yy = np.meshgrid(x, y)
    across = np.minimum(np.abs(yy - 400), np.abs(yy - 1000))  # distance to the nearest valley axis
    ridge = 0.4 * np.maximum(0, 300 - np.abs(yy - 700))  # a ridge of 120 m between the valleys
    z = 2500 + 0.2 * xx + 0.002 * across**2 + ridge * (xx < 2500)  # the ridge ends at x = 2500 m
    ice = ((np.abs(yy - 400) < 200) | (np.abs(yy - 1000) < 200)) & (xx > 300) & (xx < 3800)
    ice |= (xx >= 2500) & (xx < 3800) & (yy > 400) & (yy < 1000)  # ice over the low ridge end joins them
    return ice, z


@pytest.mark.parametrize("outlets", ["minima", "gutter"])
@pytest.mark.parametrize("noise", [0.0, 3.0])
def test_col_complex_split_at_the_col(noise: float, outlets: str) -> None:
    ice, z = col_valley(noise)
    params = DivideParams(outlets=outlets)  # type: ignore[arg-type]
    labels = split_complex(ice, z, "flowshed", PX, *_rows(ice.shape[0]), params)
    assert labels.max() == 2
    assert set(np.unique(labels[ice])) == {1, 2}
    west, east = labels[70, 60], labels[70, 440]
    assert west != east
    # The boundary is the col (column 250) to within the noise: at most 3 columns off in any row.
    for r in range(21, 119, 7):
        row = labels[r]
        boundary = int(np.flatnonzero(row == east).min())
        assert abs(boundary - 250) <= (0 if noise == 0 else 3)
    assert (labels[ice] > 0).all() and (labels[~ice] == 0).all()


@pytest.mark.parametrize("outlets", ["minima", "gutter"])
def test_tributaries_split_at_the_ridge(outlets: str) -> None:
    ice, z = tributaries()
    params = DivideParams(outlets=outlets)  # type: ignore[arg-type]
    labels = split_complex(ice, z, "flowshed", PX, *_rows(ice.shape[0]), params)
    assert labels.max() == 2
    north, south = labels[40, 100], labels[100, 100]
    assert north != south
    # Over the ridge end the divide follows the ridge line (row 70) within two pixels.
    for c in (260, 300, 340, 370):
        col = labels[:, c]
        switch = int(np.flatnonzero(col == south).min())
        assert abs(switch - 70) <= 2


def test_dem_nodata_is_filled_before_splitting() -> None:
    ice, z = col_valley()
    z = z.copy()
    z[40:100, 150:200] = np.nan
    z[0:5, :] = np.nan
    labels = split_complex(ice, z, "flowshed", PX, *_rows(ice.shape[0]), DivideParams())
    assert labels.max() == 2
    assert (labels[ice] > 0).all()
    assert labels[70, 249] != labels[70, 250]
    cond = condition_dem(np.full((4, 4), np.nan), 1.0)
    assert cond is None
    filled = condition_dem(np.array([[1.0, np.nan], [np.nan, np.nan]]), 0.0)
    assert filled is not None and (filled == 1.0).all()


def test_small_complex_is_not_split_and_none_method() -> None:
    ice, z = col_valley()
    assert split_complex(ice, z, "none", PX, *_rows(ice.shape[0]), DivideParams()).max() == 1
    small = np.zeros_like(ice)
    small[60:80, 240:260] = True  # 400 px = 0.04 km2 < 2 x 1e5 m2
    assert split_complex(small, z, "flowshed", PX, *_rows(ice.shape[0]), DivideParams()).max() == 1
    assert split_complex(ice, None, "flowshed", PX, *_rows(ice.shape[0]), DivideParams()).max() == 1


def test_merge_radius_and_min_pour_area() -> None:
    p = DivideParams()
    # r = min(c, a (A / 100 m2)^b): 5.72 * sqrt(1e6 / 100) = 572 m; capped at 1400 m.
    assert p.merge_radius_m(1e6) == pytest.approx(572.0)
    assert p.merge_radius_m(1e8) == pytest.approx(1400.0)
    # the contributing area whose radius equals the 60 m buffer: (60 / 5.72)^2 * 100 m2
    assert p.min_pour_area_m2 == pytest.approx((60 / 5.72) ** 2 * 100)
    assert p.merge_radius_m(p.min_pour_area_m2) == pytest.approx(60.0)
    assert p.buffer_px(30.0) == 2 and p.margin_px(30.0) == 5


def test_merge_rules_on_a_wide_terminus() -> None:
    # One glacier with a 2.4 km wide, slightly wavy terminus has several outlets: they are merged.
    h, w = 260, 300
    y = (np.arange(h) + 0.5) * PX
    x = (np.arange(w) + 0.5) * PX
    xx, yy = np.meshgrid(x, y)
    z = 3000 + 0.3 * xx + 3.0 * np.sin(yy / 120.0)
    ice = (xx > 300) & (xx < 2700) & (yy > 200) & (yy < 2400)
    for outlets in ("minima", "gutter"):
        for rule in ("pour_points", "flowsheds"):
            params = DivideParams(merge_rule=rule, outlets=outlets)  # type: ignore[arg-type]
            assert np.unique(flowshed_split(ice, condition_dem(z, 1.0), PX, params)[ice]).size == 1
    # Shallow minima (the 6 m waves) are not outlets; with a depth threshold below 6 m they are, and
    # the distance merge joins them (all pour points lie within the others' radii).
    deep = DivideParams(min_depth_m=1.0)
    assert np.unique(flowshed_split(ice, condition_dem(z, 1.0), PX, deep)[ice]).size == 1


def test_copy_split_follows_the_reference() -> None:
    ice, z = col_valley()
    ref = np.zeros(ice.shape, dtype=np.int32)
    ref[25:115, 60:200] = 7  # reference glaciers meet at column 200, not at the col; shorter tongues
    ref[25:115, 200:440] = 9
    labels = copy_split(ice, condition_dem(z, 1.0), ref)
    assert labels.max() == 2
    a, b = labels[70, 100], labels[70, 300]
    assert a != b
    assert (labels[21:119, 51:200] == a).all()  # predicted ice outside the reference joins its neighbour
    assert (labels[21:119, 200:449] == b).all()
    # no reference glacier under a separate ice patch: it keeps a label of its own
    ice2 = ice.copy()
    ice2[130:138, 10:40] = True
    labels2 = copy_split(ice2, condition_dem(z, 1.0), ref)
    assert labels2.max() == 3 and labels2[133, 20] not in (labels2[70, 100], labels2[70, 300])
    # The authors' negated DEM floods the margin strips (higher than the ice beside the reference) from
    # the col down both sides: the east glacier's label leaks along the west glacier's margins.
    negated = copy_split(ice, condition_dem(z, 1.0), ref, negate_dem=True)
    assert (negated[21, 51:200] == negated[70, 300]).all()
    assert (negated[70, 60:200] == negated[70, 100]).all()


def test_divide_lines_from_pixel_edges() -> None:
    lab = np.zeros((5, 6), dtype=np.int32)
    lab[0:4, 0:3] = 1
    lab[0:4, 3:6] = 2
    lab[4, 0:6] = 3
    lines = divide_lines(lab, Affine(10, 0, 1000, 0, -10, 2000))
    got = {(u, v): g for u, v, g in lines}
    assert set(got) == {(1, 2), (1, 3), (2, 3)}
    assert got[(1, 2)].length == pytest.approx(40.0)
    assert got[(1, 2)].geom_type == "LineString"
    assert got[(1, 2)].bounds == (1030.0, 1960.0, 1030.0, 2000.0)
    assert got[(1, 3)].length == pytest.approx(30.0) and got[(2, 3)].length == pytest.approx(30.0)
