"""Karakoram inventory analysis: glacier type from the accumulation-area ratio, multi-digitisation uncertainty.

* Glacier type (Karakoram paper Sec. 4.4, after Hewitt 2011 and Xie et al. 2023): the accumulation-area
  ratio ``AAR = accumulation area / glacier area``, the accumulation zone being the part of the glacier above
  the snow line (given as an elevation, e.g. from an albedo product) or covered by a snow mask; then
  Turkestan type for ``AAR <= 0.3``, Mustagh type for ``0.3 < AAR <= 0.6`` and Alpine type for ``AAR > 0.6``.
  The paper applies it to glaciers larger than 5 km2 (:data:`MIN_AREA_KM2`).
* Multi-digitisation uncertainty (Karakoram paper Sec. 3.3.3, the round-robin "multi-manual digitisation"
  after Paul et al. 2013): the mean of several independent digitisations of the same glaciers is the
  reference area of each glacier, and the uncertainty of the automated outline is the relative difference
  ``100 * (A_auto - mean(A_manual)) / mean(A_manual)`` (%), summarised over glaciers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from glaciermap.errors import ConfigError, InputError
from glaciermap.inventory.inputs import ClassGrid, DemReader

if TYPE_CHECKING:
    import geopandas as gpd

GlacierType = Literal["Turkestan", "Mustagh", "Alpine"]
"""Glacier types by AAR (Karakoram paper Sec. 4.4)."""

TURKESTAN_MAX: Final[float] = 0.3
MUSTAGH_MAX: Final[float] = 0.6
"""AAR upper bounds of the Turkestan (<= 0.3) and Mustagh (<= 0.6) types; above: Alpine."""

MIN_AREA_KM2: Final[float] = 5.0
"""The paper types glaciers larger than 5 km2 only."""


def accumulation_area_ratio(
    glacier: npt.NDArray[np.bool_],
    *,
    elevation: npt.NDArray[np.floating] | None = None,
    snowline_m: float | None = None,
    snow: npt.NDArray[np.bool_] | None = None,
    pixel_area: npt.NDArray[np.floating] | float = 1.0,
) -> float:
    """Accumulation-area ratio of one glacier (Karakoram paper Sec. 4.4).

    Give either ``elevation`` and ``snowline_m`` (accumulation zone = glacier pixels at or above the snow
    line) or ``snow`` (accumulation zone = snow-covered glacier pixels).

    Args:
        glacier: ``(H, W)`` True on the glacier.
        elevation: ``(H, W)`` elevation in m (NaN = nodata, excluded from both areas).
        snowline_m: Snow-line altitude in m.
        snow: ``(H, W)`` True where the surface is snow (accumulation zone).
        pixel_area: Area of each pixel (any unit; a scalar or ``(H, W)`` for geographic grids).

    Returns:
        AAR in [0, 1].

    Raises:
        ConfigError: If neither or both ways of giving the snow line are used.
        InputError: If shapes differ or the glacier has no (valid) pixel.
    """
    by_elevation = elevation is not None or snowline_m is not None
    if by_elevation == (snow is not None) or (by_elevation and (elevation is None or snowline_m is None)):
        raise ConfigError(
            "give either elevation and snowline_m, or a snow mask, to delimit the accumulation zone"
        )
    g = np.asarray(glacier, dtype=bool)
    area = np.broadcast_to(np.asarray(pixel_area, dtype=np.float64), g.shape)
    if snow is not None:
        s = np.asarray(snow, dtype=bool)
        if s.shape != g.shape:
            raise InputError(f"snow mask {s.shape} and glacier {g.shape} differ; expected one grid")
        valid = g
        accumulation = g & s
    else:
        z = np.asarray(elevation, dtype=np.float64)
        if z.shape != g.shape:
            raise InputError(f"elevation {z.shape} and glacier {g.shape} differ; expected one grid")
        valid = g & np.isfinite(z)
        accumulation = valid & (z >= float(snowline_m))  # type: ignore[arg-type]
    total = float(area[valid].sum())
    if total <= 0:
        raise InputError(
            "the glacier has no valid pixel; expected glacier pixels with elevation or snow data"
        )
    return float(area[accumulation].sum()) / total


def glacier_type(aar: float) -> GlacierType:
    """Glacier type from its AAR: Turkestan (<= 0.3), Mustagh (0.3, 0.6], Alpine (> 0.6).

    Args:
        aar: Accumulation-area ratio in [0, 1].

    Returns:
        The type.

    Raises:
        InputError: If ``aar`` is not in [0, 1].
    """
    if not 0.0 <= aar <= 1.0:
        raise InputError(f"AAR is {aar!r}; expected a ratio in [0, 1]")
    if aar <= TURKESTAN_MAX:
        return "Turkestan"
    if aar <= MUSTAGH_MAX:
        return "Mustagh"
    return "Alpine"


def _glacier_window(geometry: object, grid: ClassGrid) -> tuple[int, int, int, int] | None:
    """``(row0, col0, height, width)`` of the class-grid pixels under a polygon's bounds (None if outside)."""
    import rasterio.windows

    left, bottom, right, top = geometry.bounds  # type: ignore[attr-defined]
    win = rasterio.windows.from_bounds(left, bottom, right, top, grid.transform)
    row0, col0 = max(0, math.floor(win.row_off)), max(0, math.floor(win.col_off))
    row1 = min(grid.height, math.ceil(win.row_off + win.height))
    col1 = min(grid.width, math.ceil(win.col_off + win.width))
    if row1 <= row0 or col1 <= col0:
        return None
    return row0, col0, row1 - row0, col1 - col0


def _glacier_aar(
    geometry: object, grid: ClassGrid, reader: DemReader, snowline_m: float | None, by_mask: bool
) -> float:
    """AAR of one glacier polygon on the class grid (NaN if it has no valid pixel or lies outside)."""
    from rasterio.features import rasterize

    window = _glacier_window(geometry, grid)
    if window is None:
        return math.nan
    row0, col0, h, w = window
    inside = rasterize(
        [geometry], out_shape=(h, w), transform=grid.window_transform(row0, col0), dtype="uint8"
    ).astype(bool)
    values = reader.read(row0, col0, h, w)
    area = grid.row_area_m2[row0 : row0 + h, None]
    try:
        if by_mask:
            return accumulation_area_ratio(inside, snow=np.nan_to_num(values, nan=0.0) != 0, pixel_area=area)
        return accumulation_area_ratio(inside, elevation=values, snowline_m=snowline_m, pixel_area=area)
    except InputError:  # no valid pixel under this glacier
        return math.nan


def add_glacier_types(
    glaciers: gpd.GeoDataFrame,
    grid: ClassGrid,
    *,
    dem_path: str | Path | None = None,
    snowline_m: float | None = None,
    snow_path: str | Path | None = None,
    min_area_km2: float = MIN_AREA_KM2,
) -> gpd.GeoDataFrame:
    """Add ``aar`` and ``glacier_type`` to an inventory's glaciers (Karakoram paper Sec. 4.4).

    Each glacier polygon is rasterised on the class grid (pixel centres inside); its accumulation zone is the
    part at or above ``snowline_m`` on the DEM (bilinear on the class grid), or the part where the snow mask
    (band 1, nonzero = snow, nearest-neighbour on the class grid) is set; areas are ellipsoidal pixel areas.
    ``glacier_type`` is set for glaciers of at least ``min_area_km2`` (the paper: 5 km2), empty otherwise;
    ``aar`` is NaN where the glacier has no valid DEM pixel.

    Args:
        glaciers: The inventory's glaciers (``area_km2`` and polygons in the class grid's CRS).
        grid: The class grid.
        dem_path: DEM (band 1 elevation, m), with ``snowline_m``.
        snowline_m: Snow-line altitude, m.
        snow_path: Snow mask GeoTIFF (instead of the DEM and snow line).
        min_area_km2: Smallest glacier that is typed, km2.

    Returns:
        A copy of ``glaciers`` with the two columns.

    Raises:
        ConfigError: If neither or both of (``dem_path`` and ``snowline_m``) and ``snow_path`` are given.
        InputError: If the DEM or the snow mask cannot be read on the class grid.
    """
    from rasterio.enums import Resampling

    if (snowline_m is None) == (snow_path is None) or (snowline_m is not None and dem_path is None):
        raise ConfigError(
            "give either --snow-line ELEVATION_M (with the DEM) or --snow-mask MASK.tif, not both"
        )
    if snow_path is not None:
        reader = DemReader(snow_path, grid, what="snow mask", resampling=Resampling.nearest)
    else:
        assert dem_path is not None
        reader = DemReader(dem_path, grid)
    try:
        aars = [_glacier_aar(g, grid, reader, snowline_m, snow_path is not None) for g in glaciers.geometry]
    finally:
        reader.close()
    out = glaciers.copy()
    out["aar"] = aars
    out["glacier_type"] = [
        glacier_type(a) if np.isfinite(a) and area >= min_area_km2 else ""
        for a, area in zip(aars, glaciers["area_km2"], strict=True)
    ]
    return out


def multi_digitisation_uncertainty(
    automated_km2: Mapping[str, float], digitisations_km2: Sequence[Mapping[str, float]]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Area difference of automated outlines against the mean of several manual digitisations.

    Karakoram paper Sec. 3.3.3 (round robin after Paul et al. 2013): for each glacier digitised by every
    interpreter, ``reference = mean of the manual areas`` and ``difference_pct = 100 * (automated - reference)
    / reference``; the spread of the manual areas (``manual_cv_pct``, their standard deviation over the mean)
    shows the interpreters' own uncertainty.

    Args:
        automated_km2: Glacier id -> area of the automated outline (km2).
        digitisations_km2: One mapping per interpreter: glacier id -> digitised area (km2).

    Returns:
        A table with one row per glacier (``glacier``, ``automated_km2``, ``reference_km2``,
        ``difference_km2``, ``difference_pct``, ``manual_cv_pct``), and a summary: ``n_glaciers``,
        ``total_difference_pct`` (difference of the summed areas), ``mean_abs_difference_pct`` and
        ``rms_difference_pct`` over glaciers.

    Raises:
        InputError: If fewer than two digitisations are given, no glacier is in all of them and the
            automated outlines, or a reference area is not positive.
    """
    if len(digitisations_km2) < 2:
        raise InputError(
            f"{len(digitisations_km2)} digitisation(s) given; expected at least two independent digitisations"
        )
    common = set(automated_km2)
    for d in digitisations_km2:
        common &= set(d)
    if not common:
        raise InputError(
            "no glacier id is in the automated outlines and in every digitisation; expected shared ids"
        )
    rows = []
    for gid in sorted(common):
        manual = np.array([float(d[gid]) for d in digitisations_km2])
        reference = float(manual.mean())
        if reference <= 0:
            raise InputError(
                f"glacier {gid!r}: mean digitised area is {reference:g} km2; expected a positive area"
            )
        auto = float(automated_km2[gid])
        rows.append(
            {
                "glacier": gid,
                "automated_km2": auto,
                "reference_km2": reference,
                "difference_km2": auto - reference,
                "difference_pct": 100.0 * (auto - reference) / reference,
                "manual_cv_pct": 100.0 * float(manual.std(ddof=1)) / reference,
            }
        )
    table = pd.DataFrame(rows)
    pct = table["difference_pct"].to_numpy()
    summary = {
        "n_glaciers": float(len(table)),
        "total_difference_pct": 100.0
        * float(table["difference_km2"].sum())
        / float(table["reference_km2"].sum()),
        "mean_abs_difference_pct": float(np.abs(pct).mean()),
        "rms_difference_pct": float(np.sqrt((pct**2).mean())),
    }
    return table, summary


def matched_areas(matches: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Areas per glacier of ours from the matches of :func:`~glaciermap.inventory.compare.compare_inventories`.

    A glacier of ours matched to several digitised polygons gets their summed area.

    Args:
        matches: ``Comparison.matches`` (``id_ours``, ``area_ours_km2``, ``area_ref_km2``).

    Returns:
        ``(ours, digitised)``: id of our glacier (as a string) -> its area, and -> the matched digitised area
        (km2).
    """
    ids = matches["id_ours"].astype(str)
    ours = dict(zip(ids, matches["area_ours_km2"].astype(float), strict=True))
    digitised = matches.assign(id_ours=ids).groupby("id_ours")["area_ref_km2"].sum()
    return ours, {str(k): float(v) for k, v in digitised.items()}
