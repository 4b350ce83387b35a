"""Scene + glacier outlines: rasterise RGI 6/7 or GLIMS polygons onto a scene grid and train or evaluate on it.

This is how the GlaViTU paper's independent-acquisition test data are built ("Data": reference outlines from
GLIMS, RGI and regional inventories over independently acquired scenes): any scene folder becomes a labelled
dataset once outlines are burned onto its grid.

* :func:`read_outlines` reads a shapefile or GeoPackage (any CRS), checks it, and reprojects it to the scene's
  CRS. GLIMS files with a ``line_type`` column are understood: ``glac_bound`` polygons are glacier,
  ``intrnl_rock`` polygons are burned back to non-glacier and ``debris_cov`` polygons are debris.
* :func:`rasterise_outlines` burns them with :func:`rasterio.features.rasterize` (a pixel is inside when its
  centre is): 0 background, 1 glacier (clean ice), 2 debris-covered ice where an optional debris layer covers
  glacier pixels. Interior rings (nunataks) of the polygons stay non-glacier.
* :class:`SceneOutlinesDataset`: a :class:`~glaciermap.datasets.scene.SceneDataset` whose ``labels.tif`` is
  the rasterised outlines, written once to a cache folder (the scene folder is never modified).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS

from glaciermap.constants import BACKGROUND, CLEAN_ICE, DEBRIS_ICE, IGNORE_INDEX, SCENE_FILES
from glaciermap.datasets.scene import ImageFormat, SceneDataset, Target
from glaciermap.datasets.scene_folder import LABELS, SceneInfo, inspect_raster, inspect_scene
from glaciermap.datasets.vectors import read_outlines as read_outline_file
from glaciermap.errors import InputError
from glaciermap.io import atomic_output
from glaciermap.transforms.normalisation import NormStats

GLIMS_GLACIER = "glac_bound"
GLIMS_ROCK = "intrnl_rock"
GLIMS_DEBRIS = "debris_cov"
"""GLIMS ``line_type`` values: glacier boundary, internal rock (nunatak), debris cover."""


def read_outlines(
    path: str | Path, crs: CRS, *, layer: str | None = None, what: str = "outlines"
) -> gpd.GeoDataFrame:
    """Read polygons from a shapefile or GeoPackage and reproject them to ``crs``.

    Reading (and its checks) is :func:`glaciermap.datasets.vectors.read_outlines`; this adds the
    reprojection and ``make_valid``.

    Args:
        path: The vector file (``.shp``, ``.gpkg``, anything pyogrio reads).
        crs: Target CRS (the scene's).
        layer: Layer name (GeoPackages with several layers).
        what: What the file holds, for messages.

    Returns:
        Valid (``make_valid``) polygon geometries in ``crs``, other columns kept.

    Raises:
        InputError: If the file is missing or unreadable, has no CRS, or has no polygon.
    """
    gdf = read_outline_file(path, what, layer=layer)  # the package's one outline reader
    gdf = gdf.to_crs(crs)
    gdf = gdf.set_geometry(shapely.make_valid(gdf.geometry.values))
    return gdf


def _shapes(gdf: gpd.GeoDataFrame, value: int) -> list[tuple[Any, int]]:
    return [(geom, value) for geom in gdf.geometry if geom is not None and not geom.is_empty]


def rasterise_outlines(
    outlines: gpd.GeoDataFrame,
    *,
    transform: Affine,
    shape: tuple[int, int],
    debris: gpd.GeoDataFrame | None = None,
    source: str = "outlines",
) -> npt.NDArray[np.uint8]:
    """Burn glacier outlines (and optional debris polygons) onto a grid.

    Pixels whose centre falls inside a glacier polygon become 1 (clean ice), interior rings and GLIMS
    ``intrnl_rock`` polygons stay 0, and glacier pixels inside a debris polygon (the ``debris`` layer or
    GLIMS ``debris_cov``) become 2. Debris outside every glacier stays background.

    Args:
        outlines: Polygons in the grid's CRS (see :func:`read_outlines`).
        transform: Affine transform of the grid.
        shape: ``(height, width)`` of the grid in pixels.
        debris: Optional debris polygons in the grid's CRS.
        source: Name of the outlines, for messages.

    Returns:
        ``(H, W)`` uint8 labels 0, 1, 2.

    Raises:
        InputError: If no glacier polygon overlaps the grid.
    """
    glaciers = outlines
    rock = debris_glims = None
    if "line_type" in outlines.columns:
        kind = outlines["line_type"].astype(str)
        glaciers = outlines[kind == GLIMS_GLACIER]
        rock = outlines[kind == GLIMS_ROCK]
        debris_glims = outlines[kind == GLIMS_DEBRIS]
    labels = rasterio.features.rasterize(
        _shapes(glaciers, CLEAN_ICE), out_shape=shape, transform=transform, fill=BACKGROUND, dtype="uint8"
    )
    if not labels.any():
        h, w = shape
        left, top = transform.c, transform.f
        bounds = (left, top + transform.e * h, left + transform.a * w, top)
        raise InputError(
            f"{source}: no glacier polygon covers a pixel centre of the grid (bounds {tuple(round(b) for b in bounds)}); "
            "expected outlines overlapping the scene"
        )
    if rock is not None and not rock.empty:
        holes = rasterio.features.rasterize(
            _shapes(rock, 1), out_shape=shape, transform=transform, dtype="uint8"
        )
        labels[holes == 1] = BACKGROUND
    for layer in (debris, debris_glims):
        if layer is not None and not layer.empty:
            cover = rasterio.features.rasterize(
                _shapes(layer, 1), out_shape=shape, transform=transform, dtype="uint8"
            )
            labels[(cover == 1) & (labels == CLEAN_ICE)] = DEBRIS_ICE
    return labels


def _cache_key(*paths: Path | None) -> str:
    digest = hashlib.sha256()
    for p in paths:
        if p is None:
            continue
        digest.update(str(p.resolve()).encode())
        for f in sorted(p.parent.glob(p.stem + ".*")) if p.suffix == ".shp" else [p]:
            if not f.exists():
                continue  # reported by read_outlines
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def write_outline_labels(
    scene: SceneInfo,
    outlines: str | Path,
    out: str | Path,
    *,
    debris: str | Path | None = None,
    layer: str | None = None,
) -> Path:
    """Rasterise outlines onto a scene's grid and write them as a ``labels.tif``-style GeoTIFF (atomic).

    Pixels where the scene's first raster is nodata are written as 255.

    Args:
        scene: The validated scene.
        outlines: Glacier outlines file (RGI 6/7, GLIMS, any CRS).
        out: The GeoTIFF to write.
        debris: Optional debris polygons file (any CRS).
        layer: Layer of ``outlines`` (GeoPackage with several layers).

    Returns:
        ``out``.

    Raises:
        InputError: If a vector file is unusable or the outlines miss the scene.
    """
    glaciers = read_outlines(outlines, scene.crs, layer=layer)
    debris_gdf = read_outlines(debris, scene.crs, what="debris polygons") if debris is not None else None
    labels = rasterise_outlines(
        glaciers,
        transform=scene.transform,
        shape=(scene.height, scene.width),
        debris=debris_gdf,
        source=str(outlines),
    )
    first = next(info for key, info in scene.rasters.items() if key != LABELS)
    with rasterio.open(first.path) as src:
        masks = src.read_masks(1)
    labels[masks == 0] = IGNORE_INDEX
    out_path = Path(out)
    with atomic_output(out_path) as tmp:
        with rasterio.open(
            tmp,
            "w",
            driver="GTiff",
            height=scene.height,
            width=scene.width,
            count=1,
            dtype="uint8",
            crs=scene.crs,
            transform=scene.transform,
            nodata=IGNORE_INDEX,
            compress="deflate",
        ) as dst:
            dst.write(labels, 1)
    return out_path


class SceneOutlinesDataset(SceneDataset):
    """A scene folder labelled by glacier outlines rasterised onto its grid (GlaViTU paper, "Data").

    Items are those of :class:`~glaciermap.datasets.scene.SceneDataset` (the sample contract); the labels come
    from the outlines instead of ``labels.tif`` (which, if present, is not read).

    Args:
        folder: The scene folder.
        outlines: Glacier outlines (shapefile/GeoPackage, RGI 6/7 or GLIMS, any CRS).
        modalities: Modalities to read, in channel order.
        debris: Optional debris-cover polygons; glacier pixels inside them become class 2.
        layer: Layer of ``outlines``.
        cache_dir: Where the rasterised labels are kept (default: a ``glaciermap-outlines`` folder in the
            system temporary directory); reused while the scene and vector files are unchanged.
        bands: Optional band subsets by modality.
        target: ``"binary"`` or ``"classes"`` (use ``"classes"`` with a debris layer).
        region_codes: Known region codes, in index order.
        norm: Statistics, ``"scene"`` or ``None`` (see :class:`~glaciermap.datasets.scene.SceneDataset`).
        image_format: ``"stacked"`` or ``"per_modality"``.

    Raises:
        InputError: If the scene or the outlines are unusable, or the outlines miss the scene.
    """

    def __init__(
        self,
        folder: str | Path,
        outlines: str | Path,
        modalities: Sequence[str] = ("optical", "dem"),
        *,
        debris: str | Path | None = None,
        layer: str | None = None,
        cache_dir: str | Path | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        target: Target = "binary",
        region_codes: Sequence[str] = (),
        norm: NormStats | Literal["scene"] | None = "scene",
        image_format: ImageFormat = "stacked",
    ) -> None:
        scene = inspect_scene(folder, list(modalities), labels="ignore")
        cache = (
            Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "glaciermap-outlines"
        )
        scene_key = _cache_key(*(info.path for info in scene.rasters.values()))
        key = _cache_key(Path(outlines), Path(debris) if debris is not None else None)
        layer_key = hashlib.sha256((layer or "").encode()).hexdigest()[:8]
        labels_path = cache / f"{scene.name}-{scene_key}-{key}-{layer_key}" / SCENE_FILES[LABELS]
        if not labels_path.is_file():
            write_outline_labels(scene, outlines, labels_path, debris=debris, layer=layer)
        info = inspect_raster(labels_path, "1 band uint8 labels", count=1, names=None)
        scene = replace(scene, rasters={**scene.rasters, LABELS: info})
        self.labels_path = labels_path
        super().__init__(
            folder,
            modalities,
            bands=bands,
            target=target,
            labels="required",
            region_codes=region_codes,
            norm=norm,
            image_format=image_format,
            scene=scene,
        )
