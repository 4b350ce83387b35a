"""Tiny single-band rasters and AOIs for the split-image tests (generated in the tests, seeded)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.transform import from_origin

ORIGIN = (530_000.0, 8_735_000.0)
RES = 0.5


def make_pan(
    path: Path,
    shape: tuple[int, int] = (100, 130),
    bands: int = 1,
    seed: int = 0,
    zero_at: tuple[int, int] | None = (45, 60),
    dtype: str = "uint16",
) -> Path:
    """A UTM 33N raster with random values 100 ... 1999, nodata 0, and one 0 pixel at ``zero_at``."""
    rng = np.random.default_rng(seed)
    data = rng.integers(100, 2000, size=(bands, *shape)).astype(dtype)
    if zero_at is not None:
        data[:, zero_at[0], zero_at[1]] = 0
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=shape[0],
        width=shape[1],
        count=bands,
        dtype=dtype,
        crs="EPSG:32633",
        transform=from_origin(ORIGIN[0], ORIGIN[1], RES, RES),
        nodata=0,
        tiled=True,
        blockxsize=16,
        blockysize=16,
    ) as dst:
        dst.write(data)
    return path


def pixel_box(row0: float, col0: float, row1: float, col1: float) -> shapely.Polygon:
    """A box in EPSG:32633 from pixel coordinates of :func:`make_pan`'s grid."""
    return shapely.box(
        ORIGIN[0] + col0 * RES, ORIGIN[1] - row1 * RES, ORIGIN[0] + col1 * RES, ORIGIN[1] - row0 * RES
    )


def write_aoi(path: Path, polygon: shapely.Polygon, crs: str = "EPSG:32633") -> Path:
    """Write ``polygon`` (given in EPSG:32633) to a vector file, reprojected to ``crs``."""
    frame = gpd.GeoDataFrame({"name": ["aoi"]}, geometry=[polygon.segmentize(1.0)], crs="EPSG:32633")
    frame.to_crs(crs).to_file(path)
    return path
