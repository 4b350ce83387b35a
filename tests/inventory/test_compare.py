"""Comparing inventories: GlaViTU matching (> 50 % of both), area differences per glacier and per cell."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from glaciermap.datasets.vectors import read_outlines
from glaciermap.errors import InputError
from glaciermap.inventory.compare import compare_inventories, write_comparison

CRS = "EPSG:32643"
X0, Y0 = 500_000.0, 4_000_000.0


def _sq(x: float, y: float, w: float, h: float | None = None):  # type: ignore[no-untyped-def]
    return box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + (w if h is None else h))


def pair() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Ours: a 1 km2 square equal to the reference's, one shifted by 600 m (40 % overlap), one new one.
    Reference: the equal square, the unshifted one, and one we missed."""
    ours = gpd.GeoDataFrame(
        {"glac_id": [1, 2, 3]},
        geometry=[_sq(0, 0, 1000), _sq(3000, 0, 1000), _sq(6000, 3000, 500)],
        crs=CRS,
    )
    ref = gpd.GeoDataFrame(
        {"RGIId": ["RGI60-14.00001", "RGI60-14.00002", "RGI60-14.00003"], "Area": [0.8, 1.0, 0.25]},
        geometry=[_sq(0, 0, 1000, 800), _sq(2400, 0, 1000), _sq(0, 5000, 500)],
        crs=CRS,
    )
    return ours, ref


def test_matching_counts_and_area_differences() -> None:
    ours, ref = pair()
    c = compare_inventories(ours, ref, cell_size_km=5.0)
    s = c.summary
    assert (s["n_matched"], s["n_omitted"], s["n_new"]) == (1, 2, 2)
    assert s["id_field_reference"] == "RGIId" and s["id_field_ours"] == "glac_id"
    m = c.matches.iloc[0]
    assert (m.id_ours, m.id_ref) == (1, "RGI60-14.00001")
    assert m.area_ours_km2 == pytest.approx(1.0) and m.area_ref_km2 == pytest.approx(0.8)
    assert m.d_area_km2 == pytest.approx(0.2) and m.rel_d_area == pytest.approx(0.25)
    assert m.overlap_km2 == pytest.approx(0.8) and m.area_ref_attr_km2 == pytest.approx(0.8)
    assert sorted(c.omitted.id_ref) == ["RGI60-14.00002", "RGI60-14.00003"]
    assert sorted(c.new.id_ours) == [2, 3]
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(2 * 1 / 6)
    assert s["area_ours_km2"] == pytest.approx(2.25) and s["area_reference_km2"] == pytest.approx(2.05)


def test_rgi7_field_names_and_other_crs() -> None:
    ours, ref = pair()
    ref7 = ref.rename(columns={"RGIId": "rgi_id", "Area": "area_km2"}).to_crs("EPSG:4326")
    c = compare_inventories(ours, ref7, cell_size_km=5.0)
    assert c.summary["id_field_reference"] == "rgi_id"
    assert c.summary["n_matched"] == 1
    assert c.matches.area_ref_km2.iloc[0] == pytest.approx(0.8, rel=1e-6)


def test_matching_needs_more_than_half_of_both() -> None:
    big = gpd.GeoDataFrame({"glac_id": [1]}, geometry=[_sq(0, 0, 1000)], crs=CRS)
    small = gpd.GeoDataFrame({"rgi_id": ["a"]}, geometry=[_sq(0, 0, 1000, 400)], crs=CRS)
    # the small one lies entirely inside the big one, but covers only 40 % of it: no match
    assert compare_inventories(big, small).summary["n_matched"] == 0
    half = gpd.GeoDataFrame({"rgi_id": ["a"]}, geometry=[_sq(0, 0, 1000, 501)], crs=CRS)
    assert compare_inventories(big, half).summary["n_matched"] == 1


def test_cell_differences() -> None:
    ours, ref = pair()
    c = compare_inventories(ours, ref, cell_size_km=5.0)
    cells = c.cell_diff_km2
    t = c.cell_transform
    assert (t.a, -t.e) == (5000.0, 5000.0)
    # Cells are aligned on multiples of 5 km; the shapes span x 500-506.5 km and y 4000-4005.5 km:
    # 2 columns (500-510 km) and 2 rows (4010 km down to 4000 km).
    assert cells.shape == (2, 2)
    assert (t.c, t.f) == (500_000.0, 4_010_000.0)
    # lower-left cell (x 500-505, y 4000-4005): ours 1 + 1 (2 km2; the 6000 m square is in the next
    # column), reference 0.8 + 1 -> +0.2 km2
    assert cells[1, 0] == pytest.approx(0.2)
    # lower-right cell (x 505-510): ours' 500 m square at y 4003-4003.5 -> +0.25
    assert cells[1, 1] == pytest.approx(0.25)
    # upper-left (y 4005-4010): the reference's missed 500 m square -> -0.25
    assert cells[0, 0] == pytest.approx(-0.25)
    assert math.isnan(cells[0, 1])
    assert c.summary["cell_d_area_min_km2"] == pytest.approx(-0.25)


def test_write_comparison_files(tmp_path: Path) -> None:
    ours, ref = pair()
    paths = write_comparison(compare_inventories(ours, ref, cell_size_km=5.0), tmp_path / "cmp")
    assert all(p.exists() for p in paths.values())
    summary = json.loads(paths["summary.json"].read_text())
    assert summary["n_matched"] == 1 and summary["n_new"] == 2
    with rasterio.open(paths["cell_diff.tif"]) as src:
        arr = src.read(1)
        assert src.crs.to_epsg() == 32643 and arr.shape == (2, 2)
        assert arr[1, 0] == pytest.approx(0.2)
    assert paths["cell_diff.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "cmp").glob(".*partial*"))


def test_read_outlines_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_outlines(tmp_path / "missing.shp", "reference inventory")
    bad = tmp_path / "broken.gpkg"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(InputError, match="could not read"):
        read_outlines(bad, "reference inventory")
    with pytest.raises(InputError, match="unsupported file type"):
        read_outlines(_touch(tmp_path / "a.txt"), "x")
    ours, _ = pair()
    shp = tmp_path / "ours.shp"
    ours.to_file(shp)
    assert len(read_outlines(shp, "x")) == 3
    np.testing.assert_array_equal(read_outlines(shp, "x").glac_id, [1, 2, 3])


def _touch(path: Path) -> Path:
    path.write_text("x")
    return path
