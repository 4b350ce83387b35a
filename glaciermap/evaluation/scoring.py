"""Scoring predictions against a reference: scene pairing, pixel and per-glacier metrics.

Pixel metrics (:mod:`glaciermap.metrics.pixel`) are computed on the three-class confusion matrix of every
scene, and always also as glacier / not-glacier (classes 1 and 2 merged), the GlaViTU paper's headline IoU.
Individual glaciers: the reference's from ``glaciers.tif`` (all pixels of an id form one glacier, possibly a
MultiPolygon), otherwise, like every raster prediction, the connected regions (4-connectivity) of the glacier
mask (:func:`glaciermap.vector.polygonise`); vector layers give their own outlines. They are
matched with :func:`~glaciermap.metrics.objects.match_glaciers` and every matched pair gets its area
deviation (Eq. 10 of the GlaViTU paper) and PoLiS (Eq. 11).

When no reference is given the synthetic world's held-out scenes are used
(:func:`glaciermap.evaluation.heldout.default_reference`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt

from glaciermap.baselines.band_ratio import BandRatioFit, band_ratio_classes
from glaciermap.constants import IGNORE_INDEX, SCENE_FILES
from glaciermap.errors import ConfigError, InputError
from glaciermap.evaluation.heldout import default_reference
from glaciermap.evaluation.sources import (
    BAND_RATIO,
    DEFAULT_MIN_AREA_KM2,
    NUM_CLASSES,
    OutlineLayer,
    SceneFolder,
    Source,
    _read_classes,
    clip_outlines,
    glacier_id_outlines,
    glacier_outlines,
    open_source,
    rasterise_outlines,
    read_outlines,
)
from glaciermap.io import open_raster
from glaciermap.metrics.boundary import DEFAULT_SPACING_M, Polis
from glaciermap.metrics.objects import GlacierMatching, match_glaciers
from glaciermap.metrics.pixel import ConfusionMatrix
from glaciermap.raster import RasterGrid


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
        RasterGrid.of(psrc).check_same(RasterGrid.of(rsrc), str(pred), str(ref))


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
