"""Evaluating predictions against a reference: scene pairing, pixel and per-glacier scoring.

What can be compared (each of ``pred`` and ``ref``):

* a **scene folder** or **mapping output folder**: the class raster is ``classes.tif`` (mapping output) or
  ``labels.tif`` (scene), 0 background, 1 clean ice, 2 debris-covered ice (or 0/1 glacier), 255 nodata;
  a reference's individual glaciers come from ``glaciers.tif`` (one id per glacier) when present;
* a **directory of such folders**, one sub-folder per scene, paired with the other side by folder name;
* a **vector layer** of glacier outlines (GeoPackage layer ``glaciers`` or the first layer; shapefile;
  GeoJSON), clipped to each scene's extent and rasterised on its grid (as glacier / not) for pixel metrics.

Pixel metrics (:mod:`glaciermap.metrics.pixel`) are computed on the three-class confusion matrix of every
scene, and always also as glacier / not-glacier (classes 1 and 2 merged), the GlaViTU paper's headline IoU.
Individual glaciers: the reference's from ``glaciers.tif`` (all pixels of an id form one glacier, possibly a
MultiPolygon), otherwise, like every raster prediction, the connected regions (4-connectivity) of the glacier
mask (:func:`glaciermap.inventory.polygonise.polygonise`); vector layers give their own outlines. They are
matched with :func:`~glaciermap.metrics.objects.match_glaciers` and every matched pair gets its area
deviation (Eq. 10) and PoLiS (Eq. 11).

When no reference is given the synthetic world's held-out scenes are used (:func:`default_reference`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
from affine import Affine

from glaciermap.baselines.band_ratio import BandRatioFit, band_ratio_classes
from glaciermap.constants import IGNORE_INDEX, SCENE_FILES, SCENE_METADATA
from glaciermap.errors import ConfigError, InputError
from glaciermap.io import open_raster
from glaciermap.metrics.boundary import DEFAULT_SPACING_M, Polis
from glaciermap.metrics.objects import GlacierMatching, match_glaciers
from glaciermap.metrics.pixel import ConfusionMatrix, check_same_grid

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
"""Smallest glacier counted in the per-glacier metrics (km2), the usual RGI minimum."""

HELDOUT_SCENES: tuple[tuple[str, str, int], ...] = (
    ("heldout-karakoram", "karakoram", 90_001),
    ("heldout-svalbard", "svalbard", 90_002),
    ("heldout-alaska", "alaska", 90_003),
)
"""(folder name, preset, seed) of the synthetic held-out scenes, one per preset (seeds not used for training)."""
HELDOUT_SIZE: tuple[int, int] = (512, 512)
"""Size (rows, columns) of each held-out scene (10 m pixels)."""
HELDOUT_VERSION = 1
"""Bump to regenerate cached held-out scenes after a generator change."""


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
    for name in (SCENE_METADATA, "summary.json"):
        path = folder / name
        if path.is_file():
            try:
                meta = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise InputError(f"{path}: not valid JSON ({err})") from None
            region = meta.get("region", meta.get("region_code")) if isinstance(meta, dict) else None
            if isinstance(region, str) and region:
                return region
    return None


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


@dataclass(frozen=True)
class Grid:
    """A raster grid.

    Attributes:
        crs: Its CRS.
        transform: Its affine transform.
        shape: (rows, columns).
    """

    crs: Any
    transform: Affine
    shape: tuple[int, int]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        from rasterio.transform import array_bounds

        west, south, east, north = array_bounds(*self.shape, self.transform)
        return (west, south, east, north)


def _read_classes(path: Path) -> tuple[npt.NDArray[np.uint8], Grid]:
    from glaciermap.inventory.inputs import read_classes

    classes, grid = read_classes(path)
    return classes, Grid(grid.crs, grid.transform, (grid.height, grid.width))


def glacier_outlines(classes: npt.NDArray[np.uint8], grid: Grid) -> gpd.GeoDataFrame:
    """Connected glacier regions (classes 1 and 2, 4-connectivity) as outlines indexed 1..n.

    Args:
        classes: Class map (H, W).
        grid: Its grid.

    Returns:
        One polygon per connected region.
    """
    from glaciermap.inventory.polygonise import polygonise

    mask = ((classes == 1) | (classes == 2)).astype(np.uint8)
    gdf = polygonise(mask, grid.transform, grid.crs)
    gdf.index = pd.RangeIndex(1, len(gdf) + 1)
    return gpd.GeoDataFrame(geometry=gdf.geometry, crs=gdf.crs)


def glacier_id_outlines(path: Path, grid: Grid) -> gpd.GeoDataFrame:
    """Reference glaciers from an id raster: all pixels of an id form one (Multi)Polygon.

    Args:
        path: ``glaciers.tif`` (integer ids, 0 = no glacier).
        grid: The grid it must be on (the scene's class raster's).

    Returns:
        One outline per id, indexed by id.

    Raises:
        InputError: If the file is unreadable, not integer, or not on ``grid``.
    """
    from glaciermap.inventory.polygonise import polygonise

    with open_raster(path, "glacier ids (0 = none)") as src:
        if np.dtype(src.dtypes[0]).kind not in "iu":
            raise InputError(f"{path}: expected integer glacier ids, got dtype {src.dtypes[0]}")
        if (
            (src.height, src.width) != grid.shape
            or src.crs != grid.crs
            or not src.transform.almost_equals(grid.transform)
        ):
            raise InputError(f"{path} is not on the grid of the scene's class raster; expected the same grid")
        ids = src.read(1)
    gdf = polygonise(ids, grid.transform, grid.crs, column=ID_COLUMN)
    if gdf.empty:
        return gpd.GeoDataFrame(geometry=[], crs=grid.crs)
    merged = gdf.dissolve(by=ID_COLUMN)
    return gpd.GeoDataFrame(geometry=merged.geometry, crs=grid.crs)


def clip_outlines(outlines: gpd.GeoDataFrame, grid: Grid) -> gpd.GeoDataFrame:
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


def rasterise_outlines(outlines: gpd.GeoDataFrame, grid: Grid) -> npt.NDArray[np.uint8]:
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


@dataclass(frozen=True)
class SceneResult:
    """The scores of one method on one scene.

    Attributes:
        method: Method name.
        scene: Scene name.
        region: Region code (``"unknown"`` when no metadata says).
        confusion: Three-class confusion matrix (rows reference, columns prediction), or None when both
            sides are outline layers (no grid to compare pixels on).
        matching: The matched glaciers (GlaViTU rule); ``matching.pred.index`` and ``matching.ref.index`` are
            the glacier ids.
        polis: PoLiS of every matched pair, in the order of ``matching.pairs``.
    """

    method: str
    scene: str
    region: str
    confusion: npt.NDArray[np.int64] | None
    matching: GlacierMatching
    polis: list[Polis]


@dataclass(frozen=True)
class Method:
    """A method to evaluate.

    Attributes:
        name: Its name in the report.
        description: Where it comes from (a path, or the band-ratio thresholds).
        source: Its predictions, or None for the band ratio computed from the reference scenes.
        band_ratio: The band-ratio thresholds (only for the band-ratio method).
    """

    name: str
    description: str
    source: Source | None = None
    band_ratio: BandRatioFit | None = None


@dataclass(frozen=True)
class Evaluation:
    """Everything a report needs.

    Attributes:
        reference: Description of the reference.
        methods: The methods evaluated.
        results: One entry per (method, scene) evaluated.
        notes: Remarks for the report (e.g. scenes a method lacks).
    """

    reference: str
    methods: list[Method]
    results: list[SceneResult]
    notes: list[str] = field(default_factory=list)


def parse_method(spec: str) -> tuple[str, Path]:
    """Split ``NAME=PATH`` (or a bare ``PATH``, named after its file or folder) into name and path.

    Args:
        spec: The ``--pred`` argument.

    Returns:
        ``(name, path)``.

    Raises:
        ConfigError: If the name or the path is empty.
    """
    name, sep, rest = spec.partition("=")
    if sep and not Path(spec).exists():
        if not name.strip() or not rest.strip():
            raise ConfigError(f"--pred {spec!r}: expected NAME=PATH or PATH")
        return name.strip(), Path(rest)
    path = Path(spec)
    return (path.stem or str(path)), path


@dataclass(frozen=True)
class _Options:
    spacing: float
    min_area_km2: float


def _score(
    method: str,
    scene: str,
    region: str | None,
    pred: tuple[npt.NDArray[np.uint8] | None, gpd.GeoDataFrame],
    ref: tuple[npt.NDArray[np.uint8] | None, gpd.GeoDataFrame],
    what: str,
    options: _Options,
) -> SceneResult:
    confusion = None
    if pred[0] is not None and ref[0] is not None:
        acc = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
        acc.update(pred[0], ref[0], what=what)
        confusion = acc.counts
    matching = match_glaciers(pred[1], ref[1], min_area_km2=options.min_area_km2)
    return SceneResult(
        method=method,
        scene=scene,
        region=region or "unknown",
        confusion=confusion,
        matching=matching,
        polis=matching.polis(options.spacing),
    )


def _check_same_grid(pred: Path, ref: Path) -> None:
    with open_raster(pred, "predicted classes") as psrc, open_raster(ref, "reference classes") as rsrc:
        check_same_grid(psrc, rsrc, str(pred), str(ref))


def _pair_scenes(pred: dict[str, SceneFolder], ref: dict[str, SceneFolder]) -> dict[str, SceneFolder]:
    """The prediction folder of every reference scene it covers (by name; one-to-one when both are single)."""
    if len(pred) == 1 and len(ref) == 1:
        return {next(iter(ref)): next(iter(pred.values()))}
    common = {name: pred[name] for name in ref if name in pred}
    if not common:
        raise InputError(
            f"no scene in common: the prediction has {sorted(pred)[:5]}, the reference {sorted(ref)[:5]}; "
            "expected sub-folders with the same scene names"
        )
    return common


def evaluate(
    preds: Sequence[tuple[str, str | os.PathLike[str]]],
    ref: str | os.PathLike[str] | None = None,
    band_ratio: BandRatioFit | None = None,
    spacing: float = DEFAULT_SPACING_M,
    min_area_km2: float = DEFAULT_MIN_AREA_KM2,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Evaluation:
    """Evaluate methods against a reference, scene by scene.

    Args:
        preds: ``(name, path)`` of each method's predictions (see the module docstring for what a path holds).
        ref: The reference; default the synthetic held-out scenes (:func:`default_reference`).
        band_ratio: Also evaluate the band ratio with these thresholds, computed from each reference scene's
            ``optical.tif`` (needs reference scene folders).
        spacing: PoLiS boundary sampling interval (m).
        min_area_km2: Glaciers (of either side) smaller than this are left out of the per-glacier metrics.
        cache_dir: Where the default reference is generated (see :func:`default_reference`).

    Returns:
        The per-scene results of every method.

    Raises:
        ConfigError: If there is no method, names repeat, or the band ratio lacks reference scenes.
        InputError: If an input is missing or unreadable, grids differ, or no scene can be paired.
    """
    if not preds and band_ratio is None:
        raise ConfigError("nothing to evaluate: give at least one --pred or --band-ratio")
    if not spacing > 0:
        raise ConfigError(f"PoLiS spacing must be positive, got {spacing} m")
    if not min_area_km2 >= 0:
        raise ConfigError(f"min_area_km2 must be >= 0, got {min_area_km2}")
    options = _Options(spacing=spacing, min_area_km2=min_area_km2)
    names = [name for name, _ in preds] + ([BAND_RATIO] if band_ratio is not None else [])
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"method name(s) {dupes} given twice; name them with --pred NAME=PATH")
    if ref is None:
        ref_path = default_reference(cache_dir)
        ref_desc = f"synthetic held-out scenes ({ref_path})"
    else:
        ref_path = Path(ref)
        ref_desc = str(ref_path)
    ref_src = open_source(ref_path, "ref")
    methods = [Method(name, str(path), source=open_source(path, "pred")) for name, path in preds]
    if band_ratio is not None:
        if not isinstance(ref_src, dict):
            raise ConfigError("--band-ratio needs reference scene folders (with optical.tif), not outlines")
        desc = f"red/swir1 > {band_ratio.ratio_threshold:g} and blue > {band_ratio.blue_threshold:g}"
        methods.append(Method(BAND_RATIO, desc, band_ratio=band_ratio))
    notes: list[str] = []
    if isinstance(ref_src, dict):
        results = _against_scenes(methods, ref_src, options, notes)
    else:
        results = _against_outlines(methods, ref_src, options)
    return Evaluation(reference=ref_desc, methods=methods, results=results, notes=notes)


def _against_scenes(
    methods: list[Method], ref_src: dict[str, SceneFolder], options: _Options, notes: list[str]
) -> list[SceneResult]:
    pairings = {m.name: _pair_scenes(m.source, ref_src) for m in methods if isinstance(m.source, dict)}
    for name, pairing in pairings.items():
        missing = [s for s in ref_src if s not in pairing]
        if missing:
            notes.append(f"{name}: no prediction for reference scene(s) {', '.join(missing)}")
    results: list[SceneResult] = []
    for scene_name, scene in ref_src.items():
        ref_classes, grid = _read_classes(scene.classes)
        if scene.glaciers is not None:
            ref_outlines = glacier_id_outlines(scene.glaciers, grid)
        else:
            ref_outlines = glacier_outlines(ref_classes, grid)
        for method in methods:
            what = f"{method.name} on {scene_name}"
            region = scene.region
            if method.band_ratio is not None:
                fit = method.band_ratio
                _check_same_grid(scene.folder / SCENE_FILES["optical"], scene.classes)
                pred_classes = band_ratio_classes(scene.folder, fit.ratio_threshold, fit.blue_threshold)
                pred_outlines = glacier_outlines(pred_classes, grid)
            elif isinstance(method.source, dict):
                folder = pairings[method.name].get(scene_name)
                if folder is None:
                    continue
                _check_same_grid(folder.classes, scene.classes)
                pred_classes, _ = _read_classes(folder.classes)
                pred_outlines = glacier_outlines(pred_classes, grid)
                region = region or folder.region
                what = f"{folder.classes} vs {scene.classes}"
            else:
                assert isinstance(method.source, OutlineLayer)
                pred_outlines = clip_outlines(read_outlines(method.source), grid)
                pred_classes = rasterise_outlines(pred_outlines, grid)
            results.append(
                _score(
                    method.name,
                    scene_name,
                    region,
                    (pred_classes, pred_outlines),
                    (ref_classes, ref_outlines),
                    what,
                    options,
                )
            )
    return results


def _against_outlines(methods: list[Method], ref_src: OutlineLayer, options: _Options) -> list[SceneResult]:
    ref_all = read_outlines(ref_src)
    results: list[SceneResult] = []
    for method in methods:
        if isinstance(method.source, OutlineLayer):
            pred = read_outlines(method.source)
            results.append(
                _score(method.name, ref_src.name, None, (None, pred), (None, ref_all), method.name, options)
            )
            continue
        assert isinstance(method.source, dict)
        for scene_name, folder in method.source.items():
            pred_classes, grid = _read_classes(folder.classes)
            ref_outlines = clip_outlines(ref_all, grid)
            ref_classes = rasterise_outlines(ref_outlines, grid)  # the prediction's nodata is ignored anyway
            results.append(
                _score(
                    method.name,
                    scene_name,
                    folder.region,
                    (pred_classes, glacier_outlines(pred_classes, grid)),
                    (ref_classes, ref_outlines),
                    f"{folder.classes} vs {ref_src.path}",
                    options,
                )
            )
    return results


def default_cache_dir() -> Path:
    """Where generated data is cached: ``$GLACIERMAP_CACHE`` or ``~/.cache/glaciermap``."""
    env = os.environ.get("GLACIERMAP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "glaciermap"


def default_reference(
    cache_dir: str | os.PathLike[str] | None = None, size: tuple[int, int] | None = None
) -> Path:
    """The synthetic world's held-out scenes, generated once into a cache.

    One scene per preset (karakoram / HMA, svalbard / SVAL, alaska / AWA) with the fixed seeds of
    :data:`HELDOUT_SCENES`, at 10 m, written to
    ``<cache_dir>/heldout-v<HELDOUT_VERSION>-<hash of the generator version>-<rows>x<cols>/`` (a new generator
    version regenerates them).
    A ``heldout.json`` written after the last scene marks the set complete; a later call reuses it.

    Args:
        cache_dir: The cache root; default :func:`default_cache_dir`.
        size: Scene size (rows, columns); default :data:`HELDOUT_SIZE`.

    Returns:
        The directory of scene folders.
    """
    from glaciermap.datasets.synthetic import GENERATOR_VERSION, generate_scene

    size = size or HELDOUT_SIZE
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    generator = hashlib.sha256(GENERATOR_VERSION.encode()).hexdigest()[:8]
    out = root / f"heldout-v{HELDOUT_VERSION}-{generator}-{size[0]}x{size[1]}"
    marker = out / "heldout.json"
    if marker.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name, preset, seed in HELDOUT_SCENES:
        generate_scene(out / name, preset=preset, size=size, seed=seed, pixel_size=10.0)
    record = {
        "version": HELDOUT_VERSION,
        "generator_version": GENERATOR_VERSION,
        "size": list(size),
        "scenes": [list(s) for s in HELDOUT_SCENES],
    }
    marker.write_text(json.dumps(record, indent=2))
    return out
