"""PoLiS (GlaViTU Eq. 11) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.affinity import rotate, translate
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from glaciermap.errors import InputError
from glaciermap.metrics import polis, sample_boundary


def test_identical_polygons_give_zero() -> None:
    glacier = Polygon([(0, 0), (130, 0), (160, 90), (40, 140)], holes=[[(50, 40), (80, 40), (70, 70)]])
    result = polis(glacier, glacier)
    assert result.value == pytest.approx(0.0, abs=1e-9)  # interpolated points on slanted edges: ~1e-15
    assert result.p95 == pytest.approx(0.0, abs=1e-9)
    assert polis(box(0, 0, 100, 50), box(0, 0, 100, 50)).value == 0.0  # exact on axis-parallel edges
    assert result.n_points_a == result.n_points_b == len(sample_boundary(glacier))


def test_sampling_every_10_m_on_every_ring() -> None:
    square = box(0, 0, 100, 100)
    pts = sample_boundary(square)
    assert pts.shape == (40, 2)  # perimeter 400 m, no repeated start point
    np.testing.assert_allclose(np.hypot(*np.diff(pts, axis=0).T), 10.0)
    with_hole = Polygon(square.exterior.coords, holes=[box(40, 40, 60, 60).exterior.coords])
    assert len(sample_boundary(with_hole)) == 40 + 8
    assert len(sample_boundary(square, spacing=25.0)) == 16
    assert len(sample_boundary(box(0, 0, 2, 2))) == 1  # ring shorter than the spacing: its start point
    multi = MultiPolygon([box(0, 0, 100, 100), box(200, 0, 300, 100)])
    assert len(sample_boundary(multi)) == 80


def test_shifted_squares_known_value() -> None:
    # A 100 m square shifted by d = 10 m along x. Hand count with 10 m sampling: on each square, 9 points of
    # its left edge and 9 of its right edge (without corners) plus 2 corners are 10 m from the other boundary,
    # the other 20 points lie on it. Eq. 11: (2 * 20 * 10) / 80 = 5 m = d / 2 (also the continuous value).
    a = box(0, 0, 100, 100)
    b = translate(a, xoff=10)
    result = polis(a, b)
    assert result.value == pytest.approx(5.0)
    assert result.mean == result.value
    assert result.median == pytest.approx(5.0)  # 40 zeros and 40 tens
    assert result.p95 == pytest.approx(10.0)
    assert float(result) == result.value
    assert sorted(set(np.round(result.distances, 9))) == [0.0, 10.0]
    # d / 2 holds for any shift d <= side / 2, e.g. 20 m.
    assert polis(a, translate(a, xoff=20)).value == pytest.approx(10.0)


def test_pooled_normalisation_of_eq_11() -> None:
    # 100 x 100 square inside a 150 x 100 rectangle sharing three sides. Square (40 points): its right edge
    # points y = 10..90 are min(50, y, 100 - y) from the rectangle -> 250 m in all. Rectangle (50 points,
    # sampled from its corner (150, 0)): right edge y = 0..90, 10 points at 50 m -> 500; top edge points
    # x = 150..110 -> 50 + 40 + 30 + 20 + 10; bottom edge points x = 110..140 -> 10 + 20 + 30 + 40.
    # Eq. 11 pools the points: (250 + 750) / 90; Avbelj's 1/2q + 1/2r form would give 250/80 + 750/100.
    result = polis(box(0, 0, 100, 100), box(0, 0, 150, 100))
    assert (result.n_points_a, result.n_points_b) == (40, 50)
    assert result.value == pytest.approx(1000 / 90)
    assert result.value != pytest.approx(250 / 80 + 750 / 100)


def test_symmetric_by_construction() -> None:
    a = Point(0, 0).buffer(300, 16)
    b = rotate(translate(box(-250, -280, 260, 240), 17, -9), 11)
    ab, ba = polis(a, b), polis(b, a)
    assert (ab.value, ab.median, ab.p95) == (ba.value, ba.median, ba.p95)
    assert ab.value > 0
    assert (ab.n_points_a, ab.n_points_b) == (ba.n_points_b, ba.n_points_a)


def test_bad_geometry_errors() -> None:
    with pytest.raises(InputError, match="expected a non-empty Polygon or MultiPolygon, got an empty"):
        polis(Polygon(), box(0, 0, 1, 1))
    with pytest.raises(InputError, match="got a LineString"):
        polis(box(0, 0, 1, 1), LineString([(0, 0), (1, 1)]))
    with pytest.raises(InputError, match="spacing must be positive"):
        polis(box(0, 0, 1, 1), box(0, 0, 1, 1), spacing=0)
