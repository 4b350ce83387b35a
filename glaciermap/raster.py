"""The raster grid: CRS, transform, shape, the same-grid test, row strips and ground pixel areas.

:class:`RasterGrid` is the one owner of grid geometry in glaciermap. The map summary, the inventory, the
evaluation and the synthetic world all take pixel areas from :meth:`RasterGrid.row_geometry`, so they
report the same glacier areas for the same pixels.

Pixel areas:

* Geographic grids (longitude/latitude): the exact area on the CRS's ellipsoid (WGS84 unless the CRS says
  otherwise) of the cell between two meridians and two parallels, ``b**2 * dlon / 2 * (q(lat2) - q(lat1))``
  with the authalic function ``q(phi) = sin(phi) / (1 - e2 sin2(phi)) + ln((1 + e sin(phi)) /
  (1 - e sin(phi))) / (2 e)`` (Snyder 1987, *Map Projections: A Working Manual*, Eq. 3-12 and the zone area
  that follows from it). Pixel widths use the radius of the parallel ``N cos(phi)`` and heights the
  meridional radius ``M`` (Snyder 1987, Eqs. 4-18 and 4-20) at the row centre.
* Projected grids: the exact map-plane area ``|a e|`` in the CRS's linear unit converted to metres, i.e.
  the area a GIS reports for the same pixels' polygons in that CRS (exact on the ellipsoid for equal-area
  projections; in UTM it differs from the ellipsoidal area by the areal scale factor, within 0.2 %).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from glaciermap.errors import InputError

__all__ = [
    "GRID_TOLERANCE",
    "STRIP_PIXELS",
    "RasterGrid",
    "ellipsoid_row_geometry",
    "row_windows",
]

GRID_TOLERANCE: Final[float] = 1e-6
"""Two grids are the same when every transform coefficient agrees to this fraction of a pixel."""

STRIP_PIXELS: Final[int] = 4 * 1024 * 1024
"""Default size of a row strip (pixels): about 4 million."""

_WGS84_AXES: Final[tuple[float, float]] = (6378137.0, 6356752.314245179)


def row_windows(height: int, width: int, max_pixels: int | None = None) -> list[Window]:
    """Split a raster into full-width strips of at most ``max_pixels`` pixels (at least one row each).

    Args:
        height: Raster height (pixels).
        width: Raster width (pixels).
        max_pixels: Largest strip size (pixels); default :data:`STRIP_PIXELS`.

    Returns:
        The strips, top to bottom.
    """
    rows = max(1, (max_pixels or STRIP_PIXELS) // max(width, 1))
    return [Window(0, r, width, min(rows, height - r)) for r in range(0, height, rows)]


def _ellipsoid_axes(crs: Any) -> tuple[float, float]:
    """Semi-major and semi-minor axes (m) of a CRS's ellipsoid (WGS84 if it names none)."""
    from pyproj import CRS as ProjCRS

    ell = ProjCRS.from_user_input(crs.to_wkt()).ellipsoid
    if ell is None:
        return _WGS84_AXES
    return float(ell.semi_major_metre), float(ell.semi_minor_metre)


def ellipsoid_row_geometry(
    transform: Affine, height: int, crs: Any
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Ground area, width and height of the pixels of each row of a geographic (lon/lat) grid.

    See the module docstring for the formulas (Snyder 1987, Eqs. 3-12, 4-18 and 4-20).

    Args:
        transform: North-up affine transform in degrees.
        height: Number of rows.
        crs: The geographic CRS (its ellipsoid is used).

    Returns:
        ``(area_m2, dx_m, dy_m)``, each of shape (height,).
    """
    a, b = _ellipsoid_axes(crs)
    e2 = 1.0 - (b * b) / (a * a)
    e = math.sqrt(e2)
    dlon = math.radians(abs(transform.a))
    lat_top = transform.f + transform.e * np.arange(height, dtype=np.float64)
    lat_bot = lat_top + transform.e
    phi1 = np.radians(np.minimum(lat_top, lat_bot))
    phi2 = np.radians(np.maximum(lat_top, lat_bot))

    def q(phi: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        s = np.sin(phi)
        if e == 0.0:
            return 2.0 * s
        out: npt.NDArray[np.float64] = s / (1.0 - e2 * s * s) + np.log((1.0 + e * s) / (1.0 - e * s)) / (
            2.0 * e
        )
        return out

    area = np.abs(b * b * dlon / 2.0 * (q(phi2) - q(phi1)))
    phic = (phi1 + phi2) / 2.0
    w = 1.0 - e2 * np.sin(phic) ** 2
    n_radius = a / np.sqrt(w)
    m_radius = a * (1.0 - e2) / w**1.5
    dx = n_radius * np.cos(phic) * dlon
    dy = m_radius * np.radians(abs(transform.e))
    return area, dx, dy


def _linear_unit_m(crs: Any) -> float:
    """Metres per linear unit of a projected CRS (rasterio or pyproj; 1 when it does not say)."""
    from pyproj import CRS as ProjCRS

    axes = ProjCRS.from_user_input(crs.to_wkt()).axis_info
    factor = axes[0].unit_conversion_factor if axes and axes[0].unit_conversion_factor else 1.0
    return float(factor)


@dataclass(frozen=True)
class RasterGrid:
    """A north-up raster grid: CRS, affine transform and shape.

    Args:
        crs: The coordinate reference system (rasterio's or pyproj's).
        transform: The affine transform of the top-left pixel corner.
        height: Rows.
        width: Columns.
    """

    crs: Any
    transform: Affine
    height: int
    width: int

    @classmethod
    def of(cls, dataset: Any) -> RasterGrid:
        """The grid of an open rasterio dataset (or anything with ``crs``, ``transform``, ``height``, ``width``)."""
        crs = dataset.crs
        if crs is not None and not isinstance(crs, CRS):
            crs = CRS.from_user_input(crs)
        return cls(crs, dataset.transform, int(dataset.height), int(dataset.width))

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> RasterGrid:
        """The grid of a raster file.

        Raises:
            InputError: If the file cannot be opened as a raster.
        """
        from glaciermap.io import open_raster

        with open_raster(path) as src:
            return cls.of(src)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return self.height, self.width

    @property
    def geographic(self) -> bool:
        """Whether the CRS is geographic (longitude/latitude in degrees)."""
        return bool(self.crs is not None and self.crs.is_geographic)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units."""
        t = self.transform
        xs = (t.c, t.c + t.a * self.width)
        ys = (t.f, t.f + t.e * self.height)
        return (min(xs), min(ys), max(xs), max(ys))

    def xy(self, row: float, col: float) -> tuple[float, float]:
        """CRS coordinates of a (fractional) pixel position; ``(row + 0.5, col + 0.5)`` is a pixel centre."""
        t = self.transform
        return t.c + t.a * col, t.f + t.e * row

    def window_transform(self, row0: int, col0: int) -> Affine:
        """Affine transform of a window whose top-left pixel is (``row0``, ``col0``)."""
        t = self.transform
        return Affine(t.a, t.b, t.c + t.a * col0 + t.b * row0, t.d, t.e, t.f + t.d * col0 + t.e * row0)

    def difference(
        self, other: RasterGrid, name: str = "this grid", other_name: str = "the other"
    ) -> str | None:
        """Why ``other`` is not this grid (shape, CRS or transform), or ``None`` if it is the same grid.

        Transforms are compared coefficient by coefficient to :data:`GRID_TOLERANCE` of a pixel.

        Args:
            other: The grid to compare.
            name: Name of this grid's raster, for the message.
            other_name: Name of the other raster, for the message.

        Returns:
            A sentence naming both grids and what differs, or ``None``.
        """
        if self.shape != other.shape:
            return (
                f"{name} has {self.height} x {self.width} pixels but {other_name} has "
                f"{other.height} x {other.width}"
            )
        if self.crs != other.crs:
            return f"{name} is in CRS {self.crs} but {other_name} is in {other.crs}"
        pixel = min(abs(self.transform.a), abs(self.transform.e)) or 1.0
        tol = GRID_TOLERANCE * pixel
        coeffs = zip(tuple(self.transform)[:6], tuple(other.transform)[:6], strict=True)
        if any(abs(p - q) > tol for p, q in coeffs):
            return (
                f"{name} and {other_name} have different geotransforms ({tuple(self.transform)[:6]} vs "
                f"{tuple(other.transform)[:6]})"
            )
        return None

    def check_same(self, other: RasterGrid, name: str, other_name: str) -> None:
        """Raise unless ``other`` is this grid.

        Args:
            other: The grid to compare.
            name: Name of this grid's raster, for the message.
            other_name: Name of the other raster, for the message.

        Raises:
            InputError: Naming both inputs and what differs.
        """
        why = self.difference(other, name, other_name)
        if why is not None:
            raise InputError(f"{why}; expected the same grid")

    def strips(self, max_pixels: int | None = None) -> list[Window]:
        """Full-width row strips of at most ``max_pixels`` pixels (:func:`row_windows`)."""
        return row_windows(self.height, self.width, max_pixels)

    def row_geometry(
        self, row0: int = 0, row1: int | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Ground area (m2), width (m) and height (m) of one pixel of each row ``row0 .. row1 - 1``.

        The one pixel-area function of glaciermap (see the module docstring).

        Args:
            row0: First row.
            row1: One past the last row (default: the grid height).

        Returns:
            ``(area_m2, dx_m, dy_m)``, each of shape ``(row1 - row0,)``.

        Raises:
            InputError: If the grid has no CRS or is rotated.
        """
        row1 = self.height if row1 is None else row1
        n = max(0, row1 - row0)
        t = self.transform
        if self.crs is None:
            raise InputError("the raster has no CRS; expected a georeferenced grid to compute pixel areas")
        if t.b != 0 or t.d != 0:
            raise InputError(f"expected a north-up raster without rotation, got transform {tuple(t)[:6]}")
        if self.geographic:
            return ellipsoid_row_geometry(self.window_transform(row0, 0), n, self.crs)
        unit = _linear_unit_m(self.crs)
        dx = np.full(n, abs(t.a) * unit)
        dy = np.full(n, abs(t.e) * unit)
        return dx * dy, dx, dy

    def row_areas_m2(self, row0: int = 0, row1: int | None = None) -> npt.NDArray[np.float64]:
        """Ground area (m2) of one pixel of each row (:meth:`row_geometry`)."""
        return self.row_geometry(row0, row1)[0]

    def area_m2(self, mask: npt.NDArray[np.bool_], row0: int = 0) -> float:
        """Ground area (m2) of the true pixels of ``mask``, a strip whose first row is ``row0``."""
        areas = self.row_areas_m2(row0, row0 + mask.shape[0])
        return float(np.dot(mask.sum(axis=1, dtype=np.float64), areas))
