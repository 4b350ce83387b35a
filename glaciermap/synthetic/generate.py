"""The synthetic glacier world: seeded, physically plausible scene folders for every part of the pipeline.

:func:`generate_scene` writes a *scene folder* (the unit of input of ``glaciermap map``, ``inventory`` and
``evaluate``) window by window, so memory does not grow with the scene size:

==================  ==========================================================================================
``optical.tif``     6 bands blue, green, red, nir, swir1, swir2: top-of-atmosphere reflectance, float32
``dem.tif``         elevation (m), slope (degrees), float32
``thermal.tif``     land-surface temperature (K), float32
``sar.tif``         backscatter sigma0 ascending, descending (linear), float32
``insar.tif``       coherence ascending, descending (0..1), float32
``labels.tif``      uint8: 0 background, 1 clean ice, 2 debris-covered ice, 255 nodata (or thick cloud)
``glaciers.tif``    uint32 id of the individual glacier (split at ice divides), 0 = none
``stats.json``      per-modality, per-band mean / std / min / max / count of valid pixels
``scene.json``      region code, preset, year, sensor, centre lat/lon, CRS, pixel size, size, seed, sun, ...
==================  ==========================================================================================

All rasters share one UTM grid (zone from the preset's latitude/longitude), are tiled 256 x 256, deflate
compressed, carry band descriptions (:data:`glaciermap.constants.BANDS`) and nodata (-9999 for floats).
Generation is deterministic: the same arguments give byte-identical files.

Example:
    >>> from glaciermap.synthetic.generate import generate_scene
    >>> folder = generate_scene("scene", preset="karakoram", size=(512, 512), seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from glaciermap import __version__
from glaciermap.constants import (
    BANDS,
    CLEAN_ICE,
    DEBRIS_ICE,
    IGNORE_INDEX,
    RASTER_NODATA,
    SCENE_FILES,
)
from glaciermap.datasets.scene_folder import write_scene_metadata
from glaciermap.errors import ConfigError
from glaciermap.io import atomic_output
from glaciermap.raster import RasterGrid
from glaciermap.synthetic.presets import (
    DEFAULT_PRESET,
    PRESETS,
    REGION_CODES,
    RegionPreset,
    get_preset,
    sun_position,
    utm_epsg,
)
from glaciermap.transforms.stats import ModalityStats, RunningStats

if TYPE_CHECKING:
    from glaciermap.synthetic.render import WindowData
    from glaciermap.synthetic.terrain import CoarseWorld

__all__ = [
    "DEFAULT_PRESET",
    "GENERATOR_VERSION",
    "GLACIER_FILE",
    "PRESETS",
    "REGION_CODES",
    "STATS_FILE",
    "RegionPreset",
    "generate_scene",
]

GENERATOR_VERSION: Final[str] = f"glaciermap-synthetic/2 (glaciermap {__version__})"
"""Written to ``scene.json``; bump the leading number whenever the same seed would give a different world."""
GLACIER_FILE: Final[str] = "glaciers.tif"
"""Per-pixel glacier ids (ground truth of the inventory's ice-divide splitting)."""
STATS_FILE: Final[str] = "stats.json"
"""Per-modality band statistics of the valid pixels."""
MIN_SIZE: Final[int] = 64
"""Smallest scene side (pixels)."""
MAX_SIZE: Final[int] = 100_000
"""Largest scene side (pixels)."""
TILE: Final[int] = 256
"""GeoTIFF tile size (pixels)."""

_UNITS = {"optical": "reflectance", "dem": ("m", "degrees"), "thermal": "K", "sar": "linear", "insar": "1"}


def _validate(
    size: tuple[int, int], seed: int, pixel_size: float, block_size: int, year: int | None
) -> tuple[int, int]:
    """Check the arguments of :func:`generate_scene`; returns (height, width)."""
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be two integers (height, width), got {size!r}") from None
    if not (MIN_SIZE <= height <= MAX_SIZE and MIN_SIZE <= width <= MAX_SIZE):
        raise ConfigError(
            f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels a side, got {height} x {width}"
        )
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer between 0 and 2**32 - 1, got {seed!r}")
    if not (isinstance(pixel_size, (int, float)) and math.isfinite(pixel_size) and 0.5 <= pixel_size <= 1000):
        raise ConfigError(f"pixel_size must be a number of metres between 0.5 and 1000, got {pixel_size!r}")
    if block_size < 16:
        raise ConfigError(f"block_size must be at least 16 pixels, got {block_size}")
    if year is not None and not (1970 <= int(year) <= 2100):
        raise ConfigError(f"year must be between 1970 and 2100, got {year}")
    return height, width


def _grid(preset: RegionPreset, height: int, width: int, pixel_size: float) -> tuple[str, Any]:
    """UTM CRS and affine transform of a scene centred on the preset's latitude/longitude."""
    from rasterio.transform import from_origin
    from rasterio.warp import transform as warp_transform

    crs = f"EPSG:{utm_epsg(preset.center_lat, preset.center_lon)}"
    xs, ys = warp_transform("EPSG:4326", crs, [preset.center_lon], [preset.center_lat])
    x0 = round((xs[0] - width * pixel_size / 2.0) / pixel_size) * pixel_size
    y0 = round((ys[0] + height * pixel_size / 2.0) / pixel_size) * pixel_size
    return crs, from_origin(x0, y0, pixel_size, pixel_size)


def _blocks(height: int, width: int, block: int) -> Iterator[tuple[int, int, int, int]]:
    """Windows ``(row0, col0, rows, cols)`` of at most ``block`` pixels a side covering the scene."""
    for r0 in range(0, height, block):
        for c0 in range(0, width, block):
            yield r0, c0, min(block, height - r0), min(block, width - c0)


_FLOAT_MODALITIES: Final[tuple[str, ...]] = ("optical", "dem", "thermal", "sar", "insar")
"""The float32 rasters of a scene, one per modality (bands: :data:`glaciermap.constants.BANDS`)."""
_OUTPUTS: Final[dict[str, dict[str, Any]]] = {
    **{
        m: {"count": len(BANDS[m]), "dtype": "float32", "nodata": RASTER_NODATA, "predictor": 3}
        for m in _FLOAT_MODALITIES
    },
    "labels": {"count": 1, "dtype": "uint8", "nodata": IGNORE_INDEX, "predictor": 2},
    "glaciers": {"count": 1, "dtype": "uint32", "nodata": 0, "predictor": 2},
}
"""Band count, data type, nodata and deflate predictor of every raster of a scene folder."""
_FILE_NAMES: Final[dict[str, str]] = {**SCENE_FILES, "glaciers": GLACIER_FILE}
"""File name of every raster of a scene folder."""


def _base_profile(height: int, width: int, crs: str, transform: Any) -> dict[str, Any]:
    """Creation options shared by every raster: deflate, BigTIFF when needed, 256 x 256 tiles if it fits.

    Args:
        height: Scene rows (pixels).
        width: Scene columns (pixels).
        crs: The scene's CRS (``EPSG:...``).
        transform: Its affine transform.

    Returns:
        The keyword arguments of ``rasterio.open`` common to all rasters.
    """
    tiled = height >= TILE and width >= TILE
    base: dict[str, Any] = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "zlevel": 1,  # noisy float bands barely compress further; level 6 doubles the writing time
        "bigtiff": "IF_SAFER",  # BigTIFF when a file might pass 4 GB (20,000 px scenes)
        "tiled": tiled,
    }
    if tiled:
        base.update(blockxsize=TILE, blockysize=TILE)
    return base


class _SceneWriter:
    """The rasters of a scene folder, open for writing window by window.

    Every file is written under a temporary name (:func:`glaciermap.io.atomic_output`) and renamed when
    ``stack`` closes without an error, so a failure leaves no partial scene file.

    Args:
        stack: The exit stack that owns the open files.
        out: The scene folder.
        profile: Creation options shared by every raster (:func:`_base_profile`).
    """

    def __init__(self, stack: contextlib.ExitStack[Any], out: Path, profile: dict[str, Any]) -> None:
        import rasterio

        tmp = {k: stack.enter_context(atomic_output(out / _FILE_NAMES[k])) for k in _OUTPUTS}
        self.dst = {
            k: stack.enter_context(rasterio.open(tmp[k], "w", **profile, **_OUTPUTS[k])) for k in _OUTPUTS
        }
        for m in _FLOAT_MODALITIES:
            self.dst[m].descriptions = BANDS[m]
            units = _UNITS[m]
            self.dst[m].units = units if isinstance(units, tuple) else (units,) * len(BANDS[m])
        self.dst["labels"].descriptions = ("labels",)
        self.dst["labels"].update_tags(classes="0 background, 1 clean ice, 2 debris-covered ice, 255 nodata")
        self.dst["glaciers"].descriptions = ("glacier_id",)

    def write(self, r0: int, c0: int, win: WindowData) -> None:
        """Write the rasters of the window whose top-left pixel is (``r0``, ``c0``)."""
        from rasterio.windows import Window

        h, w = win.labels.shape
        window = Window(c0, r0, w, h)
        for m in _FLOAT_MODALITIES:
            self.dst[m].write(getattr(win, m), window=window)
        self.dst["labels"].write(win.labels, 1, window=window)
        self.dst["glaciers"].write(win.glaciers, 1, window=window)


class _SceneTally:
    """Running totals over the windows: band statistics, class pixels and areas, glacier ids.

    Args:
        row_km2: Area of a pixel of every row (km2).
    """

    def __init__(self, row_km2: npt.NDArray[np.float64]) -> None:
        self.row_km2 = row_km2
        self.stats = {m: RunningStats(len(BANDS[m])) for m in _FLOAT_MODALITIES}
        self.class_pixels = np.zeros(256, dtype=np.int64)
        self.class_km2 = {CLEAN_ICE: 0.0, DEBRIS_ICE: 0.0}
        self.glacier_ids: set[int] = set()

    def update(self, r0: int, win: WindowData) -> None:
        """Add the window whose first row is ``r0`` (statistics of its valid pixels only)."""
        h = win.labels.shape[0]
        for m, stats in self.stats.items():
            arr = getattr(win, m)
            stats.update(arr.reshape(arr.shape[0], -1) if win.valid.all() else arr[:, win.valid])
        self.class_pixels += np.bincount(win.labels.ravel(), minlength=256)
        for cls in (CLEAN_ICE, DEBRIS_ICE):
            self.class_km2[cls] += float(np.dot((win.labels == cls).sum(axis=1), self.row_km2[r0 : r0 + h]))
        self.glacier_ids.update(int(i) for i in np.unique(win.glaciers) if i)

    def stats_json(self) -> dict[str, Any]:
        """The content of ``stats.json``: per modality, per band mean / std / min / max and the count."""
        return {m: _stats_entry(s.result(BANDS[m])) for m, s in self.stats.items()}


@dataclass(frozen=True)
class _SceneSetup:
    """The arguments of :func:`generate_scene` that ``scene.json`` records, checked and normalised."""

    region: RegionPreset
    height: int
    width: int
    seed: int
    pixel_size: float
    year: int | None
    clouds: bool
    nodata_stripes: bool


def _metadata(
    setup: _SceneSetup, crs: str, transform: Any, world: CoarseWorld, tally: _SceneTally
) -> dict[str, Any]:
    """The content of ``scene.json``: where, when and how the scene was made, and what it holds.

    Args:
        setup: The scene's arguments.
        crs: Its CRS.
        transform: Its affine transform.
        world: Its coarse world (the sun's position).
        tally: The totals over all windows.

    Returns:
        The metadata (:func:`glaciermap.datasets.scene_folder.write_scene_metadata`).
    """
    region = setup.region
    return {
        "region_code": region.region_code,
        "preset": region.name,
        "year": int(setup.year) if setup.year is not None else region.year,
        "sensor": region.sensor,
        "center_lat": region.center_lat,
        "center_lon": region.center_lon,
        "crs": crs,
        "pixel_size": setup.pixel_size,
        "height": setup.height,
        "width": setup.width,
        "seed": setup.seed,
        "generator_version": GENERATOR_VERSION,
        "sun_azimuth": round(world.sun_azimuth, 4),
        "sun_elevation": round(world.sun_elevation, 4),
        "transform": [float(x) for x in tuple(transform)[:6]],
        "ela": region.ela,
        "clouds": bool(setup.clouds),
        "nodata_stripes": bool(setup.nodata_stripes),
        "n_glaciers": len(tally.glacier_ids),
        "class_area_km2": {
            "clean_ice": round(tally.class_km2[CLEAN_ICE], 6),
            "debris_ice": round(tally.class_km2[DEBRIS_ICE], 6),
        },
        "nodata_fraction": round(float(tally.class_pixels[IGNORE_INDEX]) / (setup.height * setup.width), 6),
        "files": {**SCENE_FILES, "glaciers": GLACIER_FILE, "stats": STATS_FILE},
    }


def _render_rasters(
    setup: _SceneSetup, out: Path, crs: str, transform: Any, block_size: int
) -> tuple[CoarseWorld, _SceneTally]:
    """Run the coarse stage, then render the scene window by window into its rasters.

    Args:
        setup: The scene's arguments.
        out: The scene folder (exists).
        crs: The scene's CRS.
        transform: Its affine transform.
        block_size: Side of the windows computed at once (pixels).

    Returns:
        (the coarse world, the totals over all windows).
    """
    import rasterio
    from rasterio.crs import CRS

    from glaciermap.synthetic.render import SceneRenderer
    from glaciermap.synthetic.terrain import build_coarse_world

    region, height, width = setup.region, setup.height, setup.width
    sun = sun_position(region.center_lat, region.day_of_year)
    world = build_coarse_world(region, height, width, setup.pixel_size, setup.seed, sun, setup.clouds)
    renderer = SceneRenderer(
        world, region, setup.pixel_size, setup.seed, height, width, setup.clouds, setup.nodata_stripes
    )
    tally = _SceneTally(RasterGrid(CRS.from_user_input(crs), transform, height, width).row_areas_m2() / 1e6)
    with contextlib.ExitStack() as stack, rasterio.Env(GDAL_CACHEMAX=256):
        writer = _SceneWriter(stack, out, _base_profile(height, width, crs, transform))
        for r0, c0, h, w in _blocks(height, width, block_size):
            win = renderer.render(r0, c0, h, w)
            writer.write(r0, c0, win)
            tally.update(r0, win)
    return world, tally


def generate_scene(
    out_dir: str | os.PathLike[str],
    *,
    preset: str = DEFAULT_PRESET,
    size: tuple[int, int] = (512, 512),
    seed: int = 0,
    pixel_size: float = 10.0,
    clouds: bool = False,
    nodata_stripes: bool = False,
    year: int | None = None,
    block_size: int = 1024,
) -> Path:
    """Generate one synthetic scene folder.

    A coarse global stage (terrain, flow routing, glaciers, debris, lakes, sea, shadows; at most 1536 cells
    a side) is followed by a fine stage evaluated window by window and streamed into tiled GeoTIFFs, so
    memory is bounded whatever the scene size. See ``docs/synthetic_world.md`` for the physics.

    Args:
        out_dir: Folder to write (created; existing scene files are replaced atomically).
        preset: Region preset name, one of :data:`PRESETS` (``karakoram``, ``svalbard``, ``alaska``,
            ``alps``).
        size: Scene (height, width) in pixels, each 64..100,000.
        seed: Seed, 0 .. 2**32 - 1; the same arguments give byte-identical files.
        pixel_size: Pixel size (m).
        clouds: Draw thin cloud (raises visible and SWIR reflectance; labels 255 where it is thick).
        nodata_stripes: Draw scan-line-corrector-off nodata stripes (-9999 in every float raster, 255 in
            the labels, 0 in ``glaciers.tif``).
        year: Acquisition year for ``scene.json`` (default: the preset's).
        block_size: Side of the windows computed at once (pixels); affects speed and memory, never the
            values.

    Returns:
        The scene folder.

    Raises:
        ConfigError: If the preset is unknown, an argument is out of range or ``out_dir`` cannot be
            created (e.g. it is an existing file).
    """
    region = get_preset(preset)
    height, width = _validate(size, seed, pixel_size, block_size, year)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the scene folder ({err.strerror or err})") from None
    setup = _SceneSetup(region, height, width, int(seed), float(pixel_size), year, clouds, nodata_stripes)
    crs, transform = _grid(region, height, width, setup.pixel_size)
    world, tally = _render_rasters(setup, out, crs, transform, block_size)
    _write_json(out / STATS_FILE, tally.stats_json())
    write_scene_metadata(out, _metadata(setup, crs, transform, world, tally))
    return out


def _stats_entry(stats: ModalityStats) -> dict[str, Any]:
    """A modality's ``stats.json`` entry: mean, std, min, max (one value per band) and count."""
    entry = stats.to_dict()
    del entry["bands"]
    return entry


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
