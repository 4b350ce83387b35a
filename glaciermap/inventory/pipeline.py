"""Class raster + DEM -> glacier inventory (GeoPackage with glaciers, debris and divides, plus a CSV).

Workflow (``docs/inventory.md``):

1. Read the class raster strip by strip (optional median filter), label its connected glacier regions
   (classes 1 and 2, 4-connectivity) and drop those smaller than ``min_area_km2`` (``filtering``).
2. Process every remaining glacier complex in a crop of its bounding box plus a margin: read the DEM window
   on the class grid (reprojected on the fly if the DEM is on another grid), split the complex along ice
   divides (``divides``), compute the attributes of each glacier (``attributes``), and vectorise the
   glaciers, their debris and the divides between them. Only glacier crops are ever read from the DEM, so
   memory is bounded by the class raster (1 byte per pixel), the region labels (4 bytes per pixel) and the
   largest crop. Complexes are independent: with ``workers > 1`` they are processed by forked worker
   processes that share the rasters read-only.
3. Number the glaciers, add the centre and terminus points in EPSG:4326, the buffer-method area
   uncertainty (``uncertainty``), ``dem_source`` and ``src_date``, and write the GeoPackage and CSV
   atomically (:func:`glaciermap.io.atomic_output`): an error leaves no output file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import rasterio.features
import scipy.ndimage as ndi
import shapely
from pyproj import CRS, Transformer

from glaciermap.constants import DEBRIS_ICE, SCENE_METADATA
from glaciermap.errors import ConfigError, InputError
from glaciermap.inventory.attributes import glacier_attributes
from glaciermap.inventory.divides import (
    DivideMethod,
    DivideParams,
    divide_lines,
    split_complex,
)
from glaciermap.inventory.filtering import label_complexes
from glaciermap.inventory.inputs import ClassGrid, DemReader, read_classes
from glaciermap.inventory.outlines import read_outlines
from glaciermap.inventory.polygonise import iter_polygons
from glaciermap.inventory.terrain import slope_aspect
from glaciermap.inventory.uncertainty import buffer_uncertainty_m2, metric_crs_for
from glaciermap.io import atomic_output

GLACIER_COLUMNS: tuple[str, ...] = (
    "glac_id",
    "complex_id",
    "area_km2",
    "area_unc_km2",
    "area_debris_km2",
    "debris_unc_km2",
    "zmin_m",
    "zmax_m",
    "zmed_m",
    "zmean_m",
    "slope_deg",
    "aspect_deg",
    "aspect_sec",
    "lmax_m",
    "cenlon",
    "cenlat",
    "termlon",
    "termlat",
    "hypso_50m",
    "dem_cover",
    "dem_source",
    "src_date",
)
"""Columns of the ``glaciers`` layer and the CSV, in order (RGI 7 names where RGI has the attribute)."""


@dataclass
class Inventory:
    """A glacier inventory.

    Attributes:
        glaciers: One row per glacier, columns :data:`GLACIER_COLUMNS`, in the class raster's CRS.
        debris: Debris-covered parts: ``glac_id``, ``area_km2``, ``area_unc_km2``.
        divides: Ice divides between adjacent glaciers: ``glac_id_1``, ``glac_id_2``, ``length_m``.
        summary: Totals and run information (counts, areas and uncertainties in km2, timings in s).
        gpkg_path: The GeoPackage written (None if not written).
        csv_path: The attribute CSV written (None if not written).
    """

    glaciers: gpd.GeoDataFrame
    debris: gpd.GeoDataFrame
    divides: gpd.GeoDataFrame
    summary: dict[str, Any]
    gpkg_path: Path | None = None
    csv_path: Path | None = None


@dataclass
class _ComplexResult:
    """What processing one complex returns to the main process."""

    k: int
    attrs: list[dict[str, Any]]
    polygons: list[Any]
    debris: list[tuple[int, Any, float, float]]
    divides: list[tuple[int, int, Any, float]]
    dem_valid_px: int


@dataclass
class _Job:
    """Everything the complex workers read (shared with forked workers, never modified)."""

    grid: ClassGrid
    classes: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int32]
    crops: list[tuple[int, int, int, int]]
    dem_path: Path
    method: DivideMethod
    params: DivideParams
    buffer_m: float
    metric: CRS
    reference: gpd.GeoSeries | None = None
    readers: dict[int, DemReader] = field(default_factory=dict)
    transformers: dict[int, Transformer | None] = field(default_factory=dict)

    def dem(self) -> DemReader:
        """The DEM reader of the current process (each forked worker opens its own)."""
        pid = os.getpid()
        if pid not in self.readers:
            self.readers[pid] = DemReader(self.dem_path, self.grid)
        return self.readers[pid]

    def to_metric(self, geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
        """Geometries transformed from the class grid's CRS to :attr:`metric` (unchanged if the same)."""
        pid = os.getpid()
        if pid not in self.transformers:
            same = self.metric.equals(CRS.from_user_input(self.grid.crs.to_wkt()))
            self.transformers[pid] = (
                None if same else Transformer.from_crs(self.grid.crs, self.metric, always_xy=True)
            )
        tf = self.transformers[pid]
        if tf is None or len(geoms) == 0:
            return geoms
        out: npt.NDArray[np.object_] = shapely.transform(
            geoms, lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1]))
        )
        return out


_JOB: _Job | None = None


def build_inventory(
    classes_path: str | os.PathLike[str],
    dem_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    min_area_km2: float = 0.01,
    median_filter: int = 0,
    method: DivideMethod | None = None,
    reference: str | os.PathLike[str] | None = None,
    buffer_pixels: float = 1.0,
    dem_source: str | None = None,
    date: str | None = None,
    divide_params: DivideParams | None = None,
    workers: int = 1,
) -> Inventory:
    """Build a glacier inventory from a class raster and a DEM, and write it.

    Args:
        classes_path: Class raster (uint8 0 background, 1 clean ice, 2 debris, 255 nodata; or 0/1).
        dem_path: DEM GeoTIFF, band 1 elevation in m; reprojected to the class grid if needed.
        out_path: GeoPackage to write (layers ``glaciers``, ``debris``, ``divides``) and ``<out>.csv``
            beside it; None: return the inventory without writing.
        min_area_km2: Glacier regions smaller than this are dropped before the divides, km2.
        median_filter: Odd median-filter window applied to the class raster first (0: none).
        method: Ice-divide method: ``"flowshed"`` (Kienholz et al. 2013), ``"copy"`` (from ``reference``)
            or ``"none"``; default ``"copy"`` when a reference is given, else ``"flowshed"``.
        reference: Reference outlines (.gpkg/.shp) whose divides the ``"copy"`` method transfers.
        buffer_pixels: Buffer width N (pixels) of the area uncertainty (Karakoram paper 3.3.3).
        dem_source: Text for the ``dem_source`` field (default: the DEM file name).
        date: Acquisition date of the class raster, ISO 8601 (``YYYY-MM-DD`` or ``YYYY``), for ``src_date``;
            default: the ``date`` or ``year`` of a ``scene.json`` beside the class raster (a scene folder),
            else empty.
        divide_params: Parameters of the ice-divide methods.
        workers: Processes used for the glacier complexes (1: in this process).

    Returns:
        The :class:`Inventory`.

    Raises:
        ConfigError: For invalid options.
        InputError: For a missing, corrupt or unusable class raster, DEM or reference (see ``inputs``).
    """
    global _JOB
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    method = _check_options(out_path, min_area_km2, median_filter, method, reference, buffer_pixels, workers)
    src_date = _check_date(date if date is not None else _scene_date(Path(classes_path)))
    params = divide_params or DivideParams()
    classes, grid = read_classes(classes_path, median_filter=median_filter)
    times["read_classes_s"] = time.perf_counter() - t0
    dem = DemReader(dem_path, grid)  # validates the DEM before any work
    ref_geoms = None
    if method == "copy":
        assert reference is not None
        ref = read_outlines(reference, "reference inventory").to_crs(grid.crs)
        ref_geoms = ref.geometry
    t1 = time.perf_counter()
    labels, areas = label_complexes(classes, grid.row_area_m2, min_area_km2)
    crops = _crops(labels, len(areas), params.margin_px(grid.pixel_size_m), grid)
    times["label_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    metric = metric_crs_for(grid.crs.to_wkt(), grid.bounds)
    job = _Job(
        grid,
        classes,
        labels,
        crops,
        Path(dem_path),
        method,
        params,
        buffer_pixels * grid.pixel_size_m,
        metric,
        ref_geoms,
    )
    job.readers[os.getpid()] = dem
    _JOB = job
    try:
        results = sorted(_run(job, workers), key=lambda r: r.k)
    finally:
        _JOB = None
        dem.close()
    times["complexes_s"] = time.perf_counter() - t2
    if results and sum(r.dem_valid_px for r in results) == 0:
        raise InputError(f"{dem_path}: the DEM has no valid elevation over any glacier (nodata everywhere)")
    t3 = time.perf_counter()
    inventory = _assemble(results, grid, dem_source or Path(dem_path).name, src_date)
    times["assemble_s"] = time.perf_counter() - t3
    inventory.summary.update(
        method=method,
        dem_reprojected=not dem.same_grid,
        crs=grid.crs.to_string(),
        pixel_size_m=grid.pixel_size_m,
        min_area_km2=min_area_km2,
        buffer_pixels=buffer_pixels,
        workers=workers,
    )
    if out_path is not None:
        t4 = time.perf_counter()
        write_inventory(inventory, out_path)
        times["write_s"] = time.perf_counter() - t4
    times["total_s"] = time.perf_counter() - t0
    inventory.summary["timings"] = times
    return inventory


def _check_options(
    out_path: str | os.PathLike[str] | None,
    min_area_km2: float,
    median_filter: int,
    method: DivideMethod | None,
    reference: str | os.PathLike[str] | None,
    buffer_pixels: float,
    workers: int,
) -> DivideMethod:
    """Validate the options of :func:`build_inventory`; returns the divide method to use."""
    if out_path is not None and Path(out_path).suffix.lower() != ".gpkg":
        raise ConfigError(f"out: expected a .gpkg file name, got {out_path}")
    if not (min_area_km2 >= 0):
        raise ConfigError(f"min_area_km2 must be >= 0 km2, got {min_area_km2}")
    if median_filter < 0 or (median_filter > 1 and median_filter % 2 == 0):
        raise ConfigError(f"median_filter must be 0 or an odd window size, got {median_filter}")
    if not (buffer_pixels >= 0):
        raise ConfigError(f"buffer_pixels must be >= 0, got {buffer_pixels}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    chosen: DivideMethod = method or ("copy" if reference is not None else "flowshed")
    if chosen not in ("flowshed", "copy", "none"):
        raise ConfigError(f"method must be 'flowshed', 'copy' or 'none', got {chosen!r}")
    if chosen == "copy" and reference is None:
        raise ConfigError("method 'copy' needs a reference inventory (--reference OUTLINES.gpkg|shp)")
    if chosen != "copy" and reference is not None:
        raise ConfigError(f"a reference inventory is only used by method 'copy', not {chosen!r}")
    return chosen


def _scene_date(classes_path: Path) -> str | None:
    """The ``date`` (or ``year``) of the ``scene.json`` beside a scene folder's class raster, if any."""
    meta = classes_path.parent / SCENE_METADATA
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    value = info.get("date", info.get("year")) if isinstance(info, dict) else None
    return None if value is None else str(value)


def _check_date(date: str | None) -> str:
    """Validate an ISO 8601 date (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``); '' if None."""
    if date is None:
        return ""
    text = str(date).strip()
    try:
        if len(text) == 4:
            dt.date(int(text), 1, 1)
        elif len(text) == 7:
            dt.date.fromisoformat(text + "-01")
        else:
            dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"date: expected an ISO 8601 date (YYYY, YYYY-MM or YYYY-MM-DD), got {date!r}"
        ) from None
    return text


def _crops(
    labels: npt.NDArray[np.int32], n: int, margin: int, grid: ClassGrid
) -> list[tuple[int, int, int, int]]:
    """Bounding box ``(row0, row1, col0, col1)`` of every complex, widened by ``margin`` and clipped."""
    out = []
    for sl in ndi.find_objects(labels, max_label=n):
        assert sl is not None
        out.append(
            (
                max(0, sl[0].start - margin),
                min(grid.height, sl[0].stop + margin),
                max(0, sl[1].start - margin),
                min(grid.width, sl[1].stop + margin),
            )
        )
    return out


def _run(job: _Job, workers: int) -> Iterator[_ComplexResult]:
    """Process every complex, largest first, in this process or in forked workers."""
    ks = list(range(1, len(job.crops) + 1))
    ks.sort(
        key=lambda k: (
            -(job.crops[k - 1][1] - job.crops[k - 1][0]) * (job.crops[k - 1][3] - job.crops[k - 1][2])
        )
    )
    if workers > 1 and len(ks) > 1 and "fork" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_enter_gdal_env) as pool:
            yield from pool.imap_unordered(_process_complex, ks, chunksize=8)
    else:
        with rasterio.Env():  # one GDAL environment for all the windows, not one per call
            for k in ks:
                yield _process_complex(k)


_WORKER_ENV: list[rasterio.Env] = []


def _enter_gdal_env() -> None:
    """Worker initializer: enter one GDAL environment for the worker's lifetime."""
    env = rasterio.Env()
    env.__enter__()
    _WORKER_ENV.append(env)


def _process_complex(k: int) -> _ComplexResult:
    """Split, measure and vectorise glacier complex ``k`` (runs in a worker; reads the shared ``_JOB``)."""
    job = _JOB
    assert job is not None
    grid = job.grid
    r0, r1, c0, c1 = job.crops[k - 1]
    cmask = job.labels[r0:r1, c0:c1] == k
    cls = job.classes[r0:r1, c0:c1]
    z = job.dem().read(r0, c0, r1 - r0, c1 - c0)
    area, dx, dy = grid.row_area_m2[r0:r1], grid.row_dx_m[r0:r1], grid.row_dy_m[r0:r1]
    transform = grid.window_transform(r0, c0)
    open_edges = np.zeros(cmask.shape, dtype=bool)
    if r0 == 0:
        open_edges[0, :] = True
    if r1 == grid.height:
        open_edges[-1, :] = True
    if c0 == 0:
        open_edges[:, 0] = True
    if c1 == grid.width:
        open_edges[:, -1] = True
    reference = None
    if job.method == "copy" and job.reference is not None:
        reference = _rasterise_reference(job.reference, transform, cmask.shape)
    glaciers = split_complex(
        cmask,
        z,
        job.method,
        grid.pixel_size_m,
        area,
        dx,
        dy,
        job.params,
        reference=reference,
        open_edges=open_edges,
    )
    slope, aspect = slope_aspect(z, dx, dy, where=glaciers > 0)
    debris = (cls == DEBRIS_ICE) & (glaciers > 0)
    attrs: list[dict[str, Any]] = []
    for i, sl in enumerate(ndi.find_objects(glaciers), start=1):
        assert sl is not None
        a = glacier_attributes(
            glaciers[sl] == i, z[sl], slope[sl], aspect[sl], debris[sl], area[sl[0]], dx[sl[0]], dy[sl[0]]
        )
        tr, tc = a.pop("term_row"), a.pop("term_col")
        if tr >= 0:
            a["term_x"], a["term_y"] = grid.xy(r0 + sl[0].start + tr + 0.5, c0 + sl[1].start + tc + 0.5)
        else:
            a["term_x"] = a["term_y"] = math.nan
        attrs.append(a)
    parts: dict[int, list[Any]] = {}
    for geom, value in iter_polygons(glaciers, transform):
        parts.setdefault(value, []).append(geom)
    polygons = [_polygonal(parts.get(i, [])) for i in range(1, len(attrs) + 1)]
    unc = buffer_uncertainty_m2(job.to_metric(np.asarray(polygons, dtype=object)), job.buffer_m) / 1e6
    for a, u in zip(attrs, unc):
        a["area_unc_km2"] = float(u)
    debris_pairs: list[tuple[int, Any]] = []
    if debris.any():
        rows, cols = np.nonzero(debris.any(axis=1))[0], np.nonzero(debris.any(axis=0))[0]
        d0, d1, e0, e1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        debris_ids = np.where(debris[d0:d1, e0:e1], glaciers[d0:d1, e0:e1], 0)
        debris_pairs = [(v, g) for g, v in iter_polygons(debris_ids, grid.window_transform(r0 + d0, c0 + e0))]
    debris_m = job.to_metric(np.asarray([g for _, g in debris_pairs], dtype=object))
    debris_area = shapely.area(debris_m) / 1e6 if len(debris_m) else np.zeros(0)
    debris_unc = buffer_uncertainty_m2(debris_m, job.buffer_m) / 1e6
    debris_rows = [(v, g, float(a), float(u)) for (v, g), a, u in zip(debris_pairs, debris_area, debris_unc)]
    divides: list[tuple[int, int, Any, float]] = []
    if len(attrs) > 1:
        lines = divide_lines(glaciers, transform)
        lengths = shapely.length(job.to_metric(np.asarray([g for _, _, g in lines], dtype=object)))
        divides = [(u, v, g, float(length)) for (u, v, g), length in zip(lines, lengths)]
    valid = int(np.count_nonzero(cmask & np.isfinite(z)))
    return _ComplexResult(k, attrs, polygons, debris_rows, divides, valid)


def _polygonal(geoms: list[Any]) -> Any:
    """One (Multi)Polygon from the polygonal parts of ``geoms``."""
    polys = [p for g in geoms for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
    if len(polys) == 1:
        return polys[0]
    return shapely.union_all(polys)


def _rasterise_reference(
    reference: gpd.GeoSeries, transform: Any, shape: tuple[int, int]
) -> npt.NDArray[np.int32]:
    """Reference glaciers (ids = row index + 1) burnt into a crop."""
    h, w = shape
    x0, y0 = transform.c, transform.f
    x1, y1 = transform.c + transform.a * w, transform.f + transform.e * h
    hits = reference.sindex.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    if len(hits) == 0:
        return np.zeros(shape, dtype=np.int32)
    shapes = ((reference.iloc[int(i)], int(i) + 1) for i in sorted(hits))
    out: npt.NDArray[np.int32] = rasterio.features.rasterize(
        shapes, out_shape=shape, transform=transform, fill=0, dtype="int32"
    )
    return out


def _assemble(results: list[_ComplexResult], grid: ClassGrid, dem_source: str, src_date: str) -> Inventory:
    """Number the glaciers and build the three layers, adding centre and terminus points in EPSG:4326."""
    rows: list[dict[str, Any]] = []
    geoms: list[Any] = []
    debris_rows: list[tuple[int, Any, float, float]] = []
    divide_rows: list[tuple[int, int, Any, float]] = []
    gid = 0
    for res in results:
        first = gid + 1
        for attrs, geom in zip(res.attrs, res.polygons):
            gid += 1
            rows.append({"glac_id": gid, "complex_id": res.k, **attrs})
            geoms.append(geom)
        debris_rows.extend((first + local - 1, g, a, u) for local, g, a, u in res.debris)
        divide_rows.extend((first + u - 1, first + v - 1, g, length) for u, v, g, length in res.divides)
    crs = grid.crs
    glaciers = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    debris = gpd.GeoDataFrame(
        {
            "glac_id": np.asarray([d[0] for d in debris_rows], dtype=np.int64),
            "area_km2": np.asarray([d[2] for d in debris_rows], dtype=np.float64),
            "area_unc_km2": np.asarray([d[3] for d in debris_rows], dtype=np.float64),
        },
        geometry=gpd.GeoSeries([d[1] for d in debris_rows], crs=crs),
        crs=crs,
    )
    divides = gpd.GeoDataFrame(
        {
            "glac_id_1": np.asarray([d[0] for d in divide_rows], dtype=np.int64),
            "glac_id_2": np.asarray([d[1] for d in divide_rows], dtype=np.int64),
            "length_m": np.asarray([d[3] for d in divide_rows], dtype=np.float64),
        },
        geometry=gpd.GeoSeries([d[2] for d in divide_rows], crs=crs),
        crs=crs,
    )
    if len(glaciers):
        to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        centre = shapely.point_on_surface(glaciers.geometry.values)
        glaciers["cenlon"], glaciers["cenlat"] = to_wgs84.transform(
            shapely.get_x(centre), shapely.get_y(centre)
        )
        glaciers["termlon"], glaciers["termlat"] = to_wgs84.transform(
            glaciers.pop("term_x").to_numpy(), glaciers.pop("term_y").to_numpy()
        )
        per_glacier = debris.groupby("glac_id")["area_unc_km2"].sum()
        glaciers["debris_unc_km2"] = glaciers["glac_id"].map(per_glacier).fillna(0.0).to_numpy()
    glaciers["dem_source"] = dem_source
    glaciers["src_date"] = src_date
    for col in GLACIER_COLUMNS:
        if col not in glaciers.columns:
            glaciers[col] = pd.Series(dtype="float64")
    glaciers = gpd.GeoDataFrame(glaciers[[*GLACIER_COLUMNS, "geometry"]], geometry="geometry", crs=crs)
    for col in ("glac_id", "complex_id", "aspect_sec"):
        glaciers[col] = glaciers[col].astype(np.int64)
    summary: dict[str, Any] = {
        "n_glaciers": len(glaciers),
        "n_complexes": len(results),
        "n_divides": len(divides),
        "area_km2": float(glaciers["area_km2"].sum()),
        "area_unc_km2": float(glaciers["area_unc_km2"].sum()),
        "area_debris_km2": float(glaciers["area_debris_km2"].sum()),
        "debris_unc_km2": float(debris["area_unc_km2"].sum()),
    }
    return Inventory(glaciers, debris, divides, summary)


def write_inventory(inventory: Inventory, out_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the inventory: GeoPackage layers ``glaciers``, ``debris``, ``divides`` and ``<out>.csv``.

    Both files are written under temporary names and renamed only when everything succeeded.

    Args:
        inventory: The inventory (its ``gpkg_path`` and ``csv_path`` are set).
        out_path: The ``.gpkg`` file name.

    Returns:
        ``(gpkg_path, csv_path)``.
    """
    gpkg = Path(out_path)
    csv = gpkg.with_suffix(".csv")
    with atomic_output(gpkg) as tmp_gpkg, atomic_output(csv) as tmp_csv:
        inventory.glaciers.to_file(tmp_gpkg, layer="glaciers", driver="GPKG")
        inventory.debris.to_file(tmp_gpkg, layer="debris", driver="GPKG")
        inventory.divides.to_file(tmp_gpkg, layer="divides", driver="GPKG")
        inventory.glaciers.drop(columns="geometry").to_csv(tmp_csv, index=False)
    inventory.gpkg_path, inventory.csv_path = gpkg, csv
    return gpkg, csv
