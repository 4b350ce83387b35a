"""Per-glacier attributes with the RGI 7 field names.

Definitions (RGI 7.0 attribute metadata, ``rgi7_scripts/workflow/postprocessing/attributes_metadata``, and
the RGI 6.0 technical report, section 4, for the statistics it does not spell out), all from the DEM
pixels inside the glacier on the class grid, nodata pixels left out:

* ``area_km2``: sum of the ground areas of the glacier's pixels (the exact polygon area on projected grids,
  ellipsoidal cell areas on geographic grids), km2.
* ``area_debris_km2``: the same for its debris-covered pixels (class 2), km2.
* ``zmin_m`` / ``zmax_m``: lowest / highest pixel elevation, m.
* ``zmed_m``: median of the pixel elevations, the contour that halves the glacier area (RGI 6 ``Zmed``), m.
* ``zmean_m``: mean of the pixel elevations, m.
* ``slope_deg``: mean of the pixel slopes (Horn 1981 on the DEM), degrees.
* ``aspect_deg``: circular mean of the pixel aspects, ``atan2(mean sin, mean cos)`` (flat pixels left out),
  degrees clockwise from north.
* ``aspect_sec``: RGI aspect sector of ``aspect_deg``: 1 N (337.5-22.5), 2 NE, 3 E, 4 SE, 5 S, 6 SW, 7 W,
  8 NW; 0 when undefined.
* ``lmax_m``: longest flow line, approximated by the longest path inside the outline from the lowest pixel
  (the terminus) to any other pixel (8-connected geodesic distance in the map plane; the straight distance
  for glaciers of at most 300 pixels). RGI 7 uses OGGM centrelines, which stay in the middle of the ice,
  so ours is somewhat shorter on curved tongues, m.
* ``hypso_50m``: JSON ``{"<band lower bound, m>": area km2}`` of 50 m elevation bands (the RGI hypsometry
  bands; RGI 6 gives them in per mille of the area, we give km2).
* ``cenlon`` / ``cenlat``: representative point of the outline (inside it and roughly central, not the
  centroid; RGI 7), degrees in EPSG:4326.
* ``termlon`` / ``termlat``: the lowest glacier pixel (RGI 7), degrees in EPSG:4326.
* ``dem_cover``: fraction of the glacier area with valid DEM pixels (not an RGI field).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from skimage.graph import MCP_Geometric

HYPSOMETRY_BAND_M = 50.0
"""Width of the hypsometry elevation bands, m (RGI)."""

ASPECT_SECTORS: tuple[str, ...] = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
"""Names of the RGI aspect sectors 1..8."""

LMAX_MAX_PIXELS = 20_000
"""Glaciers with more pixels are coarsened (block maximum) before the flow-line search, to bound the cost."""

LMAX_STRAIGHT_PIXELS = 300
"""Glaciers with at most this many pixels use the straight distance from the terminus (no path search)."""


def aspect_sector(aspect_deg: float) -> int:
    """RGI aspect sector of an azimuth: 1 N (337.5-22.5 degrees), 2 NE, ..., 8 NW; 0 if undefined.

    Args:
        aspect_deg: Azimuth in degrees clockwise from north (NaN: undefined).

    Returns:
        The sector number 0..8.
    """
    if not math.isfinite(aspect_deg):
        return 0
    return int(((aspect_deg + 22.5) % 360.0) // 45.0) + 1


def circular_mean_deg(angles_deg: npt.NDArray[np.floating]) -> float:
    """Circular mean of angles, ``atan2(mean sin, mean cos)`` in [0, 360) degrees (NaN if undefined).

    Args:
        angles_deg: Angles in degrees; NaN values are ignored.

    Returns:
        The mean direction in degrees, NaN if there are no angles or they cancel out.
    """
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    a = a[np.isfinite(a)]
    if a.size == 0:
        return math.nan
    s, c = float(np.mean(np.sin(a))), float(np.mean(np.cos(a)))
    if math.hypot(s, c) < 1e-12:
        return math.nan
    return math.degrees(math.atan2(s, c)) % 360.0


def hypsometry(
    z: npt.NDArray[np.floating], area_m2: npt.NDArray[np.floating], band_m: float = HYPSOMETRY_BAND_M
) -> dict[int, float]:
    """Glacier area per elevation band.

    Args:
        z: Pixel elevations, m (valid values only).
        area_m2: Pixel areas, m2, same shape.
        band_m: Band width, m.

    Returns:
        Band lower bound (m, a multiple of ``band_m``) -> area in km2, for the bands holding pixels,
        ascending.
    """
    if z.size == 0:
        return {}
    band = np.floor(np.asarray(z, dtype=np.float64) / band_m).astype(np.int64)
    lo = int(band.min())
    sums = np.bincount(band - lo, weights=np.asarray(area_m2, dtype=np.float64))
    return {int((lo + i) * band_m): float(s) / 1e6 for i, s in enumerate(sums) if s > 0}


def longest_flowline_m(
    mask: npt.NDArray[np.bool_], start: tuple[int, int], dx_m: float, dy_m: float
) -> float:
    """Longest path inside a glacier from its terminus: the largest 8-connected geodesic distance, m.

    Large glaciers (more than :data:`LMAX_MAX_PIXELS` pixels) are searched on a grid coarsened by an
    integer factor (a coarse cell belongs to the glacier if any of its pixels does); for small ones (at
    most :data:`LMAX_STRAIGHT_PIXELS` pixels, compact at that size) the straight distance is used.

    Args:
        mask: The glacier's pixels, shape (H, W).
        start: (row, col) of the terminus pixel.
        dx_m: Pixel width, m.
        dy_m: Pixel height, m.

    Returns:
        The length in m (0 for a one-pixel glacier).
    """
    m = np.asarray(mask, dtype=bool)
    n = int(m.sum())
    if n <= LMAX_STRAIGHT_PIXELS:
        rows, cols = np.nonzero(m)
        return float(np.sqrt((((rows - start[0]) * dy_m) ** 2 + ((cols - start[1]) * dx_m) ** 2).max()))
    f = max(1, math.ceil(math.sqrt(n / LMAX_MAX_PIXELS))) if n > LMAX_MAX_PIXELS else 1
    if f > 1:
        h, w = m.shape
        hp, wp = -(-h // f) * f, -(-w // f) * f
        padded = np.zeros((hp, wp), dtype=bool)
        padded[:h, :w] = m
        m = np.asarray(padded.reshape(hp // f, f, wp // f, f).any(axis=(1, 3)), dtype=bool)
        start = (start[0] // f, start[1] // f)
    costs = np.where(m, 1.0, np.inf)
    mcp = MCP_Geometric(costs, fully_connected=True, sampling=(dy_m * f, dx_m * f))
    dist, _ = mcp.find_costs([start])
    reach = dist[m & np.isfinite(dist)]
    return float(reach.max()) if reach.size else 0.0


def glacier_attributes(
    mask: npt.NDArray[np.bool_],
    z: npt.NDArray[np.floating],
    slope: npt.NDArray[np.floating],
    aspect: npt.NDArray[np.floating],
    debris: npt.NDArray[np.bool_],
    row_area_m2: npt.NDArray[np.float64],
    row_dx_m: npt.NDArray[np.float64],
    row_dy_m: npt.NDArray[np.float64],
) -> dict[str, Any]:
    """Attributes of one glacier from rasters cropped around it (see the module docstring).

    Args:
        mask: The glacier's pixels, shape (H, W).
        z: Elevation, m, NaN for nodata.
        slope: Slope, degrees (:func:`glaciermap.terrain.slope_aspect`).
        aspect: Aspect, degrees.
        debris: Debris-covered pixels (class 2).
        row_area_m2: Pixel area of each row, m2, shape (H,).
        row_dx_m: Pixel width of each row, m.
        row_dy_m: Pixel height of each row, m.

    Returns:
        A dict with ``area_km2``, ``area_debris_km2``, ``zmin_m``, ``zmax_m``, ``zmed_m``, ``zmean_m``,
        ``slope_deg``, ``aspect_deg``, ``aspect_sec``, ``lmax_m``, ``hypso_50m`` (JSON text),
        ``dem_cover`` and the terminus pixel ``term_row``/``term_col`` (-1 if no valid DEM pixel).
    """
    m = np.asarray(mask, dtype=bool)
    rows, cols = np.nonzero(m)
    pix_area = row_area_m2[rows]
    area_m2 = float(pix_area.sum())
    zv = np.asarray(z, dtype=np.float64)[rows, cols]
    valid = np.isfinite(zv)
    out: dict[str, Any] = {
        "area_km2": area_m2 / 1e6,
        "area_debris_km2": float(pix_area[np.asarray(debris, dtype=bool)[rows, cols]].sum()) / 1e6,
        "dem_cover": float(pix_area[valid].sum()) / area_m2 if area_m2 > 0 else 0.0,
    }
    if valid.any():
        zz = zv[valid]
        lowest = int(np.flatnonzero(valid)[np.argmin(zz)])
        term = (int(rows[lowest]), int(cols[lowest]))
        sv = np.asarray(slope, dtype=np.float64)[rows, cols]
        av = np.asarray(aspect, dtype=np.float64)[rows, cols]
        out.update(
            zmin_m=float(zz.min()),
            zmax_m=float(zz.max()),
            zmed_m=float(np.median(zz)),
            zmean_m=float(zz.mean()),
            slope_deg=float(np.nanmean(sv)) if np.isfinite(sv).any() else math.nan,
            aspect_deg=circular_mean_deg(av),
            hypso_50m=json.dumps({str(k): round(v, 6) for k, v in hypsometry(zz, pix_area[valid]).items()}),
            lmax_m=longest_flowline_m(
                m, term, float(np.mean(row_dx_m[rows])), float(np.mean(row_dy_m[rows]))
            ),
            term_row=term[0],
            term_col=term[1],
        )
    else:
        out.update(
            zmin_m=math.nan,
            zmax_m=math.nan,
            zmed_m=math.nan,
            zmean_m=math.nan,
            slope_deg=math.nan,
            aspect_deg=math.nan,
            hypso_50m="{}",
            lmax_m=math.nan,
            term_row=-1,
            term_col=-1,
        )
    out["aspect_sec"] = aspect_sector(out["aspect_deg"])
    return out


def expand_hypsometry(hypso_json: list[str] | Any) -> dict[int, list[float]]:
    """Expand the ``hypso_50m`` column into one column per 50 m band (area km2, 0 where absent).

    Args:
        hypso_json: The ``hypso_50m`` strings of the glaciers (a list or a pandas Series).

    Returns:
        Band lower bound (m) -> list of areas (km2), one per glacier, bands ascending.
    """
    parsed = [{int(k): float(v) for k, v in json.loads(s).items()} for s in list(hypso_json)]
    bands = sorted({b for d in parsed for b in d})
    return {b: [d.get(b, 0.0) for d in parsed] for b in bands}
