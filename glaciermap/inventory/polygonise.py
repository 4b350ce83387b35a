"""Class raster -> polygons.

The vectorising step shared by the inventory and the per-glacier metrics: connected regions of a class (or
id) raster become valid polygons with their holes (nunataks) kept, in the raster's CRS. Uses
``rasterio.features.shapes`` (4-connectivity, as the GlaViTU reference's ``polygonise.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio.features
import shapely
from affine import Affine
from shapely.validation import make_valid


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
) -> gpd.GeoDataFrame:
    """Vectorise the connected regions of an integer raster.

    Args:
        labels: Integer raster, shape (H, W) (a class map, a glacier mask or a glacier-id raster).
        transform: The raster's affine transform (pixel -> CRS coordinates).
        crs: The raster's CRS (anything ``geopandas`` accepts).
        values: Raster values to vectorise; default every non-zero value.
        connectivity: 4 or 8 pixel connectivity of a region.
        column: Name of the column holding each polygon's raster value.

    Returns:
        One row per connected region with columns ``column`` (the raster value) and ``geometry`` (valid
        Polygon, holes kept), in ``crs``. Empty (with those columns) when nothing matches.
    """
    pairs = list(iter_polygons(labels, transform, values=values, connectivity=connectivity))
    vals = np.asarray([v for _, v in pairs], dtype=np.int64)
    return gpd.GeoDataFrame({column: vals}, geometry=[g for g, _ in pairs], crs=crs)
