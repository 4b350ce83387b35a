"""Writing rasters row block by row block, then as Cloud-Optimised GeoTIFFs.

A COG's layout (tiles, then overviews, with the header first) cannot be streamed, so
:class:`StreamingRaster` writes rows as they are produced into a tiled, lightly compressed temporary GeoTIFF
(buffering just enough rows to fill whole tiles) and :meth:`StreamingRaster.to_cog` then copies it with
GDAL's ``COG`` driver (``rasterio.shutil.copy(..., driver="COG")``), which reads tile by tile: memory stays
bounded by a few tile rows whatever the raster size.

The outputs keep the scene's grid exactly (CRS, transform, width, height) and declare their nodata value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

BLOCK = 512
"""Tile side of the temporary and the COG rasters (pixels)."""

COG_OPTIONS: dict[str, str] = {
    "COMPRESS": "DEFLATE",
    "BLOCKSIZE": str(BLOCK),
    "BIGTIFF": "IF_SAFER",
    "NUM_THREADS": "ALL_CPUS",
}
"""Creation options of every COG (``OVERVIEW_RESAMPLING`` and ``PREDICTOR`` are set per raster)."""


class StreamingRaster:
    """A raster written top to bottom in row blocks into a tiled temporary GeoTIFF.

    Args:
        path: The temporary GeoTIFF to write (created, overwritten).
        crs: CRS of the grid.
        transform: Affine transform of the grid.
        height: Rows.
        width: Columns.
        count: Bands.
        dtype: Numpy dtype name (``"uint8"``, ``"float32"``).
        nodata: Declared nodata value.
        descriptions: Band descriptions (one per band), or ``None``.
        tags: Dataset metadata items (e.g. class names).
        colormap: Colour table of band 1 (value -> RGBA), for class rasters.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        crs: CRS,
        transform: Affine,
        height: int,
        width: int,
        count: int,
        dtype: str,
        nodata: float | None,
        descriptions: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
        colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.height, self.width, self.count = height, width, count
        self.dtype = np.dtype(dtype)
        block_rows = min(BLOCK, height)
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": count,
            "dtype": dtype,
            "crs": crs,
            "transform": transform,
            "nodata": nodata,
            "compress": "zstd",
            "zstd_level": 1,
            "bigtiff": "if_safer",
        }
        if width >= 16 and height >= 16:
            profile.update(tiled=True, blockxsize=min(BLOCK, _mult16(width)), blockysize=_mult16(block_rows))
        self._dst: Any = rasterio.open(self.path, "w", **profile)
        if descriptions is not None:
            self._dst.descriptions = tuple(descriptions)
        if tags:
            self._dst.update_tags(**tags)
        if colormap:
            self._dst.write_colormap(1, dict(colormap))
        self._block_rows = max(1, int(self._dst.block_shapes[0][0]))
        self._buf = np.empty((count, self._block_rows, width), dtype=self.dtype)
        self._filled = 0
        self._buf_row = 0
        self.rows_written = 0

    def write(self, row: int, data: npt.NDArray[Any]) -> None:
        """Write the next rows.

        Args:
            row: First row of ``data``; rows must arrive in order without gaps.
            data: ``(count, h, width)`` (or ``(h, width)`` for one band) values.

        Raises:
            ValueError: If the rows are out of order or the shape is wrong.
        """
        arr = data[None] if data.ndim == 2 else data
        if arr.shape[0] != self.count or arr.shape[2] != self.width:
            raise ValueError(f"{self.path}: expected ({self.count}, h, {self.width}) rows, got {arr.shape}")
        if row != self.rows_written:
            raise ValueError(
                f"{self.path}: rows must be written in order; expected row {self.rows_written}, got {row}"
            )
        pos = 0
        while pos < arr.shape[1]:
            take = min(arr.shape[1] - pos, self._block_rows - self._filled)
            self._buf[:, self._filled : self._filled + take] = arr[:, pos : pos + take]
            self._filled += take
            pos += take
            if self._filled == self._block_rows:
                self._flush()
        self.rows_written += arr.shape[1]

    def _flush(self) -> None:
        if self._filled:
            window = Window(0, self._buf_row, self.width, self._filled)
            self._dst.write(self._buf[:, : self._filled], window=window)
            self._buf_row += self._filled
            self._filled = 0

    def close(self) -> None:
        """Flush the last rows and close the temporary file."""
        if not self._dst.closed:
            self._flush()
            self._dst.close()

    def to_cog(self, dest: str | os.PathLike[str], *, resampling: str = "NEAREST") -> None:
        """Close, check completeness and copy the raster to a Cloud-Optimised GeoTIFF.

        Args:
            dest: The COG to write (e.g. a temporary name from :func:`glaciermap.io.atomic_output`).
            resampling: Overview resampling (``"NEAREST"`` for classes, ``"AVERAGE"`` for continuous values).

        Raises:
            ValueError: If not every row was written.
        """
        self.close()
        if self.rows_written != self.height:
            raise ValueError(f"{self.path}: {self.rows_written} of {self.height} rows written")
        options = dict(COG_OPTIONS, OVERVIEW_RESAMPLING=resampling)
        options["PREDICTOR"] = "YES" if self.dtype.kind == "f" else "NO"
        rasterio.shutil.copy(str(self.path), str(dest), driver="COG", **options)

    def __enter__(self) -> StreamingRaster:
        """Return self."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the file (the caller removes it)."""
        self.close()


def _mult16(n: int) -> int:
    """The largest multiple of 16 not above ``n`` (at least 16); GeoTIFF tiles are multiples of 16."""
    return max(16, (n // 16) * 16)
