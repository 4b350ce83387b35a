"""Write a scene folder from band files, a DEM and optional thermal band, outlines or labels.

The optical grid defines the scene (GlaViTU reference notes 4.5: "the optical grid defines geometry"): the
finest of the optical bands gives CRS, transform and size (10 m for Sentinel-2, 30 m for Landsat). Every
other input is warped onto it with GDAL (:class:`rasterio.vrt.WarpedVRT`): bilinear for continuous layers
(20 m Sentinel-2 SWIR, DEM, thermal), nearest for label rasters; outlines are rasterised on the grid
(:func:`glaciermap.datasets.outline_labels.rasterise_outlines`). Slope is computed on the grid from the resampled
elevation with :func:`glaciermap.terrain.slope_aspect` (Horn 1981), with ground spacings from
:func:`glaciermap.terrain.ground_spacing` so that geographic grids get slopes from metres.

Streaming: rows are processed in strips of ``block_rows`` (plus one halo row above and below for the slope),
so memory is a few strips of every band, the warped views and the GDAL cache, plus one uint8 label grid when
outlines are given; it does not grow with the number of rows (a full 10,980 px Sentinel-2 tile: 2.2 GiB peak
resident memory, 0.9 GiB of which is the imports; ``benchmarks/RESULTS.md``). Per-strip checks stop at the first strip
whose values are in the wrong units (digital numbers instead of reflectance, feet or centimetres instead of
metres, degrees Celsius instead of kelvin). The folder is written under a temporary name and renamed at
the end (:func:`glaciermap.io.atomic_output` for folders): a failure leaves nothing at ``out``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.windows
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from glaciermap import __version__
from glaciermap.constants import BANDS, IGNORE_INDEX, RASTER_NODATA, SCENE_FILES
from glaciermap.datasets.outline_labels import rasterise_outlines, read_outlines
from glaciermap.datasets.scene_folder import LABELS, SCENE_STATS, check_label_values, write_scene_metadata
from glaciermap.errors import ConfigError, InputError
from glaciermap.io import open_raster
from glaciermap.prepare.bands import BandFile
from glaciermap.raster import RasterGrid
from glaciermap.terrain import ground_spacing, slope_aspect
from glaciermap.transforms.stats import RunningStats

UNIT_RANGES: dict[str, tuple[float, float, str]] = {
    "reflectance": (
        -0.5,
        2.0,
        "reflectance (about 0-1; digital numbers? use --sentinel2/--landsat or --optical-scale)",
    ),
    "m": (-500.0, 9000.0, "elevation in m (feet or cm? convert to metres)"),
    "K": (150.0, 350.0, "temperature in K (degrees Celsius? add 273.15)"),
}
"""Plausible range of the per-strip median of each unit (reflectance, elevation m, temperature K)."""


@dataclass(frozen=True)
class PrepareInputs:
    """Everything :func:`prepare_scene` reads.

    Attributes:
        optical: The six optical bands by canonical name (blue, green, red, nir, swir1, swir2).
        dem: Elevation in m (after the band's scale and offset).
        thermal: Optional thermal band in K.
        outlines: Optional glacier outlines (shapefile/GeoPackage, any CRS) to rasterise as labels.
        debris: Optional debris polygons (with ``outlines``).
        labels: Optional label raster (0, 1, 2, 255), resampled with nearest neighbour.
        region: Region code for ``scene.json`` (e.g. ``"HMA"``).
        year: Acquisition year, or ``None``.
        metadata: Extra ``scene.json`` entries (sensor, product, level, offsets, ...).
    """

    optical: Mapping[str, BandFile]
    dem: BandFile
    thermal: BandFile | None = None
    outlines: Path | None = None
    debris: Path | None = None
    labels: Path | None = None
    region: str = "unknown"
    year: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


def reference_grid(optical: Mapping[str, BandFile]) -> RasterGrid:
    """The grid of the finest optical band (ties: the first in canonical order).

    Args:
        optical: Optical bands by name.

    Returns:
        The grid.

    Raises:
        InputError: If a band file is unreadable, has no CRS, too few bands, or is rotated.
    """
    best: tuple[float, RasterGrid] | None = None
    for band in optical.values():
        with open_raster(band.path, f"{band.name} band") as src:
            if src.crs is None:
                raise InputError(
                    f"{band.path} has no CRS; expected a georeferenced GeoTIFF/JP2 ({band.name})"
                )
            if band.band > src.count:
                raise InputError(
                    f"{band.path} has {src.count} band(s); expected band {band.band} = {band.name}"
                )
            t = src.transform
            if t.b != 0 or t.d != 0 or t.e >= 0:
                raise InputError(f"{band.path} has a rotated or flipped transform; expected a north-up grid")
            grid = RasterGrid(CRS.from_user_input(src.crs), t, src.height, src.width)
        if best is None or abs(t.a) < best[0] - 1e-9:
            best = (abs(t.a), grid)
    assert best is not None
    return best[1]


@contextlib.contextmanager
def atomic_folder(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; move it to ``out`` when the block succeeds.

    Args:
        out: The final folder.
        overwrite: Replace an existing non-empty ``out``.

    Yields:
        The temporary folder.

    Raises:
        InputError: If ``out`` exists, is not empty and ``overwrite`` is false, or is a file.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; expected a folder to write the scene to")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} exists and is not empty; expected a new folder (or pass --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


class _Source:
    """One input band warped onto the grid, read strip by strip in physical units (NaN = invalid)."""

    def __init__(
        self, band: BandFile, grid: RasterGrid, resampling: Resampling, stack: contextlib.ExitStack
    ) -> None:
        self.band = band
        src = stack.enter_context(open_raster(band.path, f"{band.name} band"))
        if src.crs is None:
            raise InputError(f"{band.path} has no CRS; expected a georeferenced raster ({band.name})")
        if band.band > src.count:
            raise InputError(f"{band.path} has {src.count} band(s); expected band {band.band} = {band.name}")
        left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
        g = grid.bounds
        if min(right, g[2]) <= max(left, g[0]) or min(top, g[3]) <= max(bottom, g[1]):
            raise InputError(
                f"{band.path} ({band.name}) does not overlap the optical grid (bounds {tuple(round(v) for v in g)} "
                f"in {grid.crs.to_string()}); expected it to cover the scene"
            )
        nodata = band.nodata if band.nodata is not None else src.nodata
        self.vrt = stack.enter_context(
            WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=resampling,
                src_nodata=nodata,
                nodata=np.nan,  # outside the source and at source nodata: NaN, also without a nodata value
                dtype="float32",  # interpolate without rounding to the stored integer type
            )
        )
        self.nodata = nodata

    def read(self, row: int, rows: int) -> npt.NDArray[np.float32]:
        window = rasterio.windows.Window(0, row, self.vrt.width, rows)
        data = self.vrt.read(self.band.band, window=window, masked=True)
        out = np.ma.getdata(data).astype(np.float64)
        out[np.ma.getmaskarray(data)] = np.nan
        if self.nodata is not None and not np.isnan(self.nodata):
            out[np.ma.getdata(data) == self.nodata] = np.nan
        out = out * self.band.scale + self.band.offset
        if self.band.k1 is not None and self.band.k2 is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = self.band.k2 / np.log(self.band.k1 / out + 1.0)
            out[~np.isfinite(out)] = np.nan
        return out.astype(np.float32)


def check_units(values: npt.NDArray[np.float32], band: BandFile) -> None:
    """Raise if the median of the valid values of a strip is outside the plausible range of the band's unit.

    Args:
        values: Values of one strip in physical units (NaN = invalid).
        band: The band (its ``unit``, ``name`` and ``path`` are used).

    Raises:
        InputError: Naming the file, the median found and the unit expected.
    """
    if band.unit not in UNIT_RANGES:
        return
    valid = values[np.isfinite(values)]
    if valid.size == 0:
        return
    lo, hi, what = UNIT_RANGES[band.unit]
    median = float(np.median(valid))
    if not lo <= median <= hi:
        raise InputError(
            f"{band.path} ({band.name}): values have median {median:g} after scale {band.scale:g} and offset "
            f"{band.offset:g}; expected {what}, median in [{lo:g}, {hi:g}]"
        )


def _open_output(
    path: Path, grid: RasterGrid, count: int, dtype: str, nodata: float, names: Sequence[str] | None
) -> Any:
    dst = rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=grid.height,
        width=grid.width,
        count=count,
        dtype=dtype,
        crs=grid.crs,
        transform=grid.transform,
        nodata=nodata,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        BIGTIFF="IF_SAFER",
    )
    if names is not None:
        dst.descriptions = tuple(names)
    return dst


def _slope_strip(
    dem: _Source, grid: RasterGrid, row: int, rows: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Elevation and slope (degrees) of rows ``[row, row + rows)``, with a one-row halo (edges extrapolated)."""
    top = max(0, row - 1)
    bottom = min(grid.height, row + rows + 1)
    z = dem.read(top, bottom - top)
    # Scene edges: odd reflection (2 z0 - z1), which extends a plane exactly, so edge pixels get a slope too.
    mode: Any = "reflect" if min(z.shape) >= 2 else "edge"
    extra = {"reflect_type": "odd"} if mode == "reflect" else {}
    z = np.pad(z, ((int(row == 0), int(row + rows == grid.height)), (1, 1)), mode=mode, **extra)
    halo_rows = np.arange(row - 1, row + rows + 1)
    dx, dy = ground_spacing(grid.crs, grid.transform, np.clip(halo_rows, 0, grid.height - 1))
    slope, _ = slope_aspect(z, dx, dy)
    return z[1:-1, 1:-1], slope[1:-1, 1:-1]


CoregistrationMode = Literal["warn", "error", "off"]
"""What ``prepare`` does when the optical bands and the reference are shifted: warn, raise, or not check."""


@dataclass(frozen=True)
class CoregistrationCheck:
    """The co-registration check of :func:`prepare_scene` (Karakoram paper Sec. 3.1: inputs checked for shifts).

    The NIR band of the written scene is compared by phase cross-correlation
    (:func:`~glaciermap.prepare.karakoram.coregistration_offset`) with the hillshade of the resampled DEM
    (:func:`~glaciermap.terrain.hillshade`, sun at ``sun_azimuth`` / ``sun_elevation``), or with band 1 of
    ``reference`` (e.g. an orthoimage) warped onto the scene grid, both read at most ``max_side`` pixels a
    side (GDAL average); the shift is reported in scene pixels and metres in ``scene.json``
    (``coregistration``). Precision: 1/20 of a decimated pixel, i.e. about 0.5 px of a full 10,980 px tile.
    Memory: a fixed ~0.1 GB for ``max_side=1024`` (FFTs of two images), whatever the scene size.

    Attributes:
        mode: ``"warn"`` (a warning when the shift exceeds ``tolerance_px`` or cannot be measured),
            ``"error"`` (an :class:`~glaciermap.errors.InputError` instead; nothing is written) or ``"off"``.
        tolerance_px: Largest acceptable shift, scene pixels.
        reference: Reference image instead of the hillshade.
        sun_azimuth: Sun azimuth of the hillshade, degrees clockwise from north (use the scene's).
        sun_elevation: Sun elevation of the hillshade, degrees.
        max_side: Largest side of the decimated images, pixels.
    """

    mode: CoregistrationMode = "warn"
    tolerance_px: float = 1.0
    reference: Path | None = None
    sun_azimuth: float = 135.0
    sun_elevation: float = 45.0
    max_side: int = 1024


def _check_inputs(inputs: PrepareInputs, block_rows: int, check: CoregistrationCheck) -> None:
    """Stage 0: options, and the co-registration reference (before hours of work)."""
    if block_rows <= 0:
        raise ConfigError(f"block_rows is {block_rows}; expected a positive number of rows")
    missing = [b for b in BANDS["optical"] if b not in inputs.optical]
    if missing:
        raise ConfigError(f"optical band {missing[0]!r} is missing; expected {', '.join(BANDS['optical'])}")
    if inputs.debris is not None and inputs.outlines is None:
        raise ConfigError("a debris layer was given without outlines; expected --outlines too")
    if check.mode != "off" and check.reference is not None and not Path(check.reference).is_file():
        raise InputError(f"{check.reference}: co-registration reference not found; expected a GeoTIFF")


def _label_grid(inputs: PrepareInputs, grid: RasterGrid) -> npt.NDArray[np.uint8] | None:
    """Stage 1: the outlines (and debris) rasterised on the grid, or ``None`` without outlines."""
    if inputs.outlines is None:
        return None
    glaciers = read_outlines(inputs.outlines, grid.crs)
    debris = read_outlines(inputs.debris, grid.crs, what="debris polygons") if inputs.debris else None
    return rasterise_outlines(
        glaciers,
        transform=grid.transform,
        shape=(grid.height, grid.width),
        debris=debris,
        source=str(inputs.outlines),
    )


@dataclass
class _Sources:
    """Every input warped onto the grid."""

    optical: list[_Source]
    dem: _Source
    thermal: _Source | None
    labels: Any  # a WarpedVRT of the label raster, or None


def _open_sources(inputs: PrepareInputs, grid: RasterGrid, stack: contextlib.ExitStack) -> _Sources:
    """Stage 2: open the inputs on the grid (bilinear; labels nearest)."""
    bilinear = Resampling.bilinear
    labels: Any = None
    if inputs.labels is not None:
        src = stack.enter_context(open_raster(inputs.labels, "labels (0, 1, 2, 255)"))
        labels = stack.enter_context(
            WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=Resampling.nearest,
                src_nodata=src.nodata if src.nodata is not None else IGNORE_INDEX,
                nodata=IGNORE_INDEX,
            )
        )
    return _Sources(
        optical=[_Source(inputs.optical[b], grid, bilinear, stack) for b in BANDS["optical"]],
        dem=_Source(inputs.dem, grid, bilinear, stack),
        thermal=_Source(inputs.thermal, grid, bilinear, stack) if inputs.thermal is not None else None,
        labels=labels,
    )


def _open_outputs(
    tmp: Path, grid: RasterGrid, thermal: bool, labels: bool, stack: contextlib.ExitStack
) -> dict[str, Any]:
    """Stage 3: the output GeoTIFFs (tiled, deflate), by modality and ``labels``."""
    names: list[str] = ["optical", "dem", *(["thermal"] if thermal else [])]
    outputs = {
        m: stack.enter_context(
            _open_output(tmp / SCENE_FILES[m], grid, len(BANDS[m]), "float32", RASTER_NODATA, BANDS[m])
        )
        for m in names
    }
    if labels:
        outputs[LABELS] = stack.enter_context(
            _open_output(tmp / SCENE_FILES[LABELS], grid, 1, "uint8", IGNORE_INDEX, None)
        )
    return outputs


def _read_strip(
    sources: _Sources, grid: RasterGrid, row: int, rows: int
) -> dict[str, npt.NDArray[np.float32]]:
    """Stage 4a: one strip of every modality in physical units, units checked."""
    strips: dict[str, npt.NDArray[np.float32]] = {}
    opt = []
    for source in sources.optical:
        values = source.read(row, rows)
        check_units(values, source.band)
        opt.append(values)
    strips["optical"] = np.stack(opt)
    elevation, slope = _slope_strip(sources.dem, grid, row, rows)
    check_units(elevation, sources.dem.band)
    strips["dem"] = np.stack([elevation, slope])
    if sources.thermal is not None:
        values = sources.thermal.read(row, rows)
        check_units(values, sources.thermal.band)
        strips["thermal"] = values[None]
    return strips


def _write_strips(
    inputs: PrepareInputs,
    grid: RasterGrid,
    sources: _Sources,
    outputs: dict[str, Any],
    label_grid: npt.NDArray[np.uint8] | None,
    block_rows: int,
) -> dict[str, RunningStats]:
    """Stage 4: stream the strips into the outputs; returns the running statistics by modality."""
    running = {m: RunningStats(len(BANDS[m])) for m in outputs if m != LABELS}
    for row in range(0, grid.height, block_rows):
        rows = min(block_rows, grid.height - row)
        window = rasterio.windows.Window(0, row, grid.width, rows)
        invalid = np.zeros((rows, grid.width), dtype=bool)
        for modality, data in _read_strip(sources, grid, row, rows).items():
            bad = ~np.isfinite(data).all(axis=0)
            invalid |= bad
            running[modality].update(data[:, ~bad].astype(np.float64))
            outputs[modality].write(
                np.where(np.isfinite(data), data, RASTER_NODATA).astype(np.float32), window=window
            )
        if LABELS in outputs:
            if label_grid is not None:
                lab = label_grid[row : row + rows].copy()
            else:
                lab = sources.labels.read(1, window=window).astype(np.uint8)
                check_label_values(np.unique(lab).tolist(), inputs.labels or "labels")
            lab[invalid] = IGNORE_INDEX
            outputs[LABELS].write(lab, 1, window=window)
    return running


def _write_stats(tmp: Path, running: Mapping[str, RunningStats]) -> None:
    """Stage 5: ``stats.json``; raises if a modality has no valid pixel."""
    stats = {m: running[m].result(BANDS[m]).to_dict() for m in running}
    empty = [m for m, entry in stats.items() if entry["count"] == 0]
    if empty:
        raise InputError(
            f"no pixel of the optical grid has valid {empty[0]} data ({', '.join(sorted(empty))} all nodata "
            "after resampling); expected inputs overlapping the optical bands"
        )
    (tmp / SCENE_STATS).write_text(json.dumps(stats, indent=2, allow_nan=False))


def _decimated(path: Path, band: int, grid: RasterGrid, max_side: int) -> npt.NDArray[np.float64]:
    """Band ``band`` of a raster averaged onto a coarser copy of ``grid``, at most ``max_side`` px a side.

    The warp targets the coarse grid directly (GDAL average over the source pixels, chunk by chunk), so no
    full-resolution copy of the band is held. NaN = nodata.
    """
    factor = max(1.0, max(grid.height, grid.width) / max_side)
    shape = (max(1, round(grid.height / factor)), max(1, round(grid.width / factor)))
    coarse = grid.transform * Affine.scale(grid.width / shape[1], grid.height / shape[0])
    with open_raster(path, "co-registration reference") as src:
        if src.crs is None:
            raise InputError(f"{path} has no CRS; expected a georeferenced co-registration reference")
        with WarpedVRT(
            src,
            crs=grid.crs,
            transform=coarse,
            width=shape[1],
            height=shape[0],
            resampling=Resampling.average if factor > 1 else Resampling.bilinear,
            nodata=np.nan,
            dtype="float32",
        ) as vrt:
            data = vrt.read(band, masked=True)
    return np.ma.filled(data.astype(np.float64), np.nan)


def _coregistration(tmp: Path, grid: RasterGrid, check: CoregistrationCheck) -> dict[str, Any]:
    """Stage 6: shift between the scene's NIR band and the hillshade or the reference (scene.json record)."""
    from glaciermap.prepare.karakoram import coregistration_offset
    from glaciermap.terrain import ground_spacing, hillshade

    nir = _decimated(tmp / SCENE_FILES["optical"], BANDS["optical"].index("nir") + 1, grid, check.max_side)
    factor = grid.width / nir.shape[1]
    if check.reference is not None:
        reference = _decimated(check.reference, 1, grid, check.max_side)
        name = str(check.reference)
    else:
        z = _decimated(tmp / SCENE_FILES["dem"], 1, grid, check.max_side)
        rows = np.minimum((np.arange(z.shape[0]) * factor).astype(np.int64), grid.height - 1)
        dx, dy = ground_spacing(grid.crs, grid.transform, rows)
        reference = hillshade(
            z, dx * factor, dy * factor, azimuth_deg=check.sun_azimuth, elevation_deg=check.sun_elevation
        ).astype(np.float64)
        name = f"hillshade of the DEM (sun azimuth {check.sun_azimuth:g}, elevation {check.sun_elevation:g})"
    record: dict[str, Any] = {"reference": name, "tolerance_px": check.tolerance_px}
    try:
        result = coregistration_offset(reference, nir, upsample=20)
    except InputError as err:
        record["problem"] = f"not measured: {err}"
        return record
    dy_px, dx_px = result.shift_px[0] * factor, result.shift_px[1] * factor
    shift = float(np.hypot(dy_px, dx_px))
    record.update(shift_px=[dy_px, dx_px], shift_m=[dy_px * abs(grid.transform.e), dx_px * grid.transform.a])
    record.update(magnitude_px=shift, error=result.error)
    if shift > check.tolerance_px:
        record["problem"] = (
            f"the optical bands and the {name} are shifted by dy={dy_px:+.1f}, dx={dx_px:+.1f} px ({shift:.1f} px "
            f"> {check.tolerance_px:g} px)"
        )
    return record


def _apply_coregistration(tmp: Path, grid: RasterGrid, check: CoregistrationCheck) -> dict[str, Any] | None:
    """Run the check unless it is off; warn or raise on a problem (Karakoram paper Sec. 3.1)."""
    if check.mode == "off":
        return None
    record = _coregistration(tmp, grid, check)
    if "problem" in record:
        message = f"co-registration check: {record['problem']}"
        if check.mode == "error":
            raise InputError(f"{message}; expected co-registered inputs (or --coregistration warn/off)")
        warnings.warn(message, UserWarning, stacklevel=3)
    return record


def _scene_metadata(inputs: PrepareInputs, grid: RasterGrid) -> dict[str, Any]:
    """Stage 7: the ``scene.json`` entries."""
    epsg = grid.crs.to_epsg()
    conversions = [*inputs.optical.values(), inputs.dem, *([inputs.thermal] if inputs.thermal else [])]
    meta: dict[str, Any] = {
        "region": inputs.region,
        "year": inputs.year,
        "crs": f"EPSG:{epsg}" if epsg else grid.crs.to_wkt(),
        "height": grid.height,
        "width": grid.width,
        "prepared_by": f"glaciermap {__version__} prepare",
        "sources": {
            **{b: str(inputs.optical[b].path) for b in BANDS["optical"]},
            "elevation": str(inputs.dem.path),
            **({"thermal": str(inputs.thermal.path)} if inputs.thermal is not None else {}),
            **({"outlines": str(inputs.outlines)} if inputs.outlines is not None else {}),
            **({"labels": str(inputs.labels)} if inputs.labels is not None else {}),
        },
        "conversion": {b.name: {"scale": b.scale, "offset": b.offset} for b in conversions},
        **dict(inputs.metadata),
    }
    if inputs.year is None:
        del meta["year"]
    if not grid.crs.is_geographic:
        meta["pixel_size"] = abs(grid.transform.a)
    return meta


def prepare_scene(
    inputs: PrepareInputs,
    out: str | Path,
    *,
    block_rows: int = 256,
    overwrite: bool = False,
    coregistration: CoregistrationCheck | None = None,
) -> Path:
    """Write a scene folder (see :mod:`glaciermap.datasets.scene_folder`) from user inputs.

    Stages: check the options, rasterise outlines, open the inputs on the optical grid, stream the strips
    into the outputs, write ``stats.json``, check the co-registration, write ``scene.json``, then rename the
    folder into place.

    Args:
        inputs: The inputs.
        out: The scene folder to create.
        block_rows: Rows per strip (memory scales with ``block_rows * width``).
        overwrite: Replace an existing non-empty ``out``.
        coregistration: The co-registration check (default: :class:`CoregistrationCheck`, i.e. warn beyond
            1 px against the DEM hillshade).

    Returns:
        ``out``.

    Raises:
        ConfigError: If ``block_rows`` is not positive or optical bands are missing from ``inputs``.
        InputError: If an input is unreadable, lacks a CRS, misses the grid, is in the wrong units, the
            outlines/labels are unusable, or (mode ``"error"``) the inputs are shifted; ``out`` is then left
            as it was.
    """
    check = coregistration if coregistration is not None else CoregistrationCheck()
    _check_inputs(inputs, block_rows, check)
    grid = reference_grid(inputs.optical)
    label_grid = _label_grid(inputs, grid)
    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        with contextlib.ExitStack() as stack:
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=256 * 1024 * 1024))
            sources = _open_sources(inputs, grid, stack)
            has_labels = label_grid is not None or sources.labels is not None
            outputs = _open_outputs(tmp, grid, sources.thermal is not None, has_labels, stack)
            running = _write_strips(inputs, grid, sources, outputs, label_grid, block_rows)
        _write_stats(tmp, running)
        meta = _scene_metadata(inputs, grid)
        record = _apply_coregistration(tmp, grid, check)
        if record is not None:
            meta["coregistration"] = record
        write_scene_metadata(tmp, meta)
    return Path(out)
