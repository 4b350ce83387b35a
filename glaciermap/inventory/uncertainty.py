"""Area uncertainty of glacier outlines by the buffer method.

Karakoram paper, section 3.3.3 (after Paul et al. 2013, *On the accuracy of glacier outlines derived from
remote-sensing data*, Ann. Glaciol. 54(63)): each glacier polygon is buffered outwards and inwards by
``N`` pixels (the paper: +/-2 pixels of its 2 m imagery, i.e. +/-4 m; our default is 1 pixel), and the
uncertainty of the area is half the difference of the two buffered areas::

    sigma_A = (A(buffer +N*px) - A(buffer -N*px)) / 2

(the section gives no equation number). The inventory's total uncertainty is the sum over glaciers
(buffer errors along outlines are systematic, so they add up rather than cancel). Buffers are computed in
metres: projected CRSs directly, geographic ones in a Lambert azimuthal equal-area projection centred on
the data.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS

BUFFER_QUAD_SEGS = 4
"""Segments per quarter circle of the round buffer joins."""


def metric_crs_for(crs: CRS | str, bounds: tuple[float, float, float, float]) -> CRS:
    """A CRS in metres for data in ``crs`` within ``bounds``.

    Args:
        crs: The data's CRS.
        bounds: ``(minx, miny, maxx, maxy)`` of the data in ``crs``.

    Returns:
        ``crs`` itself if it is projected, otherwise a Lambert azimuthal equal-area projection (WGS 84)
        centred on ``bounds``.
    """
    c = CRS.from_user_input(crs)
    if c.is_projected:
        return c
    minx, miny, maxx, maxy = bounds
    lon0, lat0 = (minx + maxx) / 2.0, (miny + maxy) / 2.0
    return CRS.from_proj4(
        f"+proj=laea +lat_0={lat0:.6f} +lon_0={lon0:.6f} +x_0=0 +y_0=0 +datum=WGS84 +units=m"
    )


def metric_crs(gdf: gpd.GeoDataFrame) -> CRS:
    """A CRS in metres in which areas and buffers of ``gdf`` are computed (see :func:`metric_crs_for`).

    Args:
        gdf: Geometries with a CRS.

    Returns:
        ``gdf``'s own CRS if it is projected, otherwise an equal-area projection centred on the geometries.
    """
    bounds = tuple(gdf.total_bounds) if len(gdf) else (0.0, 0.0, 0.0, 0.0)
    return metric_crs_for(gdf.crs, bounds)  # type: ignore[arg-type]


def buffer_uncertainty_m2(geoms: npt.NDArray[np.object_], distance: float) -> npt.NDArray[np.float64]:
    """``(A(buffer +d) - A(buffer -d)) / 2`` of every polygon, in squared CRS units (Karakoram paper 3.3.3).

    Args:
        geoms: Polygons in a projected CRS.
        distance: Buffer distance d in CRS units.

    Returns:
        The uncertainty of each polygon's area.
    """
    if len(geoms) == 0 or distance == 0:
        return np.zeros(len(geoms), dtype=np.float64)
    outer = shapely.area(shapely.buffer(geoms, distance, quad_segs=BUFFER_QUAD_SEGS))
    inner = shapely.area(shapely.buffer(geoms, -distance, quad_segs=BUFFER_QUAD_SEGS))
    result: npt.NDArray[np.float64] = (outer - inner) / 2.0
    return result


def buffer_uncertainty_km2(
    gdf: gpd.GeoDataFrame, buffer_pixels: float, pixel_size_m: float
) -> npt.NDArray[np.float64]:
    """Buffer-method area uncertainty of every polygon of a GeoDataFrame (Karakoram paper 3.3.3).

    Args:
        gdf: Polygons (glaciers or debris) with a CRS.
        buffer_pixels: Buffer width N in pixels.
        pixel_size_m: Ground pixel size, m.

    Returns:
        ``(A(+N px) - A(-N px)) / 2`` per polygon, km2 (0 for ``buffer_pixels == 0``).
    """
    if len(gdf) == 0 or buffer_pixels == 0:
        return np.zeros(len(gdf), dtype=np.float64)
    crs = metric_crs(gdf)
    same = CRS.from_user_input(gdf.crs).equals(crs)
    geoms = np.asarray(gdf.geometry.values if same else gdf.to_crs(crs).geometry.values)
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return buffer_uncertainty_m2(geoms, buffer_pixels * pixel_size_m / unit) * unit * unit / 1e6
