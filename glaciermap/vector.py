"""Raster regions -> polygons: the one vectorising step of glaciermap.

* :func:`iter_polygons` / :func:`polygonise`: the connected regions of an in-memory integer raster become valid
  polygons with their holes (nunataks) kept, in the raster's CRS. They use ``rasterio.features.shapes``
  (4-connectivity, as the GlaViTU reference's ``polygonise.py``). The inventory, the per-glacier metrics and the
  evaluation use them (``glaciermap.inventory.polygonise`` re-exports them).
* :func:`polygonise_regions`: the same for a raster *file* of any size, read in full-width row strips. Each
  strip's regions are labelled (:func:`scipy.ndimage.label`, 4-connectivity) and vectorised in pixel
  coordinates; labels that touch across a strip border are joined (union-find on the two border rows) and
  their pieces unioned, which is exact because pixel coordinates are integers. Each region's ground area
  comes from :meth:`glaciermap.raster.RasterGrid.row_areas_m2` (ellipsoidal on geographic grids), and the
  mean of a second raster over the region is accumulated on the way. Memory: one strip plus the polygons.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio.features
import shapely
import shapely.affinity
from affine import Affine
from shapely.validation import make_valid

from glaciermap.io import open_raster
from glaciermap.raster import RasterGrid

__all__ = ["REGION_COLUMNS", "iter_polygons", "polygonise", "polygonise_regions"]

REGION_COLUMNS: tuple[str, ...] = ("region_id", "pixels", "area_km2", "mean_value")
"""Attribute columns of :func:`polygonise_regions` (``mean_value`` only with a value raster)."""


def iter_polygons(
    labels: npt.NDArray[np.integer[Any]],
    transform: Affine,
    values: Sequence[int] | None = None,
    connectivity: int = 4,
) -> Iterator[tuple[Any, int]]:
    """Yield ``(polygon, value)`` for every connected region of an integer raster, without a GeoDataFrame.

    The light-weight core of :func:`polygonise`, for callers that vectorise many small windows (the
    inventory polygonises each glacier complex in its own crop).

    Args:
        labels: Integer raster, shape (H, W).
        transform: The raster's affine transform (pixel -> CRS coordinates).
        values: Raster values to vectorise; default every non-zero value.
        connectivity: 4 or 8 pixel connectivity of a region.

    Yields:
        A valid shapely Polygon (holes kept; ``make_valid`` output if GDAL's ring was invalid) and the
        region's raster value.

    Raises:
        TypeError: If the raster is not of an integer (or boolean) type.
    """
    arr = np.asarray(labels)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"polygonise: expected an integer raster, got dtype {arr.dtype}")
    if arr.dtype in (np.int64, np.uint64, np.uint32):
        arr = arr.astype(np.int32)  # rasterio.features.shapes takes int16/int32/uint8/uint16/float32
    selected = arr != 0 if values is None else np.isin(arr, list(values))
    for geom, value in rasterio.features.shapes(
        arr, mask=selected, transform=transform, connectivity=connectivity
    ):
        # shapely.polygons from arrays is much faster than shapely.geometry.shape on the GeoJSON rings.
        shell, *interiors = (
            shapely.linearrings(np.asarray(r, dtype=np.float64)) for r in geom["coordinates"]
        )
        poly = shapely.polygons(shell, holes=interiors or None)
        if not poly.is_valid:
            poly = make_valid(poly)
        yield poly, int(value)


def polygonise(
    labels: npt.NDArray[np.integer[Any]],
    transform: Affine,
    crs: Any,
    values: Sequence[int] | None = None,
    connectivity: int = 4,
    column: str = "value",
) -> Any:
    """Vectorise the connected regions of an integer raster.

    Args:
        labels: Integer raster, shape (H, W) (a class map, a glacier mask or a glacier-id raster).
        transform: The raster's affine transform (pixel -> CRS coordinates).
        crs: The raster's CRS (anything ``geopandas`` accepts).
        values: Raster values to vectorise; default every non-zero value.
        connectivity: 4 or 8 pixel connectivity of a region.
        column: Name of the column holding each polygon's raster value.

    Returns:
        A ``geopandas.GeoDataFrame`` with one row per connected region and columns ``column`` (the raster
        value) and ``geometry`` (valid Polygon, holes kept), in ``crs``. Empty (with those columns) when
        nothing matches.
    """
    import geopandas as gpd

    pairs = list(iter_polygons(labels, transform, values=values, connectivity=connectivity))
    vals = np.asarray([v for _, v in pairs], dtype=np.int64)
    return gpd.GeoDataFrame({column: vals}, geometry=[g for g, _ in pairs], crs=crs)


class _Regions:
    """Union-find over region labels, with per-label pixel counts, areas and value sums."""

    def __init__(self) -> None:
        self.parent: list[int] = [0]  # label 0 is "no region"
        self.pixels: list[int] = [0]
        self.area: list[float] = [0.0]
        self.total: list[float] = [0.0]
        self.pieces: list[tuple[int, Any]] = []

    def root(self, label: int) -> int:
        while self.parent[label] != label:
            self.parent[label] = self.parent[self.parent[label]]
            label = self.parent[label]
        return label

    def join(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:  # the smaller label (first in reading order) stays the root
            self.parent[max(ra, rb)] = min(ra, rb)

    def add_strip(
        self,
        labels: npt.NDArray[np.int64],
        count: int,
        areas: npt.NDArray[np.float64],
        values: npt.NDArray[np.float64] | None,
    ) -> None:
        """Register a strip's labels ``len(parent) .. len(parent) + count - 1`` (already offset)."""
        first = len(self.parent)
        local = np.where(labels > 0, labels - first + 1, 0).ravel()
        weights = np.broadcast_to(areas[:, None], labels.shape).ravel()
        self.parent.extend(range(first, first + count))
        self.pixels.extend(np.bincount(local, minlength=count + 1)[1:].tolist())
        self.area.extend(np.bincount(local, weights=weights, minlength=count + 1)[1:].tolist())
        if values is not None:
            self.total.extend(np.bincount(local, weights=values.ravel(), minlength=count + 1)[1:].tolist())


def polygonise_regions(
    path: str | os.PathLike[str],
    value: int = 1,
    *,
    values_path: str | os.PathLike[str] | None = None,
    strip_pixels: int | None = None,
) -> Any:
    """Vectorise the 4-connected regions where a raster file equals ``value``, strip by strip.

    See the module docstring for the method. Regions split by strip borders come out as one polygon each,
    exactly as :func:`polygonise` of the whole raster would give them.

    Args:
        path: A single-band integer raster (e.g. ``uncertain.tif``: 1 uncertain, 0 certain, 255 nodata).
        value: The raster value of the regions.
        values_path: Optional single-band raster on the same grid; each region's mean of it over its pixels
            goes to ``mean_value``.
        strip_pixels: Pixels read at a time (default :data:`glaciermap.raster.STRIP_PIXELS`).

    Returns:
        A ``geopandas.GeoDataFrame`` in the raster's CRS, one row per region, ordered by each region's first
        pixel in reading order, with columns ``region_id`` (1, 2, ...), ``pixels``, ``area_km2`` (ground area
        of its pixels), ``mean_value`` (only with ``values_path``) and ``geometry`` (valid Polygon, holes
        kept). Empty, with those columns, when no pixel equals ``value``.

    Raises:
        InputError: If a raster cannot be read or the two rasters are not on the same grid.
    """
    import geopandas as gpd

    with open_raster(path) as src:
        grid = RasterGrid.of(src)
        if values_path is not None:
            with open_raster(values_path) as vsrc:
                grid.check_same(RasterGrid.of(vsrc), str(path), str(values_path))
        regions = _scan(src, grid, value, values_path, strip_pixels)
    roots = sorted({regions.root(label) for label, _ in regions.pieces})
    merged: dict[int, list[Any]] = {r: [] for r in roots}
    for label, piece in regions.pieces:
        merged[regions.root(label)].append(piece)
    pixels, area, total = (np.zeros(len(regions.parent)) for _ in range(3))
    for label in range(1, len(regions.parent)):
        r = regions.root(label)
        pixels[r] += regions.pixels[label]
        area[r] += regions.area[label]
        if values_path is not None:
            total[r] += regions.total[label]
    geoms = [shapely.union_all(merged[r]) if len(merged[r]) > 1 else merged[r][0] for r in roots]
    t = grid.transform
    geoms = [shapely.affinity.affine_transform(g, [t.a, t.b, t.d, t.e, t.c, t.f]) for g in geoms]
    columns: dict[str, Any] = {
        "region_id": np.arange(1, len(roots) + 1, dtype=np.int64),
        "pixels": pixels[roots].astype(np.int64),
        "area_km2": area[roots] / 1e6,
    }
    if values_path is not None:
        columns["mean_value"] = total[roots] / np.maximum(pixels[roots], 1)
    crs = None if grid.crs is None else grid.crs.to_wkt()
    return gpd.GeoDataFrame(columns, geometry=geoms, crs=crs)


def _scan(
    src: Any,
    grid: RasterGrid,
    value: int,
    values_path: str | os.PathLike[str] | None,
    strip_pixels: int | None,
) -> _Regions:
    """Label, measure and vectorise (in pixel coordinates) every strip; join labels across strip borders."""
    from scipy import ndimage

    regions = _Regions()
    previous: npt.NDArray[np.int64] | None = None
    vsrc = open_raster(values_path) if values_path is not None else None
    try:
        for window in grid.strips(strip_pixels):
            row0, rows = int(window.row_off), int(window.height)
            labels, count = ndimage.label(src.read(1, window=window) == value)
            labels = labels.astype(np.int64)
            labels[labels > 0] += len(regions.parent) - 1
            values = None if vsrc is None else vsrc.read(1, window=window).astype(np.float64)
            regions.add_strip(labels, int(count), grid.row_areas_m2(row0, row0 + rows), values)
            for piece, label in iter_polygons(labels, Affine(1.0, 0.0, 0.0, 0.0, 1.0, float(row0))):
                regions.pieces.append((label, piece))
            if previous is not None:
                touching = (previous > 0) & (labels[0] > 0)
                for a, b in zip(previous[touching].tolist(), labels[0][touching].tolist(), strict=True):
                    regions.join(a, b)
            previous = labels[-1].copy()
    finally:
        if vsrc is not None:
            vsrc.close()
    return regions
