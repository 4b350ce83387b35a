"""Reading the inventory's inputs: the class raster, the DEM on the class grid, and the pixel geometry.

* :class:`ClassReader` reads windows and strips of a class raster (``0`` background, ``1`` clean ice,
  ``2`` debris-covered ice, ``255``/nodata outside the scene; a binary 0/1 glacier map works too) as
  ``uint8``, checks its values and optionally median-filters it (exactly, through a halo), so the inventory
  never holds the whole raster; :func:`read_classes` reads it whole for callers that need the array.
* :class:`DemReader` reads DEM windows *on the class grid*: directly when the DEM already shares that grid,
  otherwise through a GDAL warped VRT (bilinear) that reprojects and resamples only the windows asked for.
* :class:`ClassGrid` knows the ground size of every pixel in metres: constant for projected CRSs, per row on
  the ellipsoid for geographic (longitude/latitude) CRSs, so areas are in km2 either way.

Every problem with the inputs raises :class:`~glaciermap.errors.InputError` naming the file and what was
expected.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from glaciermap.constants import DEBRIS_ICE, IGNORE_INDEX
from glaciermap.errors import ConfigError, InputError
from glaciermap.io import open_raster
from glaciermap.raster import RasterGrid

STRIP_ROWS = 1024
"""Rows read at a time when scanning a whole raster (bounds the memory of the scan)."""


@dataclass(frozen=True)
class ClassGrid(RasterGrid):
    """The grid of the class raster, on which the whole inventory is computed.

    A :class:`~glaciermap.raster.RasterGrid` with its file and the ground geometry of every row
    (:meth:`~glaciermap.raster.RasterGrid.row_geometry`, the one pixel-area function of glaciermap).

    Attributes:
        path: The class raster file.
        row_area_m2: Ground area of one pixel of each row, m2, shape (height,).
        row_dx_m: Ground width (east-west) of one pixel of each row, m, shape (height,).
        row_dy_m: Ground height (north-south) of one pixel of each row, m, shape (height,).
    """

    crs: CRS
    path: Path = Path()
    row_area_m2: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    row_dx_m: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    row_dy_m: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @property
    def pixel_size_m(self) -> float:
        """Mean ground pixel size, m (the geometric mean of the mean pixel width and height)."""
        return float(math.sqrt(float(np.mean(self.row_dx_m)) * float(np.mean(self.row_dy_m))))


def make_grid(path: Path, crs: Any, transform: Affine, height: int, width: int) -> ClassGrid:
    """Build the :class:`ClassGrid` of a raster, checking that it can carry an inventory.

    Args:
        path: The raster file (for messages).
        crs: Its CRS.
        transform: Its affine transform.
        height: Rows.
        width: Columns.

    Returns:
        The grid with per-row pixel sizes in metres.

    Raises:
        InputError: If the raster has no CRS, is rotated, or uses a projected CRS whose unit is unknown.
    """
    if crs is None:
        raise InputError(f"{path}: the class raster has no CRS (expected a georeferenced GeoTIFF)")
    crs = CRS.from_user_input(crs)
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        raise InputError(
            f"{path}: expected a north-up raster without rotation, got transform {tuple(transform)[:6]}"
        )
    area, dx, dy = RasterGrid(crs, transform, height, width).row_geometry()
    return ClassGrid(crs, transform, height, width, Path(path), area, dx, dy)


def read_classes(
    path: str | os.PathLike[str], median_filter: int = 0, strip_rows: int | None = None
) -> tuple[npt.NDArray[np.uint8], ClassGrid]:
    """Read a whole class raster into ``uint8`` classes 0/1/2 with 255 for nodata (strip by strip).

    The inventory itself never holds the whole raster (it scans strips and reads crops with
    :class:`ClassReader`); this is for callers that need the array, e.g. pixel metrics.

    Args:
        path: A single-band integer GeoTIFF of classes (our mapper's output or a scene's ``labels.tif``).
        median_filter: Odd window size of the median filter applied before vectorising (0 or 1: none),
            see :func:`glaciermap.inventory.filtering.median_filter_classes`.
        strip_rows: Rows read at a time (default :data:`STRIP_ROWS`).

    Returns:
        ``(classes, grid)``.

    Raises:
        InputError: As :class:`ClassReader`.
        ConfigError: For an even median-filter window.
    """
    with ClassReader(path, median_filter=median_filter) as reader:
        classes = np.empty((reader.grid.height, reader.grid.width), dtype=np.uint8)
        for r0, strip in reader.strips(strip_rows):
            classes[r0 : r0 + strip.shape[0]] = strip
        return classes, reader.grid


class ClassReader:
    """Read windows of a class raster as ``uint8`` classes 0/1/2 with 255 for nodata.

    Any value 1 or 2 is glacier, 2 is debris-covered ice; the raster's nodata value and 255 become 255.
    With a median filter, every window is read with a halo of half the filter size and filtered, which
    gives exactly the values of filtering the whole raster (outside the raster counts as non-glacier
    either way), so the raster never has to be held whole.

    Args:
        path: A single-band integer GeoTIFF of classes (our mapper's output or a scene's ``labels.tif``).
        median_filter: Odd window size of the median filter (0 or 1: none),
            see :func:`glaciermap.inventory.filtering.median_filter_classes`.

    Raises:
        InputError: If the file is missing or unreadable, not an integer raster, has no CRS or is rotated.
        ConfigError: For an even or negative median-filter window.
    """

    WHAT = "glacier classes (0 background, 1 clean ice, 2 debris, 255 nodata)"

    def __init__(self, path: str | os.PathLike[str], median_filter: int = 0) -> None:
        if median_filter < 0 or (median_filter > 1 and median_filter % 2 == 0):
            raise ConfigError(f"median_filter must be 0 or an odd window size, got {median_filter}")
        self.path = Path(path)
        self.median_filter = median_filter if median_filter > 1 else 0
        self._src = open_raster(self.path, self.WHAT)
        try:
            if np.dtype(self._src.dtypes[0]).kind not in "iu":
                raise InputError(
                    f"{self.path}: expected an integer class raster ({self.WHAT}), got dtype {self._src.dtypes[0]}"
                )
            self.grid = make_grid(
                self.path, self._src.crs, self._src.transform, self._src.height, self._src.width
            )
        except BaseException:
            self._src.close()
            raise
        self.nodata = self._src.nodata

    def read(self, row0: int, col0: int, height: int, width: int) -> npt.NDArray[np.uint8]:
        """Read a window of classes (median-filtered if asked).

        Args:
            row0: First row of the window.
            col0: First column.
            height: Rows (the window must lie inside the raster).
            width: Columns.

        Returns:
            uint8 classes 0/1/2/255, shape (height, width).

        Raises:
            InputError: If the window cannot be read or holds values other than 0, 1, 2 and nodata.
        """
        from glaciermap.inventory.filtering import median_filter_classes

        half = self.median_filter // 2
        a0, a1 = max(0, row0 - half), min(self.grid.height, row0 + height + half)
        b0, b1 = max(0, col0 - half), min(self.grid.width, col0 + width + half)
        window = Window(b0, a0, b1 - b0, a1 - a0)
        try:
            raw = self._src.read(1, window=window)
        except RasterioError as err:
            raise InputError(
                f"{self.path}: could not read the class raster ({self.WHAT}) at {window}: {err}"
            ) from None
        classes = _to_classes(raw, self.nodata, self.path, self.WHAT)
        if not half:
            return classes
        filtered = median_filter_classes(classes, self.median_filter, strip_rows=max(1, a1 - a0))
        return filtered[row0 - a0 : row0 - a0 + height, col0 - b0 : col0 - b0 + width]

    def strips(self, strip_rows: int | None = None) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        """Scan the whole raster in strips of full width.

        Args:
            strip_rows: Rows per strip (default :data:`STRIP_ROWS`).

        Yields:
            ``(row0, classes)`` for consecutive strips, top to bottom.

        Raises:
            InputError: As :meth:`read`, and after the last strip if the raster is nodata everywhere.
        """
        valid = 0
        strip_rows = STRIP_ROWS if strip_rows is None else strip_rows
        for r0 in range(0, self.grid.height, strip_rows):
            strip = self.read(r0, 0, min(strip_rows, self.grid.height - r0), self.grid.width)
            valid += int(np.count_nonzero(strip != IGNORE_INDEX))
            yield r0, strip
        if valid == 0:
            raise InputError(
                f"{self.path}: the class raster is nodata everywhere (expected some pixels with {self.WHAT})"
            )

    def close(self) -> None:
        """Close the raster."""
        self._src.close()

    def __enter__(self) -> ClassReader:
        """Open the raster; returns this reader."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the raster."""
        self.close()


def _to_classes(raw: npt.NDArray[Any], nodata: float | None, path: Path, what: str) -> npt.NDArray[np.uint8]:
    """Map raw class values to 0/1/2/255, rejecting anything else (compared in the raw dtype, no copy)."""
    nd = raw == IGNORE_INDEX
    if nodata is not None and not math.isnan(nodata):
        nd |= raw == nodata
    bad = ~nd & (raw > DEBRIS_ICE)
    if raw.dtype.kind == "i":
        bad |= ~nd & (raw < 0)
    if bad.any():
        values = np.unique(raw[bad])[:5].tolist()
        raise InputError(f"{path}: unexpected class values {values} (expected {what})")
    out = raw.astype(np.uint8)
    out[nd] = IGNORE_INDEX
    return out


class DemReader:
    """Read windows of a DEM's elevation band on the class grid (metres, NaN where nodata).

    When the DEM's CRS, transform and size equal the class raster's, windows are read directly;
    otherwise the DEM is reprojected and resampled (bilinear) to the class grid through a GDAL
    ``WarpedVRT``, which warps only the windows that are read.

    Args:
        path: The DEM GeoTIFF; band 1 is elevation in m (a scene's ``dem.tif`` has slope in band 2,
            which is not used: slope is recomputed from elevation on the class grid).
        grid: The class grid.
        what: Name of the raster in messages (``"snow mask"`` when it reads one, band 1 likewise).
        resampling: Resampling onto the class grid (nearest for masks).

    Raises:
        InputError: If the DEM is missing, unreadable, has no CRS, or does not overlap the class raster.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        grid: ClassGrid,
        *,
        what: str = "DEM",
        resampling: Resampling = Resampling.bilinear,
    ) -> None:
        self.path = Path(path)
        self.grid = grid
        self.what = what
        self.resampling = resampling
        self._src = open_raster(
            self.path, "DEM (band 1: elevation in m)" if what == "DEM" else f"{what} (band 1)"
        )
        self._vrt: WarpedVRT | None = None
        try:
            self._setup()
        except BaseException:
            self._src.close()
            raise

    def _setup(self) -> None:
        src, grid = self._src, self.grid
        if src.crs is None:
            raise InputError(
                f"{self.path}: the {self.what} has no CRS, so it cannot be aligned with the class grid {grid.path}"
            )
        if np.dtype(src.dtypes[0]).kind not in "iuf":
            raise InputError(f"{self.path}: expected a numeric {self.what}, got dtype {src.dtypes[0]}")
        self.nodata = src.nodata
        self.same_grid = (
            CRS.from_user_input(src.crs) == grid.crs
            and src.transform.almost_equals(grid.transform, precision=1e-9)
            and (src.height, src.width) == (grid.height, grid.width)
        )
        if self.same_grid:
            return
        try:
            left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
        except Exception as err:
            raise InputError(
                f"{self.path}: the {self.what}'s CRS {src.crs} cannot be transformed to the class raster's CRS "
                f"{grid.crs}: {err}"
            ) from None
        g_left, g_bottom, g_right, g_top = grid.bounds
        if not (left < g_right and right > g_left and bottom < g_top and top > g_bottom):
            raise InputError(
                f"{self.path}: the {self.what} (bounds {src.bounds} in {src.crs}) does not overlap the class raster "
                f"{grid.path} (expected a {self.what} covering the glaciers)"
            )
        self._vrt = WarpedVRT(
            src,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=self.resampling,
            src_nodata=self.nodata if self.nodata is not None else None,
            nodata=np.nan,
            dtype="float32",
        )

    def read(self, row0: int, col0: int, height: int, width: int) -> npt.NDArray[np.float32]:
        """Read a window of elevations on the class grid, NaN where the DEM has no data.

        Args:
            row0: First row of the window (class grid).
            col0: First column.
            height: Rows (the window must lie inside the class grid).
            width: Columns.

        Returns:
            Elevation in m, shape (height, width), float32.

        Raises:
            InputError: If the DEM cannot be read (e.g. a corrupt block).
        """
        window = Window(col0, row0, width, height)
        try:
            if self._vrt is not None:
                z = self._vrt.read(1, window=window).astype(np.float32, copy=False)
            else:
                z = self._src.read(1, window=window).astype(np.float32, copy=False)
        except RasterioError as err:
            raise InputError(f"{self.path}: could not read {self.what} window {window}: {err}") from None
        if self.nodata is not None and not np.isnan(self.nodata):
            z = np.where(z == np.float32(self.nodata), np.float32(np.nan), z)
        return z

    def close(self) -> None:
        """Close the DEM (and its warped view)."""
        if self._vrt is not None:
            self._vrt.close()
        self._src.close()

    def __enter__(self) -> DemReader:
        """Open the raster; returns this reader."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the raster."""
        self.close()
