"""Comparing two glacier inventories: matched, omitted and new glaciers, and area differences.

* Matching (GlaViTU paper, Methods, after Eq. 9): a glacier of ours matches a reference glacier if their
  intersection is more than 50 % of the area of *both*. In inventories whose polygons do not overlap this
  pairs each glacier with at most one other. Reference glaciers without a match are *omitted*, ours
  without a match are *new*. Object precision, recall and F1 follow GlaViTU Eqs. 7-9 with these counts.
* Per matched glacier: ``d_area_km2 = A_ours - A_ref`` and ``rel_d_area = (A_ours - A_ref) / A_ref``
  (GlaViTU Eq. 10).
* Per grid cell (Karakoram paper 5.1 and its Figure S4): the glacier area of ours minus that of the
  reference inside each square cell, km2, as a GeoTIFF and a map.

Areas are computed from the geometries in metres (the inventories' CRS if projected, else a Lambert
azimuthal equal-area projection), so RGI 6 (``RGIId``, ``Area``) and RGI 7 (``rgi_id``, ``area_km2``)
inventories are handled alike; their own area fields are reported beside ours when present.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS

from glaciermap.datasets.vectors import AREA_FIELDS, ID_FIELDS, find_field
from glaciermap.errors import ConfigError
from glaciermap.inventory.uncertainty import metric_crs
from glaciermap.io import atomic_output
from glaciermap.metrics.objects import MATCH_FRACTION, match_glaciers


@dataclass
class Comparison:
    """Result of :func:`compare_inventories`.

    Attributes:
        matches: One row per matched pair: ``id_ours``, ``id_ref``, ``area_ours_km2``, ``area_ref_km2``,
            ``overlap_km2``, ``d_area_km2``, ``rel_d_area`` (and ``area_ref_attr_km2`` when the reference
            has an area field).
        omitted: Reference glaciers without a match: ``id_ref``, ``area_ref_km2``.
        new: Our glaciers without a match: ``id_ours``, ``area_ours_km2``.
        cell_diff_km2: Area of ours minus reference per grid cell, km2, shape (rows, cols); NaN where
            neither inventory has ice.
        cell_transform: Affine transform of the cell grid (in ``cell_crs``).
        cell_crs: CRS of the cell grid (metres).
        summary: Counts, totals (km2) and object precision / recall / F1.
    """

    matches: pd.DataFrame
    omitted: pd.DataFrame
    new: pd.DataFrame
    cell_diff_km2: npt.NDArray[np.float32]
    cell_transform: Affine
    cell_crs: CRS
    summary: dict[str, Any]


def _ids(gdf: gpd.GeoDataFrame) -> tuple[str, npt.NDArray[Any]]:
    """The identifier column of an inventory (RGI 6/7, ours, GLIMS) or the row numbers."""
    name = find_field(gdf, ID_FIELDS)
    if name is None:
        return "row", np.arange(1, len(gdf) + 1)
    return name, gdf[name].to_numpy()


@dataclass
class _Measured:
    """The glaciers of one inventory in the comparison's metric CRS.

    Attributes:
        geoms: The polygons.
        area_km2: Their areas, km2.
        id_field: Name of the identifier column (``"row"``: row numbers).
        ids: The identifiers.
    """

    geoms: npt.NDArray[Any]
    area_km2: npt.NDArray[np.float64]
    id_field: str
    ids: npt.NDArray[Any]


def _measure(gdf: gpd.GeoDataFrame, crs: CRS, to_km2: float) -> _Measured:
    """Project an inventory to ``crs`` and measure its glaciers (``to_km2``: squared CRS units to km2)."""
    geoms = gdf.to_crs(crs).geometry.values
    id_field, ids = _ids(gdf)
    return _Measured(geoms, shapely.area(geoms) * to_km2, id_field, ids)


def compare_inventories(
    ours: gpd.GeoDataFrame, reference: gpd.GeoDataFrame, cell_size_km: float = 10.0
) -> Comparison:
    """Match two inventories glacier by glacier and compare their areas per glacier and per grid cell.

    Args:
        ours: Our glaciers (polygons with a CRS).
        reference: Reference glaciers (RGI 6, RGI 7, ours...), any CRS.
        cell_size_km: Side of the comparison grid cells, km.

    Returns:
        The :class:`Comparison`.

    Raises:
        ConfigError: If ``cell_size_km`` is not positive.
    """
    if not (cell_size_km > 0):
        raise ConfigError(f"cell_size_km must be > 0, got {cell_size_km}")
    crs = metric_crs(ours)
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    to_km2 = unit * unit / 1e6
    a = _measure(ours, crs, to_km2)
    b = _measure(reference, crs, to_km2)
    matches, pa, pb = _matches(a, b, crs, to_km2)
    area_field = find_field(reference, AREA_FIELDS)
    if area_field is not None:
        matches["area_ref_attr_km2"] = pd.to_numeric(reference[area_field], errors="coerce").to_numpy()[pb]
    not_a = np.setdiff1d(np.arange(len(a.geoms)), pa)
    not_b = np.setdiff1d(np.arange(len(b.geoms)), pb)
    new = pd.DataFrame({"id_ours": a.ids[not_a], "area_ours_km2": a.area_km2[not_a]})
    omitted = pd.DataFrame({"id_ref": b.ids[not_b], "area_ref_km2": b.area_km2[not_b]})
    cells, transform = cell_differences(a.geoms, b.geoms, cell_size_km * 1000.0 / unit, to_km2)
    summary = _summary(a, b, matches, (len(not_b), len(not_a)), cells, cell_size_km)
    summary["crs"] = crs.to_string()
    return Comparison(matches, omitted, new, cells, transform, crs, summary)


def _matches(
    a: _Measured, b: _Measured, crs: CRS, to_km2: float
) -> tuple[pd.DataFrame, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Match the glaciers (:func:`glaciermap.metrics.objects.match_glaciers`) and tabulate the pairs.

    Args:
        a: Our glaciers.
        b: The reference glaciers.
        crs: Their (metric) CRS.
        to_km2: Factor from squared CRS units to km2.

    Returns:
        ``(matches, pa, pb)``: the pairs sorted by our row then the reference row, with their areas and
        differences, and the row numbers of each side.
    """
    matching = match_glaciers(
        gpd.GeoSeries(a.geoms, crs=crs), gpd.GeoSeries(b.geoms, crs=crs), fraction=MATCH_FRACTION
    )  # positional index: pred_id / ref_id are row numbers of ours / reference
    pa = matching.pairs["pred_id"].to_numpy(dtype=np.int64)
    pb = matching.pairs["ref_id"].to_numpy(dtype=np.int64)
    order = np.lexsort((pb, pa))
    pa, pb = pa[order], pb[order]
    pairs = matching.pairs.iloc[order]
    matches = pd.DataFrame(
        {
            "id_ours": a.ids[pa],
            "id_ref": b.ids[pb],
            "area_ours_km2": a.area_km2[pa],
            "area_ref_km2": b.area_km2[pb],
            "overlap_km2": pairs["intersection_km2"].to_numpy(dtype=np.float64) * (1e6 * to_km2),
        }
    )
    matches["d_area_km2"] = matches["area_ours_km2"] - matches["area_ref_km2"]
    matches["rel_d_area"] = matches["d_area_km2"] / matches["area_ref_km2"]
    return matches, pa, pb


def _summary(
    a: _Measured,
    b: _Measured,
    matches: pd.DataFrame,
    unmatched: tuple[int, int],
    cells: npt.NDArray[np.float32],
    cell_size_km: float,
) -> dict[str, Any]:
    """Counts, object precision / recall / F1 (GlaViTU Eqs. 7-9) and area totals of a comparison.

    Args:
        a: Our glaciers.
        b: The reference glaciers.
        matches: The matched pairs.
        unmatched: Numbers of omitted (reference) and new (our) glaciers.
        cells: Area differences per grid cell, km2.
        cell_size_km: Side of the cells, km.

    Returns:
        The summary, without the CRS.
    """
    n_a, n_b, n_m = len(a.geoms), len(b.geoms), len(matches)
    precision = n_m / n_a if n_a else math.nan
    recall = n_m / n_b if n_b else math.nan
    f1 = 2 * n_m / (n_a + n_b) if (n_a + n_b) else math.nan
    return {
        "n_ours": n_a,
        "n_reference": n_b,
        "n_matched": n_m,
        "n_omitted": unmatched[0],
        "n_new": unmatched[1],
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "area_ours_km2": float(a.area_km2.sum()),
        "area_reference_km2": float(b.area_km2.sum()),
        "d_area_km2": float(a.area_km2.sum() - b.area_km2.sum()),
        "matched_d_area_km2": float(matches["d_area_km2"].sum()),
        "matched_mean_rel_d_area": float(matches["rel_d_area"].mean()) if n_m else math.nan,
        "cell_size_km": cell_size_km,
        "cell_d_area_min_km2": float(np.nanmin(cells)) if np.isfinite(cells).any() else math.nan,
        "cell_d_area_max_km2": float(np.nanmax(cells)) if np.isfinite(cells).any() else math.nan,
        "id_field_ours": a.id_field,
        "id_field_reference": b.id_field,
    }


def cell_differences(
    ours: npt.NDArray[Any], reference: npt.NDArray[Any], cell: float, to_km2: float
) -> tuple[npt.NDArray[np.float32], Affine]:
    """Glacier area of ``ours`` minus ``reference`` in square cells covering both (Karakoram Fig. S4).

    Args:
        ours: Our polygons (metric CRS).
        reference: Reference polygons (same CRS).
        cell: Cell side in CRS units.
        to_km2: Factor from squared CRS units to km2.

    Returns:
        ``(diff_km2, transform)``: the differences (NaN where neither has ice), rows from north to south,
        and the grid's affine transform. Cells are aligned to multiples of ``cell``.
    """
    both = np.concatenate([ours, reference])
    if len(both) == 0:
        return np.full((1, 1), np.nan, dtype=np.float32), Affine(cell, 0, 0, 0, -cell, cell)
    minx, miny, maxx, maxy = shapely.total_bounds(both)
    x0, y1 = math.floor(minx / cell) * cell, math.ceil(maxy / cell) * cell
    nx = max(1, math.ceil((maxx - x0) / cell))
    ny = max(1, math.ceil((y1 - miny) / cell))
    transform = Affine(cell, 0, x0, 0, -cell, y1)
    col, row = np.meshgrid(np.arange(nx), np.arange(ny))
    boxes = shapely.box(
        x0 + col.ravel() * cell,
        y1 - (row.ravel() + 1) * cell,
        x0 + (col.ravel() + 1) * cell,
        y1 - row.ravel() * cell,
    )
    totals = []
    for geoms in (ours, reference):
        acc = np.zeros(nx * ny, dtype=np.float64)
        if len(geoms):
            gi, ci = shapely.STRtree(boxes).query(geoms, predicate="intersects")
            if len(gi):
                acc += np.bincount(
                    ci, weights=shapely.area(shapely.intersection(geoms[gi], boxes[ci])), minlength=nx * ny
                )
        totals.append(acc * to_km2)
    diff = (totals[0] - totals[1]).reshape(ny, nx)
    empty = ((totals[0] == 0) & (totals[1] == 0)).reshape(ny, nx)
    return np.where(empty, np.nan, diff).astype(np.float32), transform


def write_comparison(comparison: Comparison, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the comparison: tables (CSV), summary (JSON), cell differences (GeoTIFF) and their map (PNG).

    Every file is written atomically.

    Args:
        comparison: The comparison.
        out_dir: Output folder (created if needed).

    Returns:
        Name -> path of ``matches.csv``, ``omitted.csv``, ``new.csv``, ``summary.json``,
        ``cell_diff.tif`` and ``cell_diff.png``.
    """
    import rasterio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out / name
        for name in (
            "matches.csv",
            "omitted.csv",
            "new.csv",
            "summary.json",
            "cell_diff.tif",
            "cell_diff.png",
        )
    }
    for name, table in (
        ("matches.csv", comparison.matches),
        ("omitted.csv", comparison.omitted),
        ("new.csv", comparison.new),
    ):
        with atomic_output(paths[name]) as tmp:
            table.to_csv(tmp, index=False)
    with atomic_output(paths["summary.json"]) as tmp:
        tmp.write_text(json.dumps(comparison.summary, indent=2, default=float) + "\n")
    cells = comparison.cell_diff_km2
    with atomic_output(paths["cell_diff.tif"]) as tmp:
        with rasterio.open(
            tmp,
            "w",
            driver="GTiff",
            height=cells.shape[0],
            width=cells.shape[1],
            count=1,
            dtype="float32",
            crs=comparison.cell_crs.to_wkt(),
            transform=comparison.cell_transform,
            nodata=np.nan,
        ) as dst:
            dst.write(cells, 1)
            dst.set_band_description(1, "glacier area ours minus reference per cell (km2)")
    with atomic_output(paths["cell_diff.png"]) as tmp:
        plot_cell_differences(comparison, tmp)
    return paths


def plot_cell_differences(comparison: Comparison, path: str | os.PathLike[str]) -> None:
    """Map of the per-cell area differences (Karakoram paper Figure S4 style), saved as an image.

    Args:
        comparison: The comparison.
        path: Image file (PNG).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = comparison.cell_diff_km2
    t = comparison.cell_transform
    extent = (
        t.c / 1000,
        (t.c + t.a * cells.shape[1]) / 1000,
        (t.f + t.e * cells.shape[0]) / 1000,
        t.f / 1000,
    )
    lim = float(np.nanmax(np.abs(cells))) if np.isfinite(cells).any() else 1.0
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    im = ax.imshow(cells, cmap="RdBu", vmin=-lim or -1, vmax=lim or 1, extent=extent, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="area ours - reference per cell (km$^2$)")
    s = comparison.summary
    ax.set_title(
        f"{s['n_matched']} matched, {s['n_omitted']} omitted, {s['n_new']} new; "
        f"{s['cell_size_km']:g} km cells",
        fontsize=9,
    )
    ax.set_xlabel("x (km)")
    ax.set_ylabel("y (km)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
