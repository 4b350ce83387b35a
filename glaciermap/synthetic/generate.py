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
from pathlib import Path
from typing import Any, Final

import numpy as np

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
from glaciermap.transforms.normalisation import ModalityStats, RunningStats

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
    for r0 in range(0, height, block):
        for c0 in range(0, width, block):
            yield r0, c0, min(block, height - r0), min(block, width - c0)


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
    import rasterio
    from rasterio.crs import CRS

    from glaciermap.synthetic.render import SceneRenderer
    from glaciermap.synthetic.terrain import build_coarse_world

    region = get_preset(preset)
    height, width = _validate(size, seed, pixel_size, block_size, year)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the scene folder ({err.strerror or err})") from None
    seed = int(seed)
    pixel_size = float(pixel_size)
    sun = sun_position(region.center_lat, region.day_of_year)
    world = build_coarse_world(region, height, width, pixel_size, seed, sun, clouds)
    renderer = SceneRenderer(world, region, pixel_size, seed, height, width, clouds, nodata_stripes)
    crs, transform = _grid(region, height, width, pixel_size)

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
    specs: dict[str, dict[str, Any]] = {
        m: {"count": len(BANDS[m]), "dtype": "float32", "nodata": RASTER_NODATA, "predictor": 3}
        for m in ("optical", "dem", "thermal", "sar", "insar")
    }
    specs["labels"] = {"count": 1, "dtype": "uint8", "nodata": IGNORE_INDEX, "predictor": 2}
    specs["glaciers"] = {"count": 1, "dtype": "uint32", "nodata": 0, "predictor": 2}
    names = {**SCENE_FILES, "glaciers": GLACIER_FILE}
    stats = {m: RunningStats(len(BANDS[m])) for m in ("optical", "dem", "thermal", "sar", "insar")}
    class_pixels = np.zeros(256, dtype=np.int64)
    class_km2 = {CLEAN_ICE: 0.0, DEBRIS_ICE: 0.0}
    row_km2 = RasterGrid(CRS.from_user_input(crs), transform, height, width).row_areas_m2() / 1e6
    glacier_ids: set[int] = set()

    with contextlib.ExitStack() as stack, rasterio.Env(GDAL_CACHEMAX=256):
        tmp = {k: stack.enter_context(atomic_output(out / names[k])) for k in specs}
        dst = {k: stack.enter_context(rasterio.open(tmp[k], "w", **base, **specs[k])) for k in specs}
        for m in stats:
            dst[m].descriptions = BANDS[m]
            units = _UNITS[m]
            dst[m].units = units if isinstance(units, tuple) else (units,) * len(BANDS[m])
        dst["labels"].descriptions = ("labels",)
        dst["labels"].update_tags(classes="0 background, 1 clean ice, 2 debris-covered ice, 255 nodata")
        dst["glaciers"].descriptions = ("glacier_id",)
        for r0, c0, h, w in _blocks(height, width, block_size):
            win = renderer.render(r0, c0, h, w)
            window = rasterio.windows.Window(c0, r0, w, h)
            for m in stats:
                arr = getattr(win, m)
                dst[m].write(arr, window=window)
                stats[m].update(arr.reshape(arr.shape[0], -1) if win.valid.all() else arr[:, win.valid])
            dst["labels"].write(win.labels, 1, window=window)
            dst["glaciers"].write(win.glaciers, 1, window=window)
            class_pixels += np.bincount(win.labels.ravel(), minlength=256)
            for cls in (CLEAN_ICE, DEBRIS_ICE):
                class_km2[cls] += float(np.dot((win.labels == cls).sum(axis=1), row_km2[r0 : r0 + h]))
            glacier_ids.update(int(i) for i in np.unique(win.glaciers) if i)

    meta: dict[str, Any] = {
        "region_code": region.region_code,
        "preset": region.name,
        "year": int(year) if year is not None else region.year,
        "sensor": region.sensor,
        "center_lat": region.center_lat,
        "center_lon": region.center_lon,
        "crs": crs,
        "pixel_size": pixel_size,
        "height": height,
        "width": width,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "sun_azimuth": round(world.sun_azimuth, 4),
        "sun_elevation": round(world.sun_elevation, 4),
        "transform": [float(x) for x in tuple(transform)[:6]],
        "ela": region.ela,
        "clouds": bool(clouds),
        "nodata_stripes": bool(nodata_stripes),
        "n_glaciers": len(glacier_ids),
        "class_area_km2": {
            "clean_ice": round(class_km2[CLEAN_ICE], 6),
            "debris_ice": round(class_km2[DEBRIS_ICE], 6),
        },
        "nodata_fraction": round(float(class_pixels[IGNORE_INDEX]) / (height * width), 6),
        "files": {**SCENE_FILES, "glaciers": GLACIER_FILE, "stats": STATS_FILE},
    }
    _write_json(out / STATS_FILE, {m: _stats_entry(s.result(BANDS[m])) for m, s in stats.items()})
    write_scene_metadata(out, meta)
    return out


def _stats_entry(stats: ModalityStats) -> dict[str, Any]:
    """A modality's ``stats.json`` entry: mean, std, min, max (one value per band) and count."""
    entry = stats.to_dict()
    del entry["bands"]
    return entry


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
