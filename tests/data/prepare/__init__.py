"""Write DEMs, loose band files and outlines for the prepare tests (real CRSs and dtypes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin

UTM = "EPSG:32643"
GRADIENT = 0.2
"""Elevation gain per metre northwards of every test DEM: slope atan(0.2) = 11.31 degrees."""
SLOPE_DEG = math.degrees(math.atan(GRADIENT))


def write_dem(
    path: Path,
    bounds: tuple[float, float, float, float],
    *,
    crs: str = "EPSG:4326",
    res: float = 1 / 3600,
    base: float = 3000.0,
    factor: float = 1.0,
    dtype: str = "float32",
) -> Path:
    """A DEM covering ``bounds`` (UTM 43N metres, with a 100 m margin) in ``crs``.

    Elevation = ``(base + GRADIENT * (northing - 3999000)) * factor`` with the northing in UTM 43N, so the
    slope on any grid is :data:`SLOPE_DEG`. Nodata -32768.
    """
    to_crs = Transformer.from_crs(UTM, crs, always_xy=True)
    to_utm = Transformer.from_crs(crs, UTM, always_xy=True)
    left, bottom, right, top = bounds
    xs, ys = to_crs.transform(
        [left - 100, right + 100, left - 100, right + 100], [bottom - 100, bottom - 100, top + 100, top + 100]
    )
    x0, y1 = min(xs), max(ys)
    width = math.ceil((max(xs) - x0) / res)
    height = math.ceil((y1 - min(ys)) / res)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    _, northing = to_utm.transform(x0 + cols * res, y1 - rows * res)
    z = ((base + GRADIENT * (np.asarray(northing) - 3999000.0)) * factor).astype(dtype)
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype=dtype, crs=crs,
        transform=from_origin(x0, y1, res, res), nodata=-32768,
    ) as dst:  # fmt: skip
        dst.write(z, 1)
    return path


def write_bands(
    folder: Path,
    names: Sequence[str],
    *,
    crs: str = UTM,
    origin: tuple[float, float] = (600000.0, 4000020.0),
    res: float = 10.0,
    size: tuple[int, int] = (40, 40),
    values: dict[str, float] | None = None,
    dtype: str = "float32",
    stem: str = "scene_{name}.tif",
) -> list[Path]:
    """One GeoTIFF per band, constant value ``values[name]`` (default 0.3) with a 0.001 per row gradient."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        rows = np.arange(size[0], dtype=np.float64)[:, None]
        data = np.broadcast_to((values or {}).get(name, 0.3) + 0.001 * rows, size).astype(dtype)
        path = folder / stem.format(name=name)
        with rasterio.open(
            path, "w", driver="GTiff", width=size[1], height=size[0], count=1, dtype=dtype, crs=crs,
            transform=from_origin(origin[0], origin[1], res, res),
        ) as dst:  # fmt: skip
            dst.write(data, 1)
        paths.append(path)
    return paths


def write_outlines(path: Path, crs: str = "EPSG:4326") -> Path:
    """A glacier covering UTM x 600100-600300, y 3999700-3999920 with a 40 m nunatak, written in ``crs``."""
    outer = shapely.box(600100, 3999700, 600300, 3999920)
    hole = shapely.box(600180, 3999780, 600220, 3999820)
    glacier = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    gpd.GeoDataFrame({"rgi_id": ["RGI2000-v7.0-G-14-12345"]}, geometry=[glacier], crs=UTM).to_crs(
        crs
    ).to_file(path)
    return path


def write_textured_scene(
    folder: Path, shift_px: tuple[int, int] = (0, 0), size: int = 128, res: float = 10.0
) -> tuple[list[Path], Path]:
    """Six band files showing the hillshade of a hilly DEM (sun azimuth 135, elevation 45), and the DEM.

    The bands are ``0.1 + 0.6 * hillshade`` moved by ``shift_px`` = (rows down, columns right), so the
    co-registration check of ``prepare`` should measure that shift. Same UTM grid for bands and DEM.
    """
    from glaciermap.terrain import hillshade

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    z = np.full((size, size), 3000.0)
    for _ in range(25):
        cy, cx, r, h = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(4, 12), rng.uniform(-80, 160)
        z += h * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    shade = np.nan_to_num(hillshade(z, res, res), nan=0.5)
    bands = (0.1 + 0.6 * np.roll(shade, shift_px, axis=(0, 1))).astype(np.float32)
    transform = from_origin(600000.0, 4000020.0, res, res)
    profile = dict(driver="GTiff", width=size, height=size, count=1, crs=UTM, transform=transform)
    paths = []
    for name in ("blue", "green", "red", "nir", "swir1", "swir2"):
        path = folder / f"scene_{name}.tif"
        with rasterio.open(path, "w", dtype="float32", **profile) as dst:
            dst.write(bands, 1)
        paths.append(path)
    dem = folder / "dem.tif"
    with rasterio.open(dem, "w", dtype="float32", nodata=-32768, **profile) as dst:
        dst.write(z.astype(np.float32), 1)
    return paths, dem
