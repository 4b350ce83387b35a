"""Write a scene folder from band files, a DEM and optional thermal band, outlines or labels.

The optical grid defines the scene (GlaViTU reference notes 4.5: "the optical grid defines geometry"): the
finest of the optical bands gives CRS, transform and size (10 m for Sentinel-2, 30 m for Landsat). Every
other input is warped onto it with GDAL (:class:`rasterio.vrt.WarpedVRT`): bilinear for continuous layers
(20 m Sentinel-2 SWIR, DEM, thermal), nearest for label rasters; outlines are rasterised on the grid
(:func:`glaciermap.datasets.outlines.rasterise_outlines`). Slope is computed on the grid from the resampled
elevation with :func:`glaciermap.terrain.slope_aspect` (Horn 1981), with ground spacings from
:func:`glaciermap.terrain.ground_spacing` so that geographic grids get slopes from metres.

Streaming: rows are processed in strips of ``block_rows`` (plus one halo row above and below for the slope),
so memory is a few strips of every band plus one uint8 label grid when outlines are given: about 0.3 GB for a
full 10,980 px Sentinel-2 tile with the default 256-row strips. Per-strip checks stop at the first strip
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from glaciermap.datasets.outlines import rasterise_outlines, read_outlines
from glaciermap.datasets.scene_folder import LABELS, SCENE_STATS, check_label_values, write_scene_metadata
from glaciermap.errors import ConfigError, InputError
from glaciermap.io import open_raster
from glaciermap.prepare.bands import BandFile
from glaciermap.terrain import ground_spacing, slope_aspect
from glaciermap.transforms.normalisation import RunningStats

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


@dataclass(frozen=True)
class Grid:
    """The scene grid.

    Attributes:
        crs: CRS.
        transform: North-up affine transform.
        height: Rows.
        width: Columns.
    """

    crs: CRS
    transform: Affine
    height: int
    width: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)


def reference_grid(optical: Mapping[str, BandFile]) -> Grid:
    """The grid of the finest optical band (ties: the first in canonical order).

    Args:
        optical: Optical bands by name.

    Returns:
        The grid.

    Raises:
        InputError: If a band file is unreadable, has no CRS, too few bands, or is rotated.
    """
    best: tuple[float, Grid] | None = None
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
            grid = Grid(CRS.from_user_input(src.crs), t, src.height, src.width)
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
        self, band: BandFile, grid: Grid, resampling: Resampling, stack: contextlib.ExitStack
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
    path: Path, grid: Grid, count: int, dtype: str, nodata: float, names: Sequence[str] | None
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
    dem: _Source, grid: Grid, row: int, rows: int
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


def prepare_scene(
    inputs: PrepareInputs, out: str | Path, *, block_rows: int = 256, overwrite: bool = False
) -> Path:
    """Write a scene folder (see :mod:`glaciermap.datasets.scene_folder`) from user inputs.

    Args:
        inputs: The inputs.
        out: The scene folder to create.
        block_rows: Rows per strip (memory scales with ``block_rows * width``).
        overwrite: Replace an existing non-empty ``out``.

    Returns:
        ``out``.

    Raises:
        ConfigError: If ``block_rows`` is not positive or optical bands are missing from ``inputs``.
        InputError: If an input is unreadable, lacks a CRS, misses the grid, is in the wrong units, or the
            outlines/labels are unusable; ``out`` is then left as it was.
    """
    if block_rows <= 0:
        raise ConfigError(f"block_rows is {block_rows}; expected a positive number of rows")
    missing = [b for b in BANDS["optical"] if b not in inputs.optical]
    if missing:
        raise ConfigError(f"optical band {missing[0]!r} is missing; expected {', '.join(BANDS['optical'])}")
    out_path = Path(out)
    grid = reference_grid(inputs.optical)
    label_grid: npt.NDArray[np.uint8] | None = None
    if inputs.outlines is not None:
        glaciers = read_outlines(inputs.outlines, grid.crs)
        debris = read_outlines(inputs.debris, grid.crs, what="debris polygons") if inputs.debris else None
        label_grid = rasterise_outlines(
            glaciers,
            transform=grid.transform,
            shape=(grid.height, grid.width),
            debris=debris,
            source=str(inputs.outlines),
        )
    elif inputs.debris is not None:
        raise ConfigError("a debris layer was given without outlines; expected --outlines too")

    with atomic_folder(out_path, overwrite=overwrite) as tmp, contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=256 * 1024 * 1024))
        bilinear = Resampling.bilinear
        optical = [_Source(inputs.optical[b], grid, bilinear, stack) for b in BANDS["optical"]]
        dem = _Source(inputs.dem, grid, bilinear, stack)
        thermal = _Source(inputs.thermal, grid, bilinear, stack) if inputs.thermal is not None else None
        labels_src: Any = None
        if inputs.labels is not None:
            src = stack.enter_context(open_raster(inputs.labels, "labels (0, 1, 2, 255)"))
            labels_src = stack.enter_context(
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
        outputs = {
            "optical": stack.enter_context(
                _open_output(
                    tmp / SCENE_FILES["optical"], grid, 6, "float32", RASTER_NODATA, BANDS["optical"]
                )
            ),
            "dem": stack.enter_context(
                _open_output(tmp / SCENE_FILES["dem"], grid, 2, "float32", RASTER_NODATA, BANDS["dem"])
            ),
        }
        if thermal is not None:
            outputs["thermal"] = stack.enter_context(
                _open_output(
                    tmp / SCENE_FILES["thermal"], grid, 1, "float32", RASTER_NODATA, BANDS["thermal"]
                )
            )
        has_labels = label_grid is not None or labels_src is not None
        if has_labels:
            outputs[LABELS] = stack.enter_context(
                _open_output(tmp / SCENE_FILES[LABELS], grid, 1, "uint8", IGNORE_INDEX, None)
            )
        running = {m: RunningStats(len(BANDS[m])) for m in outputs if m != LABELS}
        for row in range(0, grid.height, block_rows):
            rows = min(block_rows, grid.height - row)
            window = rasterio.windows.Window(0, row, grid.width, rows)
            strips: dict[str, npt.NDArray[np.float32]] = {}
            opt = []
            for source in optical:
                values = source.read(row, rows)
                check_units(values, source.band)
                opt.append(values)
            strips["optical"] = np.stack(opt)
            elevation, slope = _slope_strip(dem, grid, row, rows)
            check_units(elevation, dem.band)
            strips["dem"] = np.stack([elevation, slope])
            if thermal is not None:
                values = thermal.read(row, rows)
                check_units(values, thermal.band)
                strips["thermal"] = values[None]
            invalid = np.zeros((rows, grid.width), dtype=bool)
            for modality, data in strips.items():
                bad = ~np.isfinite(data).all(axis=0)
                invalid |= bad
                running[modality].update(data[:, ~bad].astype(np.float64))
                outputs[modality].write(
                    np.where(np.isfinite(data), data, RASTER_NODATA).astype(np.float32), window=window
                )
            if has_labels:
                if label_grid is not None:
                    lab = label_grid[row : row + rows].copy()
                else:
                    lab = labels_src.read(1, window=window).astype(np.uint8)
                    check_label_values(np.unique(lab).tolist(), inputs.labels or "labels")
                lab[invalid] = IGNORE_INDEX
                outputs[LABELS].write(lab, 1, window=window)
        stats = {m: running[m].result(BANDS[m]).to_dict() for m in running}
        empty = [m for m, entry in stats.items() if entry["count"] == 0]
        if empty:
            raise InputError(
                f"no pixel of the optical grid has valid {empty[0]} data ({', '.join(sorted(empty))} all nodata "
                "after resampling); expected inputs overlapping the optical bands"
            )
        (tmp / SCENE_STATS).write_text(json.dumps(stats, indent=2, allow_nan=False))
        epsg = grid.crs.to_epsg()
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
            "conversion": {
                b.name: {"scale": b.scale, "offset": b.offset}
                for b in [*inputs.optical.values(), inputs.dem, *([inputs.thermal] if inputs.thermal else [])]
            },
            **dict(inputs.metadata),
        }
        if inputs.year is None:
            del meta["year"]
        if not grid.crs.is_geographic:
            meta["pixel_size"] = abs(grid.transform.a)
        write_scene_metadata(tmp, meta)
    return out_path
