"""Evaluation inputs: scene folders, mapping outputs and outline layers, read onto one raster grid.

What can be compared (each of ``pred`` and ``ref``):

* a **scene folder** or **mapping output folder**: the class raster is ``classes.tif`` (mapping output) or
  ``labels.tif`` (scene), 0 background, 1 clean ice, 2 debris-covered ice (or 0/1 glacier), 255 nodata;
  a reference's individual glaciers come from ``glaciers.tif`` (one id per glacier) when present;
* a **directory of such folders**, one sub-folder per scene, paired with the other side by folder name;
* a **vector layer** of glacier outlines (GeoPackage layer ``glaciers`` or the first layer; shapefile;
  GeoJSON), clipped to each scene's extent and rasterised on its grid (as glacier / not) for pixel metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd

from glaciermap.constants import SCENE_FILES, SCENE_METADATA
from glaciermap.datasets.scene_folder import scene_region
from glaciermap.errors import InputError
from glaciermap.io import open_raster
from glaciermap.raster import RasterGrid

CLASS_RASTERS: dict[str, tuple[str, ...]] = {
    "pred": ("classes.tif", SCENE_FILES["labels"]),
    "ref": (SCENE_FILES["labels"], "classes.tif"),
}
"""Class raster file names looked for in a folder, by role, first found wins."""
GLACIER_IDS = "glaciers.tif"
"""Per-pixel reference glacier ids (uint32, 0 = no glacier) in a scene folder."""
VECTOR_SUFFIXES: tuple[str, ...] = (".gpkg", ".shp", ".geojson", ".fgb")
"""File suffixes read as outline layers."""
OUTLINE_LAYER = "glaciers"
"""Preferred layer of a GeoPackage (the inventory's)."""
ID_COLUMN = "glac_id"
"""Column used as the glacier id when a layer has it (RGI 7)."""
BAND_RATIO = "band_ratio"
"""Name of the band-ratio method added with ``--band-ratio``."""
NUM_CLASSES = 3
"""Every confusion matrix is three-class (background, clean ice, debris); binary maps just lack class 2."""
DEFAULT_MIN_AREA_KM2 = 0.01


@dataclass(frozen=True)
class SceneFolder:
    """A folder with a class raster (a scene or a mapping output).

    Attributes:
        name: The scene name (the folder name).
        folder: The folder.
        classes: Its class raster.
        glaciers: Its per-glacier id raster, if any.
        region: Region code from ``scene.json`` (``region`` or ``region_code``) or ``summary.json``, if any.
    """

    name: str
    folder: Path
    classes: Path
    glaciers: Path | None
    region: str | None


@dataclass(frozen=True)
class OutlineLayer:
    """A vector layer of glacier outlines.

    Attributes:
        path: The file.
        layer: The layer read (None: the file's only layer).
    """

    path: Path
    layer: str | None

    @property
    def name(self) -> str:
        """The file name without suffix."""
        return self.path.stem


Source = dict[str, SceneFolder] | OutlineLayer
"""What a ``--pred`` or ``--ref`` path holds: scene folders by name, or one outline layer."""


def _region_of(folder: Path) -> str | None:
    """Region code of a scene folder (``scene.json``) or mapping output folder (``summary.json``)."""
    return scene_region(folder, (SCENE_METADATA, "summary.json"))


def _scene_folder(folder: Path, role: str) -> SceneFolder | None:
    for name in CLASS_RASTERS[role]:
        if (folder / name).is_file():
            glaciers = folder / GLACIER_IDS
            return SceneFolder(
                name=folder.name,
                folder=folder,
                classes=folder / name,
                glaciers=glaciers if glaciers.is_file() else None,
                region=_region_of(folder),
            )
    return None


def open_source(path: str | os.PathLike[str], role: str) -> Source:
    """Find what a path holds: a scene folder, a directory of scene folders, or an outline layer.

    Args:
        path: The folder or vector file.
        role: ``"pred"`` or ``"ref"`` (which class raster is preferred, and for messages).

    Returns:
        Scene folders by name, or the outline layer.

    Raises:
        InputError: If the path does not exist, is an unsupported file, or a folder holds no class raster.
    """
    p = Path(path)
    what = "prediction" if role == "pred" else "reference"
    expected = (
        f"a folder with {' or '.join(CLASS_RASTERS[role])}, a directory of such folders, or a vector file "
        f"({', '.join(VECTOR_SUFFIXES)})"
    )
    if not p.exists():
        raise InputError(f"{what} {p}: not found; expected {expected}")
    if p.is_file():
        if p.suffix.lower() not in VECTOR_SUFFIXES:
            raise InputError(f"{what} {p}: unsupported file type; expected {expected}")
        return OutlineLayer(p, _pick_layer(p))
    single = _scene_folder(p, role)
    if single is not None:
        return {single.name: single}
    scenes = {}
    for sub in sorted(q for q in p.iterdir() if q.is_dir()):
        scene = _scene_folder(sub, role)
        if scene is not None:
            scenes[scene.name] = scene
    if not scenes:
        raise InputError(f"{what} {p}: no class raster found; expected {expected}")
    return scenes


def _pick_layer(path: Path) -> str | None:
    import pyogrio
    from pyogrio.errors import DataSourceError

    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except (DataSourceError, OSError) as err:
        raise InputError(f"{path}: not a readable vector file ({err}); expected glacier outlines") from None
    if not layers:
        raise InputError(f"{path}: has no layer; expected a layer '{OUTLINE_LAYER}' of glacier outlines")
    return OUTLINE_LAYER if OUTLINE_LAYER in layers else layers[0]


def read_outlines(layer: OutlineLayer) -> gpd.GeoDataFrame:
    """Read glacier outlines, indexed by glacier id.

    Args:
        layer: The layer.

    Returns:
        Polygon outlines (empty geometries dropped) indexed by ``glac_id`` when the layer has unique ids,
        otherwise by 1..n in file order.

    Raises:
        InputError: If the file cannot be read or has no CRS.
    """
    from pyogrio.errors import DataSourceError

    try:
        gdf = gpd.read_file(layer.path, layer=layer.layer)
    except (DataSourceError, OSError, ValueError) as err:
        raise InputError(f"{layer.path}: could not read glacier outlines ({err})") from None
    if gdf.crs is None:
        raise InputError(f"{layer.path}: the outlines have no CRS; expected a CRS (e.g. a UTM zone)")
    if ID_COLUMN in gdf.columns and gdf[ID_COLUMN].is_unique:
        gdf = gdf.set_index(ID_COLUMN)
    else:
        gdf.index = pd.RangeIndex(1, len(gdf) + 1)
    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
    return gpd.GeoDataFrame(geometry=gdf.geometry, crs=gdf.crs)


def _read_classes(path: Path) -> tuple[npt.NDArray[np.uint8], RasterGrid]:
    from glaciermap.inventory.inputs import read_classes

    classes, grid = read_classes(path)
    return classes, RasterGrid(grid.crs, grid.transform, grid.height, grid.width)


def glacier_outlines(classes: npt.NDArray[np.uint8], grid: RasterGrid) -> gpd.GeoDataFrame:
    """Connected glacier regions (classes 1 and 2, 4-connectivity) as outlines indexed 1..n.

    Args:
        classes: Class map (H, W).
        grid: Its grid.

    Returns:
        One polygon per connected region.
    """
    from glaciermap.vector import polygonise

    mask = ((classes == 1) | (classes == 2)).astype(np.uint8)
    gdf = polygonise(mask, grid.transform, grid.crs)
    gdf.index = pd.RangeIndex(1, len(gdf) + 1)
    return gpd.GeoDataFrame(geometry=gdf.geometry, crs=gdf.crs)


def glacier_id_outlines(path: Path, grid: RasterGrid) -> gpd.GeoDataFrame:
    """Reference glaciers from an id raster: all pixels of an id form one (Multi)Polygon.

    Args:
        path: ``glaciers.tif`` (integer ids, 0 = no glacier).
        grid: The grid it must be on (the scene's class raster's).

    Returns:
        One outline per id, indexed by id.

    Raises:
        InputError: If the file is unreadable, not integer, or not on ``grid``.
    """
    from glaciermap.vector import polygonise

    with open_raster(path, "glacier ids (0 = none)") as src:
        if np.dtype(src.dtypes[0]).kind not in "iu":
            raise InputError(f"{path}: expected integer glacier ids, got dtype {src.dtypes[0]}")
        if grid.difference(RasterGrid.of(src)) is not None:
            raise InputError(f"{path} is not on the grid of the scene's class raster; expected the same grid")
        ids = src.read(1)
    gdf = polygonise(ids, grid.transform, grid.crs, column=ID_COLUMN)
    if gdf.empty:
        return gpd.GeoDataFrame(geometry=[], crs=grid.crs)
    merged = gdf.dissolve(by=ID_COLUMN)
    return gpd.GeoDataFrame(geometry=merged.geometry, crs=grid.crs)


def clip_outlines(outlines: gpd.GeoDataFrame, grid: RasterGrid) -> gpd.GeoDataFrame:
    """Outlines in the grid's CRS, clipped to its extent (polygons only).

    Args:
        outlines: Glacier outlines with a CRS.
        grid: The scene grid.

    Returns:
        The clipped outlines (index kept; outlines outside the extent dropped).
    """
    from shapely.geometry import box

    projected = outlines.to_crs(grid.crs)
    clipped = gpd.clip(projected, box(*grid.bounds), keep_geom_type=True)
    clipped = clipped[~clipped.geometry.is_empty]
    return gpd.GeoDataFrame(geometry=clipped.geometry.sort_index(), crs=grid.crs)


def rasterise_outlines(outlines: gpd.GeoDataFrame, grid: RasterGrid) -> npt.NDArray[np.uint8]:
    """Burn outlines into a glacier mask on a grid (pixel centres inside an outline are glacier).

    Args:
        outlines: Glacier outlines in the grid's CRS.
        grid: The grid.

    Returns:
        uint8 (H, W): 1 glacier, 0 elsewhere.
    """
    from rasterio.features import rasterize

    if outlines.empty:
        return np.zeros(grid.shape, dtype=np.uint8)
    return rasterize(
        ((g, 1) for g in outlines.geometry), out_shape=grid.shape, transform=grid.transform, dtype="uint8"
    )
