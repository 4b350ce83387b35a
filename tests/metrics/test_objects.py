"""Per-glacier matching (GlaViTU rule), detection scores by size class and area deviation (Eq. 10)."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from glaciermap.errors import InputError
from glaciermap.metrics import area_deviation, detection_scores, match_glaciers, size_class

UTM = "EPSG:32633"


def gdf(*geoms: object, index: list[int] | None = None) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=list(geoms), crs=UTM, index=index)


def pairs(pred: gpd.GeoDataFrame, ref: gpd.GeoDataFrame, **kw: float) -> list[tuple[int, int]]:
    m = match_glaciers(pred, ref, **kw)
    return list(zip(m.pairs["pred"].tolist(), m.pairs["ref"].tolist()))


def test_exactly_half_does_not_match() -> None:
    ref = gdf(box(0, 0, 100, 100))
    assert pairs(gdf(box(50, 0, 150, 100)), ref) == []  # 5000 m2 = 50% of each: not "more than"
    assert pairs(gdf(box(49, 0, 149, 100)), ref) == [(0, 0)]  # 51% of each
    assert (
        pairs(gdf(box(0, 0, 100, 50)), ref) == []
    )  # 100% of the prediction but exactly 50% of the reference
    assert pairs(gdf(box(0, 0, 100, 51)), ref) == [(0, 0)]
    assert pairs(gdf(box(0, 0, 200, 100)), ref) == []  # 100% of the reference, 50% of the prediction


def test_one_prediction_covering_two_references() -> None:
    # Equal halves: the intersection with each reference is exactly 50% of the prediction -> no match at all.
    two = gdf(box(0, 0, 100, 100), box(100, 0, 200, 100))
    assert pairs(gdf(box(0, 0, 200, 100)), two) == []
    # 2/3 and 1/3: only the reference holding more than half of the prediction matches.
    uneven = gdf(box(0, 0, 100, 100), box(100, 0, 150, 100))
    m = match_glaciers(gdf(box(0, 0, 150, 100)), uneven)
    assert list(zip(m.pairs["pred"], m.pairs["ref"])) == [(0, 0)]
    assert m.ref_matched.tolist() == [True, False]
    det = m.detection().set_index("size_class").loc["all"]
    assert (det["precision"], det["recall"], det["f1"]) == (1.0, 0.5, pytest.approx(2 / 3))


def test_two_predictions_splitting_one_reference() -> None:
    ref = gdf(box(0, 0, 100, 100))
    assert pairs(gdf(box(0, 0, 50, 100), box(50, 0, 100, 100)), ref) == []
    assert pairs(gdf(box(0, 0, 60, 100), box(60, 0, 100, 100)), ref) == [(0, 0)]


def test_overlapping_candidates_resolved_one_to_one() -> None:
    # Overlapping predictions can both pass the rule; the larger intersection wins, each glacier used once.
    ref = gdf(box(0, 0, 100, 100))
    assert pairs(gdf(box(0, 0, 100, 80), box(0, 0, 100, 90)), ref) == [(1, 0)]
    # A lower fraction lets one prediction pass for two references: still one-to-one.
    two = gdf(box(0, 0, 100, 100), box(100, 0, 200, 100))
    assert pairs(gdf(box(20, 0, 200, 100)), two, fraction=0.4) == [(0, 1)]  # 8000 vs 10000 m2


def test_pairs_table_and_ids() -> None:
    ref = gdf(box(0, 0, 1000, 1000), box(2000, 0, 2200, 500), index=[17, 42])
    pred = gdf(box(0, 0, 1000, 1100), box(5000, 0, 5100, 100), index=[3, 4])
    m = match_glaciers(pred, ref)
    row = m.pairs.iloc[0]
    assert (row["pred_id"], row["ref_id"]) == (3, 17)
    assert row["intersection_km2"] == pytest.approx(1.0)
    assert (row["pred_area_km2"], row["ref_area_km2"]) == (pytest.approx(1.1), pytest.approx(1.0))
    assert row["delta_area_km2"] == pytest.approx(0.1)
    assert row["rel_delta_area"] == pytest.approx(0.1)
    assert row["size_class"] == "1-5"
    assert m.pred_matched.tolist() == [True, False] and m.ref_matched.tolist() == [True, False]
    [p] = m.polis()
    # 1000 x 1000 inside 1000 x 1100 sharing three sides: only the 100 m top strip differs.
    assert 0 < p.value < 100 and p.p95 == pytest.approx(100.0)


def test_detection_by_size_class() -> None:
    # ref: 0.05 km2, 0.3 km2 (never matched) and 1 km2.
    ref = gdf(box(0, 0, 500, 100), box(1000, 0, 1600, 500), box(0, 2000, 1000, 3000))
    pred = gdf(box(0, 0, 450, 100), box(0, 2000, 450, 3000), box(8000, 0, 8100, 100))
    m = match_glaciers(pred, ref)
    assert list(zip(m.pairs["pred"], m.pairs["ref"])) == [(0, 0)]  # 0.45 km2 is < 50% of the 1 km2 glacier
    pred2 = gdf(box(0, 0, 450, 100), box(0, 2000, 950, 3000), box(8000, 0, 8100, 100))
    det = match_glaciers(pred2, ref).detection().set_index("size_class")
    # pred areas: 0.045 (<0.1), 0.95 (0.5-1), 0.01 (<0.1); matches pred0-ref0 and pred1-ref2, a pair
    # straddling two classes (0.95 km2 predicted, 1 km2 reference).
    assert det.loc["all", ["n_pred", "n_ref", "tp_pred", "tp_ref"]].tolist() == [3, 3, 2, 2]
    assert det.loc["all", "f1"] == pytest.approx(2 * 2 / 6)
    assert det.loc["<0.1", ["n_pred", "n_ref", "tp_pred", "tp_ref"]].tolist() == [2, 1, 1, 1]
    assert det.loc["<0.1", "precision"] == 0.5 and det.loc["<0.1", "recall"] == 1.0
    assert det.loc["<0.1", "f1"] == pytest.approx(2 / 3)
    assert det.loc["0.1-0.5", "recall"] == 0.0 and math.isnan(det.loc["0.1-0.5", "precision"])
    assert det.loc["0.1-0.5", "f1"] == 0.0
    assert det.loc["0.5-1", "precision"] == 1.0 and det.loc["1-5", "recall"] == 1.0
    assert math.isnan(det.loc[">5", "f1"])


def test_min_area_leaves_small_glaciers_out() -> None:
    ref = gdf(box(0, 0, 100, 100), box(0, 1000, 1000, 2000))  # 0.01 and 1 km2
    pred = gdf(box(0, 0, 100, 90), box(0, 1000, 1000, 1900), box(5000, 0, 5050, 100))  # 0.009, 0.9, 0.005
    m = match_glaciers(pred, ref, min_area_km2=0.01)
    assert list(m.ref.index) == [0, 1] and list(m.pred.index) == [1]  # exactly 0.01 km2 is kept
    assert list(zip(m.pairs["pred_id"], m.pairs["ref_id"])) == [(1, 1)]
    assert len(match_glaciers(pred, ref).pairs) == 2
    with pytest.raises(InputError, match="min_area_km2"):
        match_glaciers(pred, ref, min_area_km2=-1)


def test_empty_prediction_and_empty_reference() -> None:
    ref = gdf(box(0, 0, 100, 100), box(200, 0, 300, 100))
    empty = gdf()
    det = match_glaciers(empty, ref).detection().set_index("size_class").loc["all"]
    assert math.isnan(det["precision"]) and det["recall"] == 0.0 and det["f1"] == 0.0
    det = match_glaciers(ref, empty).detection().set_index("size_class").loc["all"]
    assert det["precision"] == 0.0 and math.isnan(det["recall"]) and det["f1"] == 0.0
    both = match_glaciers(empty, empty)
    assert both.pairs.empty and math.isnan(both.detection().iloc[0]["f1"])
    assert detection_scores(n_pred=4, n_ref=5, tp_pred=3, tp_ref=3) == {
        "precision": 0.75,
        "recall": 0.6,
        "f1": pytest.approx(6 / 9),
    }


def test_size_class_edges() -> None:
    areas = [0.0999, 0.1, 0.4999, 0.5, 1.0, 4.99, 5.0, 120.0]
    assert size_class(areas).tolist() == ["<0.1", "0.1-0.5", "0.1-0.5", "0.5-1", "1-5", "1-5", ">5", ">5"]


def test_area_deviation_eq_10() -> None:
    delta, rel = area_deviation([1.2, 0.5, 3.0], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(delta, [0.2, -0.5, 3.0])
    np.testing.assert_allclose(rel[:2], [0.2, -0.5])
    assert math.isnan(rel[2])


def test_crs_handling() -> None:
    ref = gdf(box(500000, 5000000, 501000, 5001000))
    pred = gdf(box(500000, 5000000, 501000, 5001050)).to_crs("EPSG:4326")
    m = match_glaciers(pred, ref)
    assert len(m.pairs) == 1 and m.pairs["pred_area_km2"].iloc[0] == pytest.approx(1.05, rel=1e-4)
    geographic = match_glaciers(pred, ref.to_crs("EPSG:4326"))  # both geographic: measured in UTM
    assert geographic.ref_area_km2[0] == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(InputError, match="prediction outlines have no CRS"):
        match_glaciers(gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]), ref)
    with pytest.raises(InputError, match="expected Polygon or MultiPolygon"):
        match_glaciers(gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1).exterior], crs=UTM), ref)
    with pytest.raises(InputError, match="fraction"):
        match_glaciers(ref, ref, fraction=1.0)
