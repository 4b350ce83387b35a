"""Glacier outlines burned onto a raster grid: reading RGI 6/7 or GLIMS polygons, rasterising, writing labels.

The torch-free half of :mod:`glaciermap.datasets.outlines` (which re-exports every name here): ``glaciermap
prepare`` burns ``--outlines`` with it without loading torch.

* :func:`read_outlines` reads a shapefile or GeoPackage (any CRS), checks it, and reprojects it to the scene's
  CRS. GLIMS files with a ``line_type`` column are understood: ``glac_bound`` polygons are glacier,
  ``intrnl_rock`` polygons are burned back to non-glacier and ``debris_cov`` polygons are debris.
* :func:`rasterise_outlines` burns them with :func:`rasterio.features.rasterize` (a pixel is inside when its
  centre is): 0 background, 1 glacier (clean ice), 2 debris-covered ice where an optional debris layer covers
  glacier pixels. Interior rings (nunataks) of the polygons stay non-glacier.
* :func:`write_outline_labels` writes them as a ``labels.tif``-style GeoTIFF on a scene's grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS

from glaciermap.constants import BACKGROUND, CLEAN_ICE, DEBRIS_ICE, IGNORE_INDEX
from glaciermap.datasets.scene_folder import LABELS, SceneInfo
from glaciermap.datasets.vectors import read_outlines as read_outline_file
from glaciermap.errors import InputError
from glaciermap.io import atomic_output

__all__ = [
    "GLIMS_DEBRIS",
    "GLIMS_GLACIER",
    "GLIMS_ROCK",
    "rasterise_outlines",
    "read_outlines",
    "write_outline_labels",
]

GLIMS_GLACIER = "glac_bound"
GLIMS_ROCK = "intrnl_rock"
GLIMS_DEBRIS = "debris_cov"
"""GLIMS ``line_type`` values: glacier boundary, internal rock (nunatak), debris cover."""


def read_outlines(
    path: str | Path, crs: CRS, *, layer: str | None = None, what: str = "outlines"
) -> gpd.GeoDataFrame:
    """Read polygons from a shapefile or GeoPackage and reproject them to ``crs``.

    Reading (and its checks) is :func:`glaciermap.datasets.vectors.read_outlines`; this adds the
    reprojection and ``make_valid``.

    Args:
        path: The vector file (``.shp``, ``.gpkg``, anything pyogrio reads).
        crs: Target CRS (the scene's).
        layer: Layer name (GeoPackages with several layers).
        what: What the file holds, for messages.

    Returns:
        Valid (``make_valid``) polygon geometries in ``crs``, other columns kept.

    Raises:
        InputError: If the file is missing or unreadable, has no CRS, or has no polygon.
    """
    gdf = read_outline_file(path, what, layer=layer)  # the package's one outline reader
    gdf = gdf.to_crs(crs)
    gdf = gdf.set_geometry(shapely.make_valid(gdf.geometry.values))
    return gdf


def _shapes(gdf: gpd.GeoDataFrame, value: int) -> list[tuple[Any, int]]:
    return [(geom, value) for geom in gdf.geometry if geom is not None and not geom.is_empty]


def rasterise_outlines(
    outlines: gpd.GeoDataFrame,
    *,
    transform: Affine,
    shape: tuple[int, int],
    debris: gpd.GeoDataFrame | None = None,
    source: str = "outlines",
) -> npt.NDArray[np.uint8]:
    """Burn glacier outlines (and optional debris polygons) onto a grid.

    Pixels whose centre falls inside a glacier polygon become 1 (clean ice), interior rings and GLIMS
    ``intrnl_rock`` polygons stay 0, and glacier pixels inside a debris polygon (the ``debris`` layer or
    GLIMS ``debris_cov``) become 2. Debris outside every glacier stays background.

    Args:
        outlines: Polygons in the grid's CRS (see :func:`read_outlines`).
        transform: Affine transform of the grid.
        shape: ``(height, width)`` of the grid in pixels.
        debris: Optional debris polygons in the grid's CRS.
        source: Name of the outlines, for messages.

    Returns:
        ``(H, W)`` uint8 labels 0, 1, 2.

    Raises:
        InputError: If no glacier polygon overlaps the grid.
    """
    glaciers = outlines
    rock = debris_glims = None
    if "line_type" in outlines.columns:
        kind = outlines["line_type"].astype(str)
        glaciers = outlines[kind == GLIMS_GLACIER]
        rock = outlines[kind == GLIMS_ROCK]
        debris_glims = outlines[kind == GLIMS_DEBRIS]
    labels = rasterio.features.rasterize(
        _shapes(glaciers, CLEAN_ICE), out_shape=shape, transform=transform, fill=BACKGROUND, dtype="uint8"
    )
    if not labels.any():
        h, w = shape
        left, top = transform.c, transform.f
        bounds = (left, top + transform.e * h, left + transform.a * w, top)
        raise InputError(
            f"{source}: no glacier polygon covers a pixel centre of the grid (bounds {tuple(round(b) for b in bounds)}); "
            "expected outlines overlapping the scene"
        )
    if rock is not None and not rock.empty:
        holes = rasterio.features.rasterize(
            _shapes(rock, 1), out_shape=shape, transform=transform, dtype="uint8"
        )
        labels[holes == 1] = BACKGROUND
    for layer in (debris, debris_glims):
        if layer is not None and not layer.empty:
            cover = rasterio.features.rasterize(
                _shapes(layer, 1), out_shape=shape, transform=transform, dtype="uint8"
            )
            labels[(cover == 1) & (labels == CLEAN_ICE)] = DEBRIS_ICE
    return labels


def write_outline_labels(
    scene: SceneInfo,
    outlines: str | Path,
    out: str | Path,
    *,
    debris: str | Path | None = None,
    layer: str | None = None,
) -> Path:
    """Rasterise outlines onto a scene's grid and write them as a ``labels.tif``-style GeoTIFF (atomic).

    Pixels where the scene's first raster is nodata are written as 255.

    Args:
        scene: The validated scene.
        outlines: Glacier outlines file (RGI 6/7, GLIMS, any CRS).
        out: The GeoTIFF to write.
        debris: Optional debris polygons file (any CRS).
        layer: Layer of ``outlines`` (GeoPackage with several layers).

    Returns:
        ``out``.

    Raises:
        InputError: If a vector file is unusable or the outlines miss the scene.
    """
    glaciers = read_outlines(outlines, scene.crs, layer=layer)
    debris_gdf = read_outlines(debris, scene.crs, what="debris polygons") if debris is not None else None
    labels = rasterise_outlines(
        glaciers,
        transform=scene.transform,
        shape=(scene.height, scene.width),
        debris=debris_gdf,
        source=str(outlines),
    )
    first = next(info for key, info in scene.rasters.items() if key != LABELS)
    with rasterio.open(first.path) as src:
        masks = src.read_masks(1)
    labels[masks == 0] = IGNORE_INDEX
    out_path = Path(out)
    with atomic_output(out_path) as tmp:
        with rasterio.open(
            tmp,
            "w",
            driver="GTiff",
            height=scene.height,
            width=scene.width,
            count=1,
            dtype="uint8",
            crs=scene.crs,
            transform=scene.transform,
            nodata=IGNORE_INDEX,
            compress="deflate",
        ) as dst:
            dst.write(labels, 1)
    return out_path
