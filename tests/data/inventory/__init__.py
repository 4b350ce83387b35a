"""Hand-made class rasters and DEMs with known glaciers for the inventory tests.

``write_scene`` builds a 10 m UTM scene (200 x 600 pixels) holding:

* a *col complex*: one ice body over a valley whose floor rises from both ends to a col at x = 2600 m
  (column 260), so it holds two glaciers, A (columns 60-259, flowing west) and B (columns 260-459,
  flowing east), each 50 x 200 pixels = 1.0 km2, with debris on their last 30 columns (0.15 km2 each);
* a *ring glacier* (40 x 40 pixels with a 10 x 10 pixel nunatak: 0.15 km2) at rows 110-149, columns
  100-139;
* a *speck* of 3 x 3 pixels (0.0009 km2), below the default minimum area.

The DEM is ``z = 3000 - 0.25 |x - 2600| + 0.0002 (y - 450)**2`` (x, y in metres from the top-left
corner, y downwards): slope 0.25 along the valley, so A faces west and B east.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

PIXEL = 10.0
HEIGHT, WIDTH = 200, 600
ORIGIN = (600_000.0, 3_960_000.0)
CRS = "EPSG:32643"
TRANSFORM = Affine(PIXEL, 0, ORIGIN[0], 0, -PIXEL, ORIGIN[1])
COL_X = 2600.0
GLACIER_A = (slice(20, 70), slice(60, 260))
GLACIER_B = (slice(20, 70), slice(260, 460))
RING = (slice(110, 150), slice(100, 140))
RING_HOLE = (slice(125, 135), slice(115, 125))
SPECK = (slice(180, 183), slice(500, 503))


def elevation(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """The scene's DEM (float32, m)."""
    y = (np.arange(height) + 0.5) * PIXEL
    x = (np.arange(width) + 0.5) * PIXEL
    xx, yy = np.meshgrid(x, y)
    return (3000.0 - 0.25 * np.abs(xx - COL_X) + 0.0002 * (yy - 450.0) ** 2).astype(np.float32)


def classes() -> np.ndarray:
    """The scene's class raster (uint8 0/1/2)."""
    cls = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    cls[20:70, 60:460] = 1
    cls[20:70, 60:90] = 2
    cls[20:70, 430:460] = 2
    cls[RING] = 1
    cls[RING_HOLE] = 0
    cls[SPECK] = 1
    return cls


def write_raster(
    path: Path, array: np.ndarray, transform: Affine = TRANSFORM, crs: Any = CRS, nodata: Any = None
) -> Path:
    """Write a single-band GeoTIFF."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=array.shape[0],
        width=array.shape[1],
        count=1,
        dtype=array.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(array, 1)
    return path


def write_scene(
    folder: Path, dem: np.ndarray | None = None, cls: np.ndarray | None = None
) -> tuple[Path, Path]:
    """Write ``classes.tif`` (uint8, nodata 255) and ``dem.tif`` (float32, nodata -9999) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    c = write_raster(folder / "classes.tif", classes() if cls is None else cls, nodata=255)
    d = write_raster(folder / "dem.tif", elevation() if dem is None else dem, nodata=-9999.0)
    return c, d
