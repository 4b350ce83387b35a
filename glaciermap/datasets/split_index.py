"""Split-images: cut a panchromatic scene into fixed-size tiles and index them (GEOCLASS reference sections 1, 10).

A *split-image* is a non-overlapping tile of ``201 x 268`` pixels (rows x columns, the 3-4-5 rectangle of
the GEOCLASS-image v2.0 paper, Sec. 3.1; configurable) cut from a single-band raster on its own pixel grid,
starting at pixel (0, 0); partial tiles at the right and bottom edges are dropped (reference notes
section 10). :func:`build_split_index` keeps a tile when

* its footprint lies inside the area of interest (any vector file geopandas reads, in any CRS: it is
  reprojected to the scene's CRS). The reference keeps a tile when its upper-left and lower-right corners
  lie inside the polygon; we require the whole footprint (the same for convex AOIs);
* it holds no nodata pixel: the raster's nodata value, NaN, and the values in ``extra_nodata`` (default 0,
  the reference's rule, reference notes section 2.4).

The raster is read strip by strip (one tile row at a time, only the columns the AOI spans), never whole,
so a 35,000 x 35,000 px WorldView scene needs about one strip of memory.

The index is a :class:`geopandas.GeoDataFrame` in the scene CRS, one row per tile:

========== =====================================================================================
column     meaning
========== =====================================================================================
tile_id    0, 1, ... in row-major order of the kept tiles
row, col   pixel row and column of the tile's upper-left pixel (the reference's "x_pix", "y_pix")
height,    tile size in pixels
width
x, y       tile centre in the scene CRS
easting,   tile centre in UTM (zone of the AOI's centre, or of the scene's centre without an AOI; one
northing   zone for the whole index, ``utm_epsg``)
utm_epsg   EPSG code of that UTM zone
geometry   the tile footprint polygon (scene CRS)
========== =====================================================================================

:func:`write_split_index` writes it as GeoPackage and CSV (the CSV carries the footprint as WKT), both
written to temporary names and renamed only when both are complete.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from rasterio.windows import Window

from glaciermap.errors import ConfigError, InputError
from glaciermap.io import atomic_output, open_raster, write_vector

DEFAULT_TILE_SIZE: tuple[int, int] = (201, 268)
"""Split-image size (rows, columns): the 3-4-5 rectangle of GEOCLASS-image v2.0 (paper Sec. 3.1)."""

INDEX_GPKG = "index.gpkg"
INDEX_CSV = "index.csv"
INDEX_COLUMNS: tuple[str, ...] = (
    "tile_id",
    "row",
    "col",
    "height",
    "width",
    "x",
    "y",
    "easting",
    "northing",
    "utm_epsg",
)


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone containing a point (standard 6-degree zones, no exceptions).

    Args:
        lon: Longitude (degrees).
        lat: Latitude (degrees).

    Returns:
        ``326zz`` north of the equator, ``327zz`` south.
    """
    zone = min(60, math.floor((lon + 180.0) / 6.0) + 1)
    return (32600 if lat >= 0 else 32700) + zone


def read_aoi(aoi: str | os.PathLike[str] | gpd.GeoDataFrame, crs: CRS) -> shapely.Geometry:
    """Read an area of interest and reproject it to ``crs`` (an AOI in another CRS is not an error).

    Args:
        aoi: A vector file (GeoPackage, GeoJSON, shapefile, ...) or a GeoDataFrame with a CRS.
        crs: The scene's CRS.

    Returns:
        The union of its (multi)polygons in ``crs``.

    Raises:
        InputError: If the file is missing or unreadable, has no CRS, or holds no polygon.
    """
    if isinstance(aoi, gpd.GeoDataFrame):
        frame, name = aoi, "AOI"
    else:
        path = Path(aoi)
        name = str(path)
        if not path.exists():
            raise InputError(f"{path}: file not found (expected an area-of-interest polygon file)")
        try:
            frame = gpd.read_file(path)
        except Exception as err:  # pyogrio raises several types
            raise InputError(f"{path}: not a readable vector file (expected an AOI polygon): {err}") from None
    if frame.crs is None:
        raise InputError(f"{name}: has no CRS (expected a georeferenced AOI polygon)")
    polygons = frame[frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polygons.empty:
        raise InputError(f"{name}: holds no polygon (expected an area-of-interest polygon)")
    return shapely.make_valid(polygons.to_crs(crs).geometry.union_all())


def _check_band(src: Any, path: Path) -> None:
    if src.count != 1:
        raise InputError(f"{path}: has {src.count} bands (expected a single-band panchromatic raster)")
    if src.crs is None:
        raise InputError(f"{path}: has no CRS (expected a georeferenced panchromatic raster)")


def _tile_size(tile_size: Sequence[int]) -> tuple[int, int]:
    if len(tile_size) != 2 or min(int(tile_size[0]), int(tile_size[1])) < 2:
        raise ConfigError(
            f"tile size {tuple(tile_size)}: expected two sizes (rows, columns) of at least 2 px"
        )
    return int(tile_size[0]), int(tile_size[1])


def invalid_pixels(
    values: npt.NDArray[Any], nodata: float | None, extra_nodata: Sequence[float] = (0,)
) -> npt.NDArray[np.bool_]:
    """Pixels that count as nodata: the raster's nodata value, NaN, and ``extra_nodata`` values.

    Args:
        values: Pixel values, any shape.
        nodata: The raster's nodata value (or ``None``).
        extra_nodata: More values treated as nodata (the reference drops tiles with any 0 pixel).

    Returns:
        Boolean array of the same shape.
    """
    bad = np.zeros(values.shape, dtype=bool)
    if np.issubdtype(values.dtype, np.floating):
        bad |= np.isnan(values)
    for value in ([] if nodata is None or np.isnan(nodata) else [nodata]) + list(extra_nodata):
        bad |= values == value
    return bad


def build_split_index(
    image: str | os.PathLike[str],
    aoi: str | os.PathLike[str] | gpd.GeoDataFrame | None = None,
    tile_size: Sequence[int] = DEFAULT_TILE_SIZE,
    extra_nodata: Sequence[float] = (0,),
    utm_epsg: int | None = None,
) -> gpd.GeoDataFrame:
    """Tile a single-band raster into split-images and index the complete, valid tiles inside the AOI.

    Args:
        image: A single-band raster GDAL reads (WorldView pan GeoTIFF, ...).
        aoi: Optional area-of-interest polygon file or GeoDataFrame, any CRS.
        tile_size: ``(rows, columns)``, default ``(201, 268)``.
        extra_nodata: Pixel values treated as nodata besides the raster's own nodata value and NaN.
        utm_epsg: UTM CRS of the ``easting, northing`` columns; default: the zone of the AOI's (or the
            scene's) centre.

    Returns:
        The index (module docstring), in the scene CRS.

    Raises:
        InputError: For a missing or unreadable raster, a raster with more than one band or no CRS, a tile
            larger than the scene, an AOI that does not overlap the scene, or no complete valid tile.
        ConfigError: For an invalid tile size.
    """
    path = Path(image)
    height, width = _tile_size(tile_size)
    with open_raster(path, "panchromatic band") as src:
        _check_band(src, path)
        if height > src.height or width > src.width:
            raise InputError(
                f"{path}: the scene ({src.height} x {src.width} px) is smaller than one tile "
                f"({height} x {width} px; expected a tile size no larger than the scene)"
            )
        crs = CRS.from_user_input(src.crs)
        region = _region(src, path, crs, aoi)
        records, footprints = _scan_tiles(src, region, height, width, extra_nodata)
    if not records:
        raise InputError(
            f"{path}: no complete {height} x {width} px tile without nodata"
            + (" inside the AOI" if aoi is not None else "")
            + " (expected at least one valid split-image)"
        )
    return _index_frame(records, footprints, src.transform, crs, region, (height, width), utm_epsg)


def _region(
    src: Any, path: Path, crs: CRS, aoi: str | os.PathLike[str] | gpd.GeoDataFrame | None
) -> shapely.Geometry:
    """Stage 1: the scene footprint, intersected with the AOI (prepared for fast containment tests)."""
    scene_box = shapely.box(*src.bounds)
    region = scene_box
    if aoi is not None:
        polygon = read_aoi(aoi, crs)
        region = polygon.intersection(scene_box)
        if region.is_empty or region.area <= 0:
            raise InputError(
                f"{aoi if not isinstance(aoi, gpd.GeoDataFrame) else 'AOI'}: does not overlap the scene "
                f"{path} (expected an area of interest inside the raster's footprint)"
            )
    shapely.prepare(region)
    return region


def _tile_span(
    region: shapely.Geometry, transform: Any, n_rows: int, n_cols: int, height: int, width: int
) -> tuple[int, int, int, int]:
    """Stage 2: the tile rows ``r0:r1`` and columns ``c0:c1`` the region spans (any pixel grid orientation)."""
    inv = ~transform
    minx, miny, maxx, maxy = region.bounds
    cols_px = [(inv * (x, y))[0] for x in (minx, maxx) for y in (miny, maxy)]
    rows_px = [(inv * (x, y))[1] for x in (minx, maxx) for y in (miny, maxy)]
    c0 = max(0, math.floor(min(cols_px) / width))
    c1 = min(n_cols, math.ceil(max(cols_px) / width))
    r0 = max(0, math.floor(min(rows_px) / height))
    r1 = min(n_rows, math.ceil(max(rows_px) / height))
    return r0, r1, c0, c1


def _scan_tiles(
    src: Any, region: shapely.Geometry, height: int, width: int, extra_nodata: Sequence[float]
) -> tuple[list[tuple[int, int]], list[shapely.Geometry]]:
    """Stage 3: read strip by strip and keep the tiles inside the region without nodata."""
    transform = src.transform
    r0, r1, c0, c1 = _tile_span(region, transform, src.height // height, src.width // width, height, width)
    records: list[tuple[int, int]] = []
    footprints: list[shapely.Geometry] = []
    for tr in range(r0, r1):
        tc = np.arange(c0, c1)
        if tc.size == 0:
            break
        polys = _footprints(transform, tr * height, tc * width, height, width)
        inside = shapely.contains(region, polys) | shapely.equals(region, polys)
        if not inside.any():
            continue
        first, last = int(tc[inside][0]), int(tc[inside][-1])
        window = Window(first * width, tr * height, (last - first + 1) * width, height)
        strip = src.read(1, window=window)
        bad = invalid_pixels(strip, src.nodata, extra_nodata)
        bad_tiles = np.asarray(bad.reshape(height, last - first + 1, width).any(axis=(0, 2)), dtype=bool)
        for j, c in enumerate(tc):
            if inside[j] and first <= c <= last and not bad_tiles[c - first]:
                records.append((tr * height, int(c) * width))
                footprints.append(polys[j])
    return records, footprints


def _index_frame(
    records: list[tuple[int, int]],
    footprints: list[shapely.Geometry],
    transform: Any,
    crs: CRS,
    region: shapely.Geometry,
    tile: tuple[int, int],
    utm_epsg: int | None,
) -> gpd.GeoDataFrame:
    """Stage 4: the index table (module docstring), with tile centres in the scene CRS and in UTM."""
    height, width = tile
    rows = np.array([r for r, _ in records], dtype=np.int64)
    cols = np.array([c for _, c in records], dtype=np.int64)
    cx, cy = transform * (cols + width / 2.0, rows + height / 2.0)
    cx, cy = np.asarray(cx, dtype=np.float64), np.asarray(cy, dtype=np.float64)
    if utm_epsg is None:
        centre = region.centroid
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(centre.x, centre.y)
        utm_epsg = utm_epsg_for(float(lon), float(lat))
    east, north = Transformer.from_crs(crs, CRS.from_epsg(utm_epsg), always_xy=True).transform(cx, cy)
    frame = pd.DataFrame(
        {
            "tile_id": np.arange(len(records), dtype=np.int64),
            "row": rows,
            "col": cols,
            "height": np.full(len(records), height, dtype=np.int64),
            "width": np.full(len(records), width, dtype=np.int64),
            "x": cx,
            "y": cy,
            "easting": np.asarray(east, dtype=np.float64),
            "northing": np.asarray(north, dtype=np.float64),
            "utm_epsg": np.full(len(records), utm_epsg, dtype=np.int64),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=footprints, crs=crs)


def _footprints(
    transform: Any, row: int, cols: npt.NDArray[np.int64], height: int, width: int
) -> npt.NDArray[np.object_]:
    """Footprint polygons of the tiles with upper-left pixels ``(row, cols)``."""
    corners_c = np.stack([cols, cols + width, cols + width, cols], axis=1).astype(np.float64)
    corners_r = np.broadcast_to(
        np.array([row, row, row + height, row + height], dtype=np.float64), corners_c.shape
    )
    xs, ys = transform * (corners_c, corners_r)
    coords = np.stack([np.asarray(xs), np.asarray(ys)], axis=-1)
    return np.asarray(shapely.polygons(coords))


def write_split_index(index: gpd.GeoDataFrame, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the index as ``index.gpkg`` (layer ``split_images``) and ``index.csv`` (footprint as WKT).

    Both files are written to temporary names and renamed only when both are complete.

    Args:
        index: From :func:`build_split_index`.
        out_dir: Output folder (created).

    Returns:
        Paths of the GeoPackage and the CSV.
    """
    out = Path(out_dir)
    gpkg, csv = out / INDEX_GPKG, out / INDEX_CSV
    with atomic_output(gpkg) as tmp_gpkg, atomic_output(csv) as tmp_csv:
        write_vector(index, tmp_gpkg, "split_images")
        table = pd.DataFrame(index.drop(columns="geometry"))
        table["footprint_wkt"] = shapely.to_wkt(index.geometry.values, rounding_precision=3)
        table.to_csv(tmp_csv, index=False)
    return gpkg, csv


def read_split_index(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read an index written by :func:`write_split_index` (GeoPackage, or the CSV with its WKT footprints).

    Args:
        path: ``index.gpkg`` or ``index.csv`` (a CSV has no CRS; ``crs`` is then ``None``).

    Returns:
        The index.

    Raises:
        InputError: If the file is missing or lacks the index columns.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found (expected a split-image index, index.gpkg or index.csv)")
    if p.suffix.lower() == ".csv":
        table = pd.read_csv(p)
        geometry = shapely.from_wkt(table.pop("footprint_wkt")) if "footprint_wkt" in table else None
        frame = gpd.GeoDataFrame(table, geometry=geometry)
    else:
        frame = gpd.read_file(p)
    missing = [c for c in ("tile_id", "row", "col", "height", "width") if c not in frame.columns]
    if missing:
        raise InputError(f"{p}: lacks the columns {', '.join(missing)} (expected a split-image index)")
    return frame


def scale_max_of_raster(
    image: str | os.PathLike[str], subsample: int = 10, mask_nodata: bool = True, strip_rows: int = 1024
) -> float:
    """The reference's 8-bit scaling constant ``M`` of a whole raster, streamed (reference notes section 2.1).

    Every ``subsample``-th row and column is used (the reference's 1/10 subsample), read strip by strip.

    Args:
        image: Single-band raster.
        subsample: Subsampling step in rows and columns.
        mask_nodata: Leave nodata (the raster's nodata value, NaN and 0) out of the statistics (default);
            ``False`` reproduces the reference, where zeros enter mean and std.
        strip_rows: Rows per read.

    Returns:
        ``M = min(mean + 4 std, max)`` of the subsample.

    Raises:
        InputError: For an unreadable or multi-band raster, or no valid pixel.
    """
    from glaciermap.transforms.vario import uint8_scale_max

    path = Path(image)
    parts = []
    with open_raster(path, "panchromatic band") as src:
        _check_band(src, path)
        strip_rows = max(subsample, strip_rows - strip_rows % subsample)
        for r in range(0, src.height, strip_rows):
            h = min(strip_rows, src.height - r)
            values = src.read(1, window=Window(0, r, src.width, h))[::subsample, ::subsample]
            if mask_nodata:
                values = values[~invalid_pixels(values, src.nodata, (0,))]
            parts.append(values.astype(np.float64).ravel())
    return uint8_scale_max(np.concatenate(parts), nodata=None, mask_nodata=mask_nodata)
