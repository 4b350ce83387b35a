"""Class raster + DEM -> glacier inventory (GeoPackage with glaciers, debris and divides, plus a CSV).

Workflow (``docs/inventory.md``):

1. Scan the class raster strip by strip (optional median filter), find its connected glacier regions
   (classes 1 and 2, 4-connectivity; joined across strip borders) and drop those smaller than
   ``min_area_km2`` (``filtering.scan_complexes``). Only a bounding box, a seed pixel and an area are kept
   per complex.
2. Process every remaining glacier complex in a crop of its bounding box plus a margin: read the class and
   DEM windows (the DEM on the class grid, reprojected on the fly if it is on another grid), select the
   complex as the glacier region through its seed, split it along ice divides (``divides``), compute the
   attributes of each glacier (``attributes``), and vectorise the glaciers, their debris and the divides
   between them. No raster is ever held whole: memory is bounded by one strip of the scan, the largest
   crop and the per-glacier results, whatever the size of the rasters. Complexes are independent: with
   ``workers > 1`` they are processed by worker processes (forked where the platform can), each with its
   own readers.
3. Number the glaciers, add the centre and terminus points in EPSG:4326, the buffer-method area
   uncertainty (``uncertainty``), ``dem_source`` and ``src_date``, and write the GeoPackage and CSV
   atomically (:func:`glaciermap.io.atomic_output`): an error leaves no output file.
"""

from __future__ import annotations

import datetime as dt
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

from glaciermap.constants import CLEAN_ICE, DEBRIS_ICE
from glaciermap.datasets.vectors import read_outlines
from glaciermap.errors import ConfigError, InputError
from glaciermap.inventory.attributes import glacier_attributes
from glaciermap.inventory.divides import (
    DivideMethod,
    DivideParams,
    divide_lines,
    split_complex,
)
from glaciermap.inventory.filtering import FOUR_CONNECTED, Complexes, scan_complexes
from glaciermap.inventory.glacier_type import MIN_AREA_KM2, add_glacier_types
from glaciermap.inventory.inputs import ClassGrid, ClassReader, DemReader
from glaciermap.inventory.polygonise import iter_polygons
from glaciermap.inventory.uncertainty import buffer_uncertainty_m2, metric_crs_for
from glaciermap.io import atomic_outputs, check_output_file, write_vector
from glaciermap.terrain import slope_aspect

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
    """Everything the complex workers read (small: no raster; each process opens its own readers)."""

    grid: ClassGrid
    classes_path: Path
    median_filter: int
    complexes: Complexes
    crops: npt.NDArray[np.int64]
    dem_path: Path
    method: DivideMethod
    params: DivideParams
    buffer_m: float
    metric: CRS
    reference: gpd.GeoSeries | None = None
    readers: dict[int, tuple[ClassReader, DemReader]] = field(default_factory=dict)
    transformers: dict[int, Transformer | None] = field(default_factory=dict)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for spawned workers without the open readers and transformers (they reopen them)."""
        state = dict(self.__dict__)
        state["readers"], state["transformers"] = {}, {}
        return state

    def open(self) -> tuple[ClassReader, DemReader]:
        """The class and DEM readers of the current process (each worker opens its own)."""
        pid = os.getpid()
        if pid not in self.readers:
            classes = ClassReader(self.classes_path, self.median_filter)
            try:
                self.readers[pid] = (classes, DemReader(self.dem_path, self.grid))
            except BaseException:
                classes.close()
                raise
        return self.readers[pid]

    def close(self) -> None:
        """Close the readers this process opened."""
        pair = self.readers.pop(os.getpid(), None)
        if pair is not None:
            pair[0].close()
            pair[1].close()

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
    snowline_m: float | None = None,
    snow_mask: str | os.PathLike[str] | None = None,
    type_min_area_km2: float = MIN_AREA_KM2,
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
        snowline_m: Snow-line altitude (m): adds ``aar`` and ``glacier_type`` from the DEM
            (:func:`~glaciermap.inventory.glacier_type.add_glacier_types`, Karakoram paper Sec. 4.4).
        snow_mask: Snow-mask GeoTIFF (nonzero = snow), instead of ``snowline_m``.
        type_min_area_km2: Smallest glacier given a type, km2 (the paper: 5).

    Returns:
        The :class:`Inventory`.

    Raises:
        ConfigError: For invalid options.
        InputError: For a missing, corrupt or unusable class raster, DEM or reference (see ``inputs``).
    """
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    method = _check_options(out_path, min_area_km2, median_filter, method, reference, buffer_pixels, workers)
    if snowline_m is not None and snow_mask is not None:
        raise ConfigError("give --snow-line or --snow-mask, not both")
    if snow_mask is not None and not Path(snow_mask).is_file():  # fail before the long part
        raise InputError(f"{snow_mask}: snow mask not found; expected a GeoTIFF (band 1, nonzero = snow)")
    if date is None:
        from glaciermap.datasets.scene_folder import scene_date  # imports torch: only when needed

        date = scene_date(Path(classes_path).parent)
    src_date = _check_date(date)
    params = divide_params or DivideParams()
    classes, dem = _open_readers(classes_path, dem_path, median_filter)
    grid = classes.grid
    try:
        ref_geoms = _reference_geoms(reference, grid) if method == "copy" else None
        t1 = time.perf_counter()
        complexes = scan_complexes(classes.strips(), grid.row_area_m2, min_area_km2)
        times["scan_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        crops = _crops(complexes, params.margin_px(grid.pixel_size_m), grid)
        job = _Job(
            grid,
            Path(classes_path),
            median_filter,
            complexes,
            crops,
            Path(dem_path),
            method,
            params,
            buffer_pixels * grid.pixel_size_m,
            metric_crs_for(grid.crs.to_wkt(), grid.bounds),
            ref_geoms,
        )
        results = _run_job(job, (classes, dem), workers)
    finally:
        classes.close()
        dem.close()
    times["complexes_s"] = time.perf_counter() - t2
    if results and sum(r.dem_valid_px for r in results) == 0:
        raise InputError(f"{dem_path}: the DEM has no valid elevation over any glacier (nodata everywhere)")
    t3 = time.perf_counter()
    inventory = _assemble(results, grid, dem_source or Path(dem_path).name, src_date)
    times["assemble_s"] = time.perf_counter() - t3
    inventory.summary.update(method=method, dem_reprojected=not dem.same_grid)
    inventory.summary.update(_run_summary(job, min_area_km2, buffer_pixels, workers))
    if snowline_m is not None or snow_mask is not None:
        _add_types(inventory, grid, dem_path, snowline_m, snow_mask, type_min_area_km2)
    if out_path is not None:
        t4 = time.perf_counter()
        write_inventory(inventory, out_path)
        times["write_s"] = time.perf_counter() - t4
    times["total_s"] = time.perf_counter() - t0
    inventory.summary["timings"] = times
    return inventory


def _add_types(
    inventory: Inventory,
    grid: ClassGrid,
    dem_path: str | os.PathLike[str],
    snowline_m: float | None,
    snow_mask: str | os.PathLike[str] | None,
    min_area_km2: float,
) -> None:
    """Add ``aar`` and ``glacier_type`` to the glaciers and the count of each type to the summary."""
    inventory.glaciers = add_glacier_types(
        inventory.glaciers,
        grid,
        dem_path=Path(dem_path),
        snowline_m=snowline_m,
        snow_path=Path(snow_mask) if snow_mask is not None else None,
        min_area_km2=min_area_km2,
    )
    counts = inventory.glaciers["glacier_type"].value_counts()
    inventory.summary["glacier_types"] = {
        t: int(counts.get(t, 0)) for t in ("Turkestan", "Mustagh", "Alpine")
    }


def _open_readers(
    classes_path: str | os.PathLike[str], dem_path: str | os.PathLike[str], median_filter: int
) -> tuple[ClassReader, DemReader]:
    """Open the class raster and the DEM (checked on the class grid first); none stays open on error."""
    classes = ClassReader(classes_path, median_filter=median_filter)
    try:
        return classes, DemReader(dem_path, classes.grid)
    except BaseException:
        classes.close()
        raise


def _reference_geoms(reference: str | os.PathLike[str] | None, grid: ClassGrid) -> gpd.GeoSeries:
    """The reference outlines of method ``"copy"``, in the class grid's CRS."""
    assert reference is not None
    ref = read_outlines(reference, "reference inventory").to_crs(grid.crs)
    return ref.geometry


def _run_job(job: _Job, readers: tuple[ClassReader, DemReader], workers: int) -> list[_ComplexResult]:
    """Process every complex of ``job`` (this process uses ``readers``), in the order of the complexes."""
    global _JOB
    job.readers[os.getpid()] = readers
    _JOB = job
    try:
        return sorted(_run(job, workers), key=lambda r: r.k)
    finally:
        _JOB = None


def _run_summary(job: _Job, min_area_km2: float, buffer_pixels: float, workers: int) -> dict[str, Any]:
    """Run information for the inventory's summary: grid, options and the largest complex and crop."""
    c = job.crops
    return {
        "crs": job.grid.crs.to_string(),
        "pixel_size_m": job.grid.pixel_size_m,
        "min_area_km2": min_area_km2,
        "buffer_pixels": buffer_pixels,
        "workers": workers,
        "largest_complex_km2": float(job.complexes.area_km2.max(initial=0.0)),
        "largest_crop_mpx": float(((c[:, 1] - c[:, 0]) * (c[:, 3] - c[:, 2])).max(initial=0)) / 1e6,
    }


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
    if out_path is not None:  # before any work: the GeoPackage and the CSV beside it must be writable
        check_output_file(out_path, "out")
        check_output_file(Path(out_path).with_suffix(".csv"), "out (its CSV)")
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


def _crops(complexes: Complexes, margin: int, grid: ClassGrid) -> npt.NDArray[np.int64]:
    """Bounding box ``(row0, row1, col0, col1)`` of every complex, widened by ``margin`` and clipped."""
    box = complexes.bbox + np.array([-margin, margin, -margin, margin], dtype=np.int64)
    lo = np.zeros(4, dtype=np.int64)
    hi = np.array([grid.height, grid.height, grid.width, grid.width], dtype=np.int64)
    out: npt.NDArray[np.int64] = np.clip(box, lo, hi)
    return out


def _run(job: _Job, workers: int) -> Iterator[_ComplexResult]:
    """Process every complex, largest first, in this process or in worker processes."""
    c = job.crops
    sizes = (c[:, 1] - c[:, 0]) * (c[:, 3] - c[:, 2])
    ks = [int(k) + 1 for k in np.argsort(-sizes, kind="stable")]
    if workers > 1 and len(ks) > 1:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context(START_METHOD if START_METHOD in methods else None)
        with ctx.Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
            yield from pool.imap_unordered(_process_complex, ks, chunksize=8)
    else:
        with rasterio.Env():  # one GDAL environment for all the windows, not one per call
            for k in ks:
                yield _process_complex(k)


START_METHOD = "fork"
"""Start method of the worker processes where the platform has it (else the platform's default): forked
workers start at once; spawned ones (macOS, Windows) import glaciermap first and receive the small job."""

_WORKER_ENV: list[rasterio.Env] = []


def _init_worker(job: _Job) -> None:
    """Worker initializer: install the job and enter one GDAL environment for the worker's lifetime."""
    global _JOB
    _JOB = job
    env = rasterio.Env()
    env.__enter__()
    _WORKER_ENV.append(env)


def _process_complex(k: int) -> _ComplexResult:
    """Split, measure and vectorise glacier complex ``k`` (runs in a worker; reads the shared ``_JOB``)."""
    job = _JOB
    assert job is not None
    grid = job.grid
    r0, r1, c0, c1 = (int(v) for v in job.crops[k - 1])
    class_reader, dem_reader = job.open()
    cls = class_reader.read(r0, c0, r1 - r0, c1 - c0)
    cmask = _complex_mask(cls, job.complexes, k, r0, c0)
    z = dem_reader.read(r0, c0, r1 - r0, c1 - c0)
    area, dx, dy = grid.row_area_m2[r0:r1], grid.row_dx_m[r0:r1], grid.row_dy_m[r0:r1]
    transform = grid.window_transform(r0, c0)
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
        open_edges=_open_edges(cmask.shape, (r0, r1, c0, c1), grid),
    )
    debris = (cls == DEBRIS_ICE) & (glaciers > 0)
    attrs = _attributes(glaciers, z, debris, (r0, c0), grid)
    parts: dict[int, list[Any]] = {}
    for geom, value in iter_polygons(glaciers, transform):
        parts.setdefault(value, []).append(geom)
    polygons = [_polygonal(parts.get(i, [])) for i in range(1, len(attrs) + 1)]
    unc = buffer_uncertainty_m2(job.to_metric(np.asarray(polygons, dtype=object)), job.buffer_m) / 1e6
    for a, u in zip(attrs, unc):
        a["area_unc_km2"] = float(u)
    divides: list[tuple[int, int, Any, float]] = []
    if len(attrs) > 1:
        lines = divide_lines(glaciers, transform)
        lengths = shapely.length(job.to_metric(np.asarray([g for _, _, g in lines], dtype=object)))
        divides = [(u, v, g, float(length)) for (u, v, g), length in zip(lines, lengths)]
    valid = int(np.count_nonzero(cmask & np.isfinite(z)))
    return _ComplexResult(k, attrs, polygons, _debris_parts(job, debris, glaciers, r0, c0), divides, valid)


def _open_edges(
    shape: tuple[int, int], crop: tuple[int, int, int, int], grid: ClassGrid
) -> npt.NDArray[np.bool_]:
    """The crop's border pixels that lie on the raster's edge, where ice may flow out of the raster.

    Args:
        shape: Shape of the crop.
        crop: ``(row0, row1, col0, col1)`` of the crop in the raster.
        grid: The class grid.

    Returns:
        A mask of the crop, True on the raster's edge.
    """
    r0, r1, c0, c1 = crop
    open_edges = np.zeros(shape, dtype=bool)
    if r0 == 0:
        open_edges[0, :] = True
    if r1 == grid.height:
        open_edges[-1, :] = True
    if c0 == 0:
        open_edges[:, 0] = True
    if c1 == grid.width:
        open_edges[:, -1] = True
    return open_edges


def _attributes(
    glaciers: npt.NDArray[np.int32],
    z: npt.NDArray[np.floating[Any]],
    debris: npt.NDArray[np.bool_],
    origin: tuple[int, int],
    grid: ClassGrid,
) -> list[dict[str, Any]]:
    """The attributes of every glacier of a crop (:func:`glacier_attributes`), terminus in grid coordinates.

    Args:
        glaciers: Glacier labels 1..n of the crop.
        z: Elevation of the crop (m).
        debris: Debris-covered pixels of the glaciers.
        origin: ``(row0, col0)`` of the crop in the raster.
        grid: The class grid.

    Returns:
        One attribute dict per glacier, in label order; ``term_x``, ``term_y`` NaN without a terminus.
    """
    r0, c0 = origin
    r1 = r0 + glaciers.shape[0]
    area, dx, dy = grid.row_area_m2[r0:r1], grid.row_dx_m[r0:r1], grid.row_dy_m[r0:r1]
    slope, aspect = slope_aspect(z, dx, dy, where=glaciers > 0)
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
    return attrs


def _debris_parts(
    job: _Job, debris: npt.NDArray[np.bool_], glaciers: npt.NDArray[np.int32], r0: int, c0: int
) -> list[tuple[int, Any, float, float]]:
    """The debris-covered parts of a crop's glaciers: ``(glacier label, polygon, area km2, uncertainty km2)``.

    Args:
        job: The inventory job (metric CRS, uncertainty buffer).
        debris: Debris-covered glacier pixels of the crop.
        glaciers: Glacier labels of the crop.
        r0: First row of the crop in the raster.
        c0: First column.

    Returns:
        One row per debris polygon.
    """
    debris_pairs: list[tuple[int, Any]] = []
    if debris.any():
        rows, cols = np.nonzero(debris.any(axis=1))[0], np.nonzero(debris.any(axis=0))[0]
        d0, d1, e0, e1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        debris_ids = np.where(debris[d0:d1, e0:e1], glaciers[d0:d1, e0:e1], 0)
        window = job.grid.window_transform(r0 + d0, c0 + e0)
        debris_pairs = [(v, g) for g, v in iter_polygons(debris_ids, window)]
    debris_m = job.to_metric(np.asarray([g for _, g in debris_pairs], dtype=object))
    debris_area = shapely.area(debris_m) / 1e6 if len(debris_m) else np.zeros(0)
    debris_unc = buffer_uncertainty_m2(debris_m, job.buffer_m) / 1e6
    return [(v, g, float(a), float(u)) for (v, g), a, u in zip(debris_pairs, debris_area, debris_unc)]


def _complex_mask(
    cls: npt.NDArray[np.uint8], complexes: Complexes, k: int, r0: int, c0: int
) -> npt.NDArray[np.bool_]:
    """Mask of complex ``k`` in a crop of classes whose top-left pixel is (``r0``, ``c0``).

    The complex is the 4-connected glacier region through its seed pixel; it lies inside its bounding
    box, so only that part of the crop is labelled.
    """
    b0, b1, e0, e1 = (int(v) - o for v, o in zip(complexes.bbox[k - 1], (r0, r0, c0, c0)))
    part = cls[b0:b1, e0:e1]
    labels, _ = ndi.label((part == CLEAN_ICE) | (part == DEBRIS_ICE), structure=FOUR_CONNECTED)
    sr, sc = (int(v) for v in complexes.seed[k - 1])
    mask = np.zeros(cls.shape, dtype=bool)
    mask[b0:b1, e0:e1] = labels == labels[sr - r0 - b0, sc - c0 - e0]
    return mask


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
    rows, geoms, debris_rows, divide_rows = _number_glaciers(results)
    crs = grid.crs
    debris = _debris_layer(debris_rows, crs)
    divides = _divides_layer(divide_rows, crs)
    glaciers = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    if len(glaciers):
        _add_points(glaciers, crs)
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


def _number_glaciers(
    results: list[_ComplexResult],
) -> tuple[
    list[dict[str, Any]], list[Any], list[tuple[int, Any, float, float]], list[tuple[int, int, Any, float]]
]:
    """Number the glaciers 1..n in complex order and renumber their debris and divides to match.

    Args:
        results: The complexes' results, in complex order.

    Returns:
        ``(attribute rows, glacier polygons, debris rows, divide rows)`` with inventory-wide glacier ids.
    """
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
    return rows, geoms, debris_rows, divide_rows


def _debris_layer(debris_rows: list[tuple[int, Any, float, float]], crs: Any) -> gpd.GeoDataFrame:
    """The ``debris`` layer: ``glac_id``, ``area_km2``, ``area_unc_km2`` and the polygons."""
    return gpd.GeoDataFrame(
        {
            "glac_id": np.asarray([d[0] for d in debris_rows], dtype=np.int64),
            "area_km2": np.asarray([d[2] for d in debris_rows], dtype=np.float64),
            "area_unc_km2": np.asarray([d[3] for d in debris_rows], dtype=np.float64),
        },
        geometry=gpd.GeoSeries([d[1] for d in debris_rows], crs=crs),
        crs=crs,
    )


def _divides_layer(divide_rows: list[tuple[int, int, Any, float]], crs: Any) -> gpd.GeoDataFrame:
    """The ``divides`` layer: ``glac_id_1``, ``glac_id_2``, ``length_m`` and the lines."""
    return gpd.GeoDataFrame(
        {
            "glac_id_1": np.asarray([d[0] for d in divide_rows], dtype=np.int64),
            "glac_id_2": np.asarray([d[1] for d in divide_rows], dtype=np.int64),
            "length_m": np.asarray([d[3] for d in divide_rows], dtype=np.float64),
        },
        geometry=gpd.GeoSeries([d[2] for d in divide_rows], crs=crs),
        crs=crs,
    )


def _add_points(glaciers: gpd.GeoDataFrame, crs: Any) -> None:
    """Add the centre and terminus points in EPSG:4326: ``cenlon``, ``cenlat``, ``termlon``, ``termlat``.

    The centre is a point on the glacier's surface; the terminus columns replace ``term_x`` and ``term_y``.
    """
    to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    centre = shapely.point_on_surface(glaciers.geometry.values)
    glaciers["cenlon"], glaciers["cenlat"] = to_wgs84.transform(shapely.get_x(centre), shapely.get_y(centre))
    glaciers["termlon"], glaciers["termlat"] = to_wgs84.transform(
        glaciers.pop("term_x").to_numpy(), glaciers.pop("term_y").to_numpy()
    )


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
    with atomic_outputs(gpkg, csv) as (tmp_gpkg, tmp_csv):
        write_vector(inventory.glaciers, tmp_gpkg, "glaciers")
        write_vector(inventory.debris, tmp_gpkg, "debris")
        write_vector(inventory.divides, tmp_gpkg, "divides")
        inventory.glaciers.drop(columns="geometry").to_csv(tmp_csv, index=False)
    inventory.gpkg_path, inventory.csv_path = gpkg, csv
    return gpkg, csv
