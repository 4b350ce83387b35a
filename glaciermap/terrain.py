"""Surface slope and aspect from elevation, with the ground pixel spacing of every row.

Horn's (1981) third-order finite difference over the 3x3 neighbourhood (Horn, B. K. P., 1981, Hill
shading and the reflectance map, Proc. IEEE 69(1), Eqs. for p = dz/dx and q = dz/dy, the weights 1-2-1 used
by GDAL ``gdaldem`` and ArcGIS). The spacing may vary by row, so geographic (lon/lat) grids get slopes in
degrees from metres, not from degrees of arc.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from affine import Affine
from pyproj import CRS


def slope_aspect(
    z: npt.NDArray[np.floating],
    dx_m: npt.NDArray[np.float64] | float,
    dy_m: npt.NDArray[np.float64] | float,
    where: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Slope and aspect of a north-up elevation grid.

    Args:
        z: Elevation in m, shape (H, W), NaN for nodata. Row 0 is the northern edge.
        dx_m: Pixel width in m, a scalar or one value per row, shape (H,).
        dy_m: Pixel height in m, a scalar or one value per row, shape (H,).
        where: Only compute these pixels (the others are NaN); None: all.

    Returns:
        ``(slope_deg, aspect_deg)``, float32 of shape (H, W). Slope in [0, 90) degrees; aspect is the
        azimuth of the downslope direction, degrees clockwise from north in [0, 360), NaN where the
        surface is flat. Both are NaN on the outer rows/columns, at nodata and next to it.
    """
    zz = np.asarray(z, dtype=np.float32)
    h, w = zz.shape
    slope = np.full((h, w), np.nan, dtype=np.float32)
    aspect = np.full((h, w), np.nan, dtype=np.float32)
    if h < 3 or w < 3:
        return slope, aspect
    inner = np.zeros((h, w), dtype=bool)
    inner[1:-1, 1:-1] = True
    if where is not None:
        inner &= np.asarray(where, dtype=bool)
    r, c = np.nonzero(inner & np.isfinite(zz))
    dx = np.broadcast_to(np.asarray(dx_m, dtype=np.float64), (h,))[r]
    dy = np.broadcast_to(np.asarray(dy_m, dtype=np.float64), (h,))[r]

    def at(dr: int, dc: int) -> npt.NDArray[np.float64]:
        return zz[r + dr, c + dc].astype(np.float64)

    # p: increase of z towards the east; q: increase of z towards the north (rows run southwards).
    p = ((at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))) / (8.0 * dx)
    q = ((at(-1, -1) + 2 * at(-1, 0) + at(-1, 1)) - (at(1, -1) + 2 * at(1, 0) + at(1, 1))) / (8.0 * dy)
    grad = np.hypot(p, q)
    slope[r, c] = np.degrees(np.arctan(grad))
    asp = np.degrees(np.arctan2(-p, -q)) % 360.0  # azimuth of (-p, -q): the steepest descent
    asp[grad == 0] = np.nan
    aspect[r, c] = asp
    return slope, aspect


def ground_spacing(
    crs: CRS, transform: Affine, rows: npt.NDArray[np.int64] | range
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Ground pixel width and height in m of the given rows of a north-up grid, for :func:`slope_aspect`.

    Projected CRSs: the pixel size times the CRS's linear unit (m, US survey feet, ...), the same on every row
    (the projection's scale error is ignored, as GDAL ``gdaldem`` does). Geographic CRSs: geodesic lengths on
    the CRS's ellipsoid (pyproj ``Geod``) of one pixel east-west and north-south at each row's centre
    latitude, so slopes are in degrees from metres, not from degrees of arc.

    Args:
        crs: The grid's CRS.
        transform: The grid's affine transform (north-up).
        rows: Row indices.

    Returns:
        ``(dx_m, dy_m)``, each of shape ``(len(rows),)``.
    """
    r = np.asarray(rows, dtype=np.float64)
    if crs.is_geographic:
        geod = crs.get_geod()
        assert geod is not None
        lat = transform.f + (r + 0.5) * transform.e
        lat = np.clip(lat, -89.999999, 89.999999)
        half_x, half_y = abs(transform.a) / 2, abs(transform.e) / 2
        zeros = np.zeros_like(lat)
        _, _, dx = geod.inv(zeros - half_x, lat, zeros + half_x, lat)
        _, _, dy = geod.inv(zeros, lat - half_y, zeros, lat + half_y)
        return np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    factor = 1.0
    if crs.axis_info:
        factor = float(crs.axis_info[0].unit_conversion_factor or 1.0)
    return (
        np.full(r.shape, abs(transform.a) * factor, dtype=np.float64),
        np.full(r.shape, abs(transform.e) * factor, dtype=np.float64),
    )


def hillshade(
    z: npt.NDArray[np.floating],
    dx_m: npt.NDArray[np.float64] | float,
    dy_m: npt.NDArray[np.float64] | float,
    *,
    azimuth_deg: float = 135.0,
    elevation_deg: float = 45.0,
) -> npt.NDArray[np.float32]:
    """Analytical hillshade of a north-up elevation grid: the cosine of the solar incidence angle.

    ``cos(i) = sin(e) cos(s) + cos(e) sin(s) cos(A - a)`` with sun elevation ``e``, sun azimuth ``A``, slope
    ``s`` and aspect ``a`` from :func:`slope_aspect` (Horn 1981); the illumination of a Lambertian surface,
    the layer optical bands are compared with in co-registration checks. Shadowed faces are clipped to 0.

    Args:
        z: Elevation in m, shape (H, W), NaN for nodata.
        dx_m: Pixel width in m (scalar or per row).
        dy_m: Pixel height in m (scalar or per row).
        azimuth_deg: Sun azimuth, degrees clockwise from north.
        elevation_deg: Sun elevation above the horizon, degrees.

    Returns:
        float32 (H, W) in [0, 1]; NaN where the slope is NaN (edges, nodata).
    """
    slope, aspect = slope_aspect(z, dx_m, dy_m)
    s = np.radians(slope.astype(np.float64))
    a = np.radians(np.nan_to_num(aspect.astype(np.float64), nan=0.0))  # flat: the aspect term is 0 anyway
    e, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    shade = math.sin(e) * np.cos(s) + math.cos(e) * np.sin(s) * np.cos(az - a)
    return np.clip(shade, 0.0, 1.0).astype(np.float32)
