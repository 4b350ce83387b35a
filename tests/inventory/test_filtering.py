"""Median filter, minimum-area screening and sliver merging on hand-made label rasters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from glaciermap.inventory.filtering import (
    FOUR_CONNECTED,
    compactness,
    median_filter_classes,
    merge_slivers,
    region_geometry,
    scan_complexes,
)

ROW = 10.0  # 10 m pixels


def _rows(h: int, size: float = ROW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.full(h, size * size), np.full(h, size), np.full(h, size)


def test_median_filter_majority_vote_and_debris() -> None:
    cls = np.zeros((9, 9), dtype=np.uint8)
    cls[1:6, 1:6] = 1
    cls[3, 3] = 0  # one-pixel hole inside the ice: 8 of 9 votes fill it
    cls[4:6, 1:6] = 2  # a debris band two rows high
    cls[0, 8] = 1  # isolated ice pixel: 1 of 9
    cls[8, 0] = 255  # nodata stays nodata
    out = median_filter_classes(cls, 3)
    assert out[3, 3] == 1
    assert out[0, 8] == 0
    assert out[8, 0] == 255
    assert [out[1, 1], out[1, 5], out[5, 1], out[5, 5]] == [0, 0, 0, 0]  # convex corners: 4 of 9
    glacier = (out == 1) | (out == 2)
    assert glacier.sum() == 25 - 4
    assert glacier[1:6, 1:6].sum() == 21
    # Debris votes: 6 of 9 in columns 2-4 of both rows, 4 of 9 in columns 1 and 5.
    assert np.flatnonzero(out[4] == 2).tolist() == [2, 3, 4]
    assert np.flatnonzero(out[5] == 2).tolist() == [2, 3, 4]
    assert out[4, 1] == 1 and out[4, 5] == 1


def _strips(cls: np.ndarray, rows: int) -> list[tuple[int, np.ndarray]]:
    return [(r0, cls[r0 : r0 + rows]) for r0 in range(0, cls.shape[0], rows)]


@pytest.mark.parametrize("strip_rows", [20, 3, 1])
def test_scan_complexes_min_area_and_geographic_weights(strip_rows: int) -> None:
    cls = np.zeros((20, 20), dtype=np.uint8)
    cls[1:4, 1:4] = 1  # 9 px
    cls[10:20, 10:12] = 2  # 20 px of debris: glacier too
    cls[0, 19] = 1  # 1 px
    area_row = np.full(20, 100.0)
    found = scan_complexes(_strips(cls, strip_rows), area_row, min_area_km2=0.0009)
    assert len(found) == 2
    assert found.area_km2.tolist() == pytest.approx([0.0009, 0.002])
    assert found.bbox.tolist() == [[1, 4, 1, 4], [10, 20, 10, 12]]
    assert found.seed.tolist() == [[1, 1], [10, 10]]
    # Per-row pixel areas (geographic grids): the 20-pixel region spans rows 10-19.
    area_row = np.linspace(90.0, 110.0, 20)
    found = scan_complexes(_strips(cls, strip_rows), area_row, min_area_km2=0.0)
    assert len(found) == 3
    assert found.area_km2[2] == pytest.approx(2 * area_row[10:20].sum() / 1e6)
    # Numbered in raster-scan order of their first pixel.
    assert found.seed.tolist() == [[0, 19], [1, 1], [10, 10]]


def test_scan_complexes_joins_regions_across_strip_borders() -> None:
    # A U shape: its two arms meet only in the last row, three strips below their tops, so the
    # strips see up to three separate pieces that must become one complex numbered by the left arm.
    cls = np.zeros((9, 7), dtype=np.uint8)
    cls[0:9, 1] = 1
    cls[2:9, 5] = 2
    cls[8, 1:6] = 1
    cls[0, 3] = 1  # a lone pixel, dropped by the minimum area
    found = scan_complexes(_strips(cls, 2), np.full(9, 100.0), min_area_km2=0.0002)
    assert len(found) == 1
    assert found.bbox.tolist() == [[0, 9, 1, 6]]
    assert found.seed.tolist() == [[0, 1]]
    assert found.area_km2[0] == pytest.approx(((cls > 0).sum() - 1) * 100.0 / 1e6)


def test_scan_complexes_equals_whole_raster_labelling() -> None:
    """Strip-wise labelling with union-find across borders gives exactly the whole-raster regions."""
    rng = np.random.default_rng(3)
    noise = ndi.gaussian_filter(rng.standard_normal((97, 83)), 1.5)
    cls = np.where(noise > 0.05, np.where(noise > 0.25, 2, 1), 0).astype(np.uint8)
    cls[rng.random(cls.shape) < 0.01] = 255
    area_row = np.linspace(80.0, 120.0, 97)
    labels, n = ndi.label((cls == 1) | (cls == 2), structure=FOUR_CONNECTED)
    area = ndi.sum_labels(np.broadcast_to(area_row[:, None], cls.shape), labels, np.arange(1, n + 1)) / 1e6
    min_area = float(np.median(area))
    kept = np.flatnonzero(area >= min_area) + 1
    assert 5 < len(kept) < n  # the screening drops some regions and keeps several
    objects = ndi.find_objects(labels)
    bbox = [
        [objects[k - 1][0].start, objects[k - 1][0].stop, objects[k - 1][1].start, objects[k - 1][1].stop]
        for k in kept
    ]
    seed = [divmod(int(np.argmax(labels.ravel() == k)), cls.shape[1]) for k in kept]
    for rows in (1, 2, 7, 97):
        found = scan_complexes(_strips(cls, rows), area_row, min_area)
        assert found.bbox.tolist() == bbox
        assert found.seed.tolist() == [list(rc) for rc in seed]
        assert found.area_km2 == pytest.approx(area[kept - 1])


def test_scan_complexes_rejects_gaps_and_handles_no_glacier() -> None:
    cls = np.ones((4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="consecutive"):
        scan_complexes([(0, cls[:2]), (3, cls[3:])], np.full(4, 1.0), 0.0)
    assert len(scan_complexes(_strips(np.zeros((4, 4), np.uint8), 2), np.full(4, 1.0), 0.0)) == 0


def test_region_geometry_perimeter_holes_and_shared_edges() -> None:
    lab = np.zeros((6, 8), dtype=np.int32)
    lab[1:5, 1:5] = 1
    lab[2, 2] = 0  # a 1-pixel hole: 4 more edges of perimeter
    lab[1:5, 5:7] = 2
    area, perim, shared = region_geometry(lab, *_rows(6))
    assert area[1] == pytest.approx(15 * 100.0)
    assert area[2] == pytest.approx(8 * 100.0)
    assert perim[1] == pytest.approx((4 * 4 + 4) * ROW)
    assert perim[2] == pytest.approx(12 * ROW)
    assert shared == {(1, 2): pytest.approx(4 * ROW)}
    c = compactness(np.array([np.pi * 100.0**2, 100.0]), np.array([2 * np.pi * 100.0, 40.0]))
    assert c == pytest.approx([1.0, 2 * np.sqrt(np.pi * 100.0) / 40.0])


def test_merge_slivers_joins_longest_boundary_and_keeps_isolated() -> None:
    # 10 m pixels: 1e5 m2 = 1,000 px. Regions 1 and 2 are 40 x 40 (160,000 m2, compact): not slivers.
    lab = np.zeros((60, 100), dtype=np.int32)
    lab[0:40, 0:40] = 1
    lab[0:40, 44:84] = 2
    lab[0:42, 40:44] = 3  # a 4-pixel-wide strip between them (168 px) ...
    lab[40:42, 44:64] = 3  # ... with an arm under region 2 (40 px): 20,800 m2, a sliver
    lab[50:53, 90:93] = 4  # isolated 3 x 3 sliver without neighbours: kept
    _, _, shared = region_geometry(lab, *_rows(60))
    assert shared[(1, 3)] == pytest.approx(40 * ROW)
    assert shared[(2, 3)] == pytest.approx((40 + 20) * ROW)
    out = merge_slivers(lab, *_rows(60))
    assert out.max() == 3
    assert len({out[0, 0], out[0, 44], out[51, 91]}) == 3
    assert (out[lab == 3] == out[0, 44]).all()  # the sliver joined region 2 (longest common boundary)
    assert (out[lab == 1] == out[0, 0]).all()
    assert ((out > 0) == (lab > 0)).all()


def test_merge_slivers_compactness_rule_and_sliver_groups() -> None:
    lab = np.zeros((80, 230), dtype=np.int32)
    lab[0:80, 0:80] = 1  # 640,000 m2
    lab[0:10, 80:230] = 2  # 150,000 m2 (< 2e5) with compactness 0.43 (< 0.5): a sliver
    lab[10:40, 80:120] = 3  # 120,000 m2 with compactness 0.88: not a sliver
    lab[50:53, 80:90] = 4  # two touching slivers: a group whose only non-sliver contact is region 1
    lab[53:56, 80:90] = 5
    lab[70:73, 150:160] = 6  # two touching slivers with no other neighbour: kept as one region
    lab[73:76, 150:160] = 7
    area, perim, shared = region_geometry(lab, *_rows(80))
    comp = compactness(area, perim)
    assert comp[2] == pytest.approx(2 * np.sqrt(np.pi * 150_000) / 3200)
    assert comp[2] < 0.5 < comp[3]
    assert shared[(1, 2)] == pytest.approx(10 * ROW) and shared[(2, 3)] == pytest.approx(40 * ROW)
    out = merge_slivers(lab, *_rows(80))
    assert out.max() == 3
    assert (out[lab == 2] == out[10, 80]).all()  # the elongated sliver joined region 3
    assert (out[(lab == 4) | (lab == 5)] == out[0, 0]).all()  # the group joined region 1
    assert (out[(lab == 6) | (lab == 7)] == out[70, 150]).all()
    assert out[70, 150] not in (out[0, 0], out[10, 80])
