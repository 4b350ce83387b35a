"""The synthetic crevasse world: a georeferenced panchromatic scene with regions of the 11 GEOCLASS classes.

:func:`generate_crevasse_world` writes, into one folder:

* ``pan.tif``: single-band uint16 panchromatic digital numbers (``DN = 2000 x reflectance``, nodata 0, like a
  WorldView pan product), 0.5 m pixels, in UTM zone 33N (EPSG:32633, Svalbard) near Negribreen;
* ``classes.tif``: the class id (0 ... 10, :class:`~glaciermap.datasets.crevasse_classes.CrevasseClassV2`) of
  every pixel;
* ``aoi.gpkg``: the area of interest, written in WGS 84 longitude/latitude (EPSG:4326) so that every use
  exercises the reprojection to the scene CRS;
* ``index.gpkg`` / ``index.csv``: the split-image index (:mod:`glaciermap.datasets.split_index`);
* ``labels.csv``: ``tile_id,label`` with the class name of every split-image (the label-table format of
  :mod:`glaciermap.datasets.crevasse_labels`);
* ``scene.json``: size, grid, CRS, seed, sun, tile size and tiles per class.

Layout: the scene is a grid of regions of 2 x 2 split-images; the classes are dealt to the regions in
shuffled rounds, so every class gets nearly the same number of regions (44 or more split-images each with
the defaults). Each region draws its surface texture from its class's parametric model
(:mod:`glaciermap.synthetic.crevasse_textures`) and its brightness (albedo x illumination, 0.35 to 0.75
reflectance) independently of the class (11 evenly spaced brightness levels are dealt as a Latin square over
the rounds, so over any 11 rounds every class gets every level once), plus sensor noise. Mean brightness therefore carries no class
information; structure (orientation, spacing, width, shadows) does.

Deterministic by seed; the default scene (5,226 x 5,360 px, 520 split-images) takes about 6 s of CPU time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import shapely
from rasterio.transform import from_origin

from glaciermap.datasets.crevasse_classes import CrevasseClassV2
from glaciermap.datasets.scene_folder import write_scene_metadata
from glaciermap.datasets.split_index import DEFAULT_TILE_SIZE, build_split_index, write_split_index
from glaciermap.errors import ConfigError
from glaciermap.io import atomic_output
from glaciermap.synthetic.crevasse_textures import Sun, texture

CRS_EPSG = 32633
"""UTM zone 33N (Svalbard)."""

ORIGIN = (530_000.0, 8_735_000.0)
"""Upper-left corner of the scene (easting, northing, m), near Negribreen."""

DN_PER_REFLECTANCE = 2000.0
"""Digital numbers per unit reflectance in ``pan.tif``."""

REGION_TILES = 2
"""Regions are ``REGION_TILES x REGION_TILES`` split-images."""


def generate_crevasse_world(
    out: str | os.PathLike[str],
    seed: int = 0,
    tiles: tuple[int, int] = (26, 20),
    tile_size: tuple[int, int] = DEFAULT_TILE_SIZE,
    pixel_size: float = 0.5,
) -> Path:
    """Write the synthetic crevasse world (module docstring) into ``out``.

    Args:
        out: Output folder (created; existing files of the same names are replaced atomically).
        seed: Random seed; the same seed gives identical files.
        tiles: Scene size in split-images (rows, columns); both even.
        tile_size: Split-image size in pixels (rows, columns).
        pixel_size: Pixel size (m).

    Returns:
        The folder.

    Raises:
        ConfigError: For odd or too few tiles (fewer regions than classes), or a non-positive pixel size.
    """
    regions = _check_world(tiles, pixel_size)
    rng = np.random.default_rng(seed)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    th, tw = tile_size
    height, width = tiles[0] * th, tiles[1] * tw
    sun = Sun(elevation=float(rng.uniform(12.0, 25.0)), azimuth=float(rng.uniform(0.0, 360.0)))
    region_class, region_brightness = _deal_regions(rng, regions)
    pan, classes = _render(
        region_class, region_brightness, (th * REGION_TILES, tw * REGION_TILES), pixel_size, sun, seed
    )
    transform = from_origin(ORIGIN[0], ORIGIN[1], pixel_size, pixel_size)
    _write_rasters(folder, pan, classes, transform)
    _write_aoi(folder, height, width, pixel_size)
    index = build_split_index(folder / "pan.tif", aoi=folder / "aoi.gpkg", tile_size=tile_size)
    write_split_index(index, folder)
    rh, rw = th * REGION_TILES, tw * REGION_TILES
    labels = [
        CrevasseClassV2(int(region_class[r // rh, c // rw])).name.lower()
        for r, c in zip(index["row"], index["col"])
    ]
    with atomic_output(folder / "labels.csv") as tmp:
        pd.DataFrame({"tile_id": index["tile_id"], "label": labels}).to_csv(tmp, index=False)
    counts = pd.Series(labels).value_counts()
    meta = {
        "generator": "glaciermap.synthetic.crevasses",
        "seed": seed,
        "height": height,
        "width": width,
        "pixel_size": pixel_size,
        "crs": f"EPSG:{CRS_EPSG}",
        "transform": list(transform)[:6],
        "tile_size": list(tile_size),
        "sun_elevation_deg": sun.elevation,
        "sun_azimuth_deg": sun.azimuth,
        "dn_per_reflectance": DN_PER_REFLECTANCE,
        "n_tiles": len(index),
        "tiles_per_class": {c.name.lower(): int(counts.get(c.name.lower(), 0)) for c in CrevasseClassV2},
        "region_classes": region_class.tolist(),
    }
    write_scene_metadata(folder, meta, require_region=False)
    return folder


def _check_world(tiles: tuple[int, int], pixel_size: float) -> tuple[int, int]:
    """Stage 1: validate the scene size and pixel size; returns the regions (rows, columns)."""
    if tiles[0] % REGION_TILES or tiles[1] % REGION_TILES or tiles[0] <= 0 or tiles[1] <= 0:
        raise ConfigError(f"tiles {tiles}: expected positive even numbers of split-images (rows, columns)")
    regions = (tiles[0] // REGION_TILES, tiles[1] // REGION_TILES)
    n_classes = len(CrevasseClassV2)
    if regions[0] * regions[1] < n_classes:
        raise ConfigError(
            f"tiles {tiles}: too small for {n_classes} classes (expected at least 22 x 2 tiles)"
        )
    if not pixel_size > 0:
        raise ConfigError(f"pixel size {pixel_size}: expected a positive size in metres")
    return regions


def _deal_regions(
    rng: np.random.Generator, regions: tuple[int, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Stage 2: class and mean brightness of every region (module docstring: shuffled rounds, Latin square)."""
    n_classes = len(CrevasseClassV2)
    n_regions = regions[0] * regions[1]
    rounds = -(-n_regions // n_classes)
    dealt = np.stack([rng.permutation(n_classes) for _ in range(rounds)])  # (rounds, classes): class per slot
    region_class = dealt.ravel()[:n_regions].reshape(regions)
    # brightness levels form a Latin square over the rounds: in every round each class gets one of 11
    # evenly spaced levels, and over any 11 rounds every class gets every level once
    base, shifts = rng.permutation(n_classes), rng.permutation(n_classes)
    class_level = base[
        (np.arange(n_classes)[None, :] + shifts[np.arange(rounds) % n_classes, None]) % n_classes
    ]
    levels = np.take_along_axis(class_level, dealt, axis=1).ravel()[:n_regions]
    region_brightness = (0.35 + 0.4 * (levels + rng.uniform(0, 1, n_regions)) / n_classes).reshape(regions)
    return region_class, region_brightness


def _render(
    region_class: npt.NDArray[np.int64],
    region_brightness: npt.NDArray[np.float64],
    region_px: tuple[int, int],
    pixel_size: float,
    sun: Sun,
    seed: int,
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]:
    """Stage 3: the panchromatic DN (uint16, 1 ... 2047) and class rasters, region by region."""
    rh, rw = region_px
    regions = region_class.shape
    pan = np.zeros((regions[0] * rh, regions[1] * rw), dtype=np.uint16)
    classes = np.zeros(pan.shape, dtype=np.uint8)
    for i in range(regions[0]):
        for j in range(regions[1]):
            cls = CrevasseClassV2(int(region_class[i, j]))
            sub = np.random.default_rng([seed, i, j])
            reflectance = region_brightness[i, j] + texture(cls, (rh, rw), pixel_size, sun, sub)
            reflectance += sub.normal(0.0, 0.01, size=(rh, rw))
            dn = np.clip(np.rint(reflectance * DN_PER_REFLECTANCE), 1, 2047).astype(np.uint16)
            pan[i * rh : (i + 1) * rh, j * rw : (j + 1) * rw] = dn
            classes[i * rh : (i + 1) * rh, j * rw : (j + 1) * rw] = int(cls)
    return pan, classes


def _write_rasters(
    folder: Path, pan: npt.NDArray[np.uint16], classes: npt.NDArray[np.uint8], transform: Any
) -> None:
    """Stage 4: ``pan.tif`` (nodata 0) and ``classes.tif`` (nodata 255), tiled and compressed."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": pan.shape[0],
        "width": pan.shape[1],
        "count": 1,
        "crs": f"EPSG:{CRS_EPSG}",
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with atomic_output(folder / "pan.tif") as tmp:
        with rasterio.open(tmp, "w", dtype="uint16", nodata=0, **profile) as dst:
            dst.write(pan, 1)
            dst.set_band_description(1, "pan")
    with atomic_output(folder / "classes.tif") as tmp:
        with rasterio.open(tmp, "w", dtype="uint8", nodata=255, **profile) as dst:
            dst.write(classes, 1)


def _write_aoi(folder: Path, height: int, width: int, pixel_size: float) -> None:
    """Stage 5: ``aoi.gpkg``, the scene footprint buffered by 2 m, in EPSG:4326."""
    footprint = shapely.box(
        ORIGIN[0], ORIGIN[1] - height * pixel_size, ORIGIN[0] + width * pixel_size, ORIGIN[1]
    )
    aoi = gpd.GeoDataFrame(
        {"name": ["synthetic crevasse world"]}, geometry=[footprint.buffer(2.0)], crs=CRS_EPSG
    )
    aoi["geometry"] = aoi.geometry.segmentize(50.0)
    with atomic_output(folder / "aoi.gpkg") as tmp:
        aoi.to_crs("EPSG:4326").to_file(tmp, driver="GPKG", layer="aoi")
