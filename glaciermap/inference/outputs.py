"""The files of a mapped scene, written from a stream of blended strips.

:func:`write_outputs` consumes a :class:`~glaciermap.inference.predictor.SceneStream` and writes, into the
output folder::

    classes.tif                 uint8, 1 band: argmax class (0 background, 1 glacier; or 0 background,
                                1 clean ice, 2 debris-covered ice), 255 nodata
    confidence.tif              float32, 1 band: GlaViTU paper Eq. 3, 1 + sum_i p_i log_C p_i, in [0, 1]
    calibrated_confidence.tif   float32, 1 band: the checkpoint's calibrator applied to confidence (only
                                when the checkpoint carries one)
    probabilities.tif           float32, K bands: blended class probabilities (only when asked for)
    mc_std.tif                  float32, K bands: Monte-Carlo dropout spread per class (only with MC)
    uncertain.tif               uint8, 1 band: 1 where the calibrated (else raw) confidence is below the
                                ``uncertain_below`` option (the GlaViTU paper's 95 % bands), 0 elsewhere,
                                255 nodata (only when the option is set)
    uncertain.gpkg              layer ``uncertain``: one polygon per 4-connected region of ``uncertain.tif``
                                (scene CRS, holes kept) with ``region_id``, ``pixels``, ``area_km2`` (ground
                                area, :class:`~glaciermap.raster.RasterGrid` pixel areas) and
                                ``mean_confidence`` (mean of the confidence that was thresholded); polygonised
                                strip-wise from the finished ``uncertain.tif`` (only with ``uncertain_below``)
    quicklook.png               false colour (SWIR1/NIR/red) with class outlines, and the confidence
    summary.json                area by class (km2), mean raw and calibrated confidence, their 10-bin
                                histograms, uncertain fraction, IoU estimated without reference data (with
                                a calibrator), time, throughput, windows, device, model

Every raster is a Cloud-Optimised GeoTIFF on the scene's grid (CRS, transform, width, height), DEFLATE
compressed with internal overviews. Float rasters declare the scene's nodata value (``-9999`` unless the
input declares NaN or another value outside ``[0, 1]``); a pixel that is nodata or NaN in any input
modality is nodata in every output.

Each file is first written under a temporary name beside its final one (:func:`glaciermap.io.atomic_output`)
and all are renamed together at the very end (``summary.json`` last), so an interrupted run never leaves a
file that looks complete, and leaves no temporary file either.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.errors
from rasterio.enums import Resampling

from glaciermap import __version__
from glaciermap.calibration.iou_estimate import ExpectedIoU
from glaciermap.constants import BANDS, IGNORE_INDEX, RASTER_NODATA, SCENE_FILES
from glaciermap.datasets.scene_folder import SceneInfo
from glaciermap.errors import InputError
from glaciermap.inference.confidence import entropy_confidence
from glaciermap.inference.predictor import QUICKLOOK_SIDE, SceneStream, Strip
from glaciermap.inference.source import Consumer
from glaciermap.inference.writers import StreamingRaster
from glaciermap.io import atomic_output, check_output_dir, json_text, output_lock, write_vector
from glaciermap.models.pretrained import PretrainedModel
from glaciermap.raster import RasterGrid
from glaciermap.vector import polygonise_regions

GDAL_CACHE_BASE_MB = 64
"""Fixed part of the GDAL block cache while a scene is mapped (MB); see :func:`gdal_cache_bytes`."""

CLASS_COLOURS: dict[str, tuple[int, int, int, int]] = {
    "background": (0, 0, 0, 255),
    "glacier": (0, 200, 255, 255),
    "clean_ice": (0, 200, 255, 255),
    "debris_ice": (255, 140, 0, 255),
}
"""Colour table of ``classes.tif`` by class name (nodata 255 is transparent)."""

ProgressCallback = Callable[[float], None]
"""Called with the area (km2) of every strip written."""


@dataclass
class MapResult:
    """What :func:`write_outputs` produced.

    Attributes:
        out_dir: The output folder.
        files: Output name (``"classes"``, ``"confidence"``, ...) -> final path.
        summary: The content of ``summary.json``.
    """

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def float_nodata(scene: SceneInfo) -> float:
    """Nodata value of the float outputs: the input's, unless it could be a valid value in ``[0, 1]``.

    Args:
        scene: The scene (its first raster's declared nodata is used).

    Returns:
        NaN or a value outside ``[0, 1]`` (``-9999`` by default).
    """
    nodata = next(iter(scene.rasters.values())).nodata
    if nodata is not None and (math.isnan(nodata) or not 0.0 <= nodata <= 1.0):
        return float(nodata)
    return RASTER_NODATA


def gdal_cache_bytes(scene: SceneInfo, block_rows: int = 512) -> int:
    """GDAL block cache size for mapping a scene: enough for two rows of input tiles, and no more.

    GDAL's default (5 % of RAM) lets the cache grow to gigabytes on large scenes. The mapper reads rows top to
    bottom in chunks shorter than a tile, so a tile row is used by several consecutive chunks: the cache must
    hold two full-width rows of tiles of every input raster (assumed at most ``block_rows`` tall), plus
    :data:`GDAL_CACHE_BASE_MB`. Bounded by the width, independent of the height.

    Args:
        scene: The scene.
        block_rows: Assumed tile height of the inputs (rows).

    Returns:
        The cache size in bytes.
    """
    row_bytes = sum(
        info.count * np.dtype(info.dtype).itemsize * info.width * block_rows
        for info in scene.rasters.values()
    )
    return int(GDAL_CACHE_BASE_MB * 2**20 + 2 * row_bytes)


def row_areas_km2(scene: SceneInfo) -> npt.NDArray[np.float64]:
    """Ground area (km2) of one pixel of every row of the scene.

    Args:
        scene: The scene.

    Returns:
        ``(H,)`` pixel areas in km2 (:meth:`glaciermap.raster.RasterGrid.row_geometry`).
    """
    grid = RasterGrid(scene.crs, scene.transform, scene.height, scene.width)
    return np.asarray(grid.row_areas_m2() / 1e6, dtype=np.float64)


class _Tally:
    """Running totals over strips: area per class, valid area, confidence sums and histograms, IoU estimate."""

    def __init__(self, num_classes: int, calibrated: bool) -> None:
        self.class_km2 = np.zeros(num_classes, dtype=np.float64)
        self.nodata_km2 = 0.0
        self.pixels = 0
        self.valid_pixels = 0
        self.confidence_sum = 0.0
        self.calibrated_sum = 0.0
        self.uncertain = 0
        self.histogram = np.zeros(SUMMARY_BINS, dtype=np.int64)
        self.calibrated_histogram = np.zeros(SUMMARY_BINS, dtype=np.int64)
        self.expected_iou = ExpectedIoU(num_classes) if calibrated else None
        self.glacier = _GlacierExpected() if calibrated and num_classes == 3 else None

    def add(
        self,
        classes: npt.NDArray[np.uint8],
        areas: npt.NDArray[np.float64],
        confidence: npt.NDArray[np.float32],
        calibrated: npt.NDArray[np.float32] | None,
        valid: npt.NDArray[np.bool_],
    ) -> None:
        for c in range(self.class_km2.size):
            self.class_km2[c] += float((classes == c).sum(axis=1) @ areas)
        self.nodata_km2 += float((~valid).sum(axis=1) @ areas)
        self.pixels += classes.size
        self.valid_pixels += int(valid.sum())
        self.confidence_sum += float(confidence[valid].sum(dtype=np.float64))
        self.histogram += _bin_counts(confidence[valid])
        if calibrated is not None:
            self.calibrated_sum += float(calibrated[valid].sum(dtype=np.float64))
            self.calibrated_histogram += _bin_counts(calibrated[valid])

    def mean(self, total: float) -> float | None:
        return total / self.valid_pixels if self.valid_pixels else None


class _GlacierExpected:
    """Expected-confusion sums of glacier = clean + debris-covered ice for three-class models.

    As :mod:`glaciermap.calibration.iou_estimate` for a merged class: a pixel predicted as clean (debris) ice
    is glacier with probability ``r + (1 - r) q_debris`` (``q_clean``), ``q_k = p_k / (1 - p_pred)``; a pixel
    predicted as background is glacier with probability ``1 - r``.
    """

    def __init__(self) -> None:
        self.tp = 0.0
        self.predicted = 0.0
        self.fn = 0.0

    def update(
        self,
        probs: npt.NDArray[np.float32],
        calibrated: npt.NDArray[np.float32],
        valid: npt.NDArray[np.bool_],
    ) -> None:
        p = probs[:, valid].astype(np.float64)
        r = calibrated[valid].astype(np.float64)
        pred = p.argmax(axis=0)
        rest = np.clip(1.0 - p.max(axis=0), 1e-12, None)
        other = np.where(pred == 1, p[2], p[1]) / rest
        g = pred > 0
        self.tp += float((r[g] + (1.0 - r[g]) * other[g]).sum())
        self.predicted += float(g.sum())
        self.fn += float((1.0 - r[~g]).sum())

    def iou(self) -> float:
        denom = self.predicted + self.fn
        return self.tp / denom if denom > 0 else float("nan")


SUMMARY_BINS = 10
"""Bins of the confidence histograms in ``summary.json`` (equal width on ``[0, 1]``)."""


def _bin_counts(values: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    idx = np.clip((values.astype(np.float64) * SUMMARY_BINS).astype(np.int64), 0, SUMMARY_BINS - 1)
    return np.bincount(idx, minlength=SUMMARY_BINS).astype(np.int64)


def _colormap(class_names: tuple[str, ...]) -> dict[int, tuple[int, int, int, int]]:
    cmap = {i: CLASS_COLOURS.get(name, (128, 128, 128, 255)) for i, name in enumerate(class_names)}
    cmap[IGNORE_INDEX] = (0, 0, 0, 0)
    return cmap


def _outline_masks(classes: npt.NDArray[np.uint8], class_names: tuple[str, ...]) -> dict[str, Any]:
    return {name.replace("_", " "): classes == i for i, name in enumerate(class_names) if i > 0}


def _has_optical(scene: SceneInfo) -> bool:
    """Whether the scene has a readable six-band ``optical.tif`` for the quick-look's false colour."""
    path = scene.folder / SCENE_FILES["optical"]
    if not path.is_file():
        return False
    try:
        with rasterio.open(path) as src:
            return bool(src.count == len(BANDS["optical"]))
    except rasterio.errors.RasterioIOError:
        return False


def _quicklook(
    path: Path,
    scene: SceneInfo,
    thumbnail: npt.NDArray[np.float32] | None,
    classes_tif: Path,
    confidence_tif: Path,
    class_names: tuple[str, ...],
    title: str,
) -> None:
    """Write the quick-look PNG.

    The false colour comes from the thumbnail kept while the scene was read, or else from a decimated read of
    ``optical.tif``; classes and confidence are read from the new COGs' overviews.
    """
    from glaciermap.visualisation import save_quicklook

    if thumbnail is not None:
        optical = thumbnail
        shape = (int(optical.shape[1]), int(optical.shape[2]))
    else:
        scale = max(1.0, max(scene.height, scene.width) / QUICKLOOK_SIDE)
        shape = (max(1, round(scene.height / scale)), max(1, round(scene.width / scale)))
        with rasterio.open(scene.folder / SCENE_FILES["optical"]) as src:
            optical = src.read(out_shape=(6, *shape), resampling=Resampling.nearest, out_dtype=np.float32)
            if src.nodata is not None and not math.isnan(src.nodata):
                optical[optical == src.nodata] = np.nan
    with rasterio.open(classes_tif) as src:
        classes = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    with rasterio.open(confidence_tif) as src:
        confidence = src.read(1, out_shape=shape, resampling=Resampling.nearest, masked=True)
    save_quicklook(
        path,
        optical,
        _outline_masks(classes, class_names),
        confidence=np.ma.filled(confidence.astype(np.float32), np.nan),
        title=title,
    )


def write_outputs(
    stream: SceneStream,
    mapping: PretrainedModel,
    out_dir: str | os.PathLike[str],
    *,
    write_probabilities: bool = False,
    quicklook: bool = True,
    progress: ProgressCallback | None = None,
    extra_summary: dict[str, Any] | None = None,
    start_time: float | None = None,
) -> MapResult:
    """Consume a scene's strips and write all its outputs (see the module docstring).

    Args:
        stream: The scene's blended strips (from :meth:`~glaciermap.inference.predictor.ScenePredictor.stream`).
        mapping: The model the stream was predicted with (classes, calibrator, description).
        out_dir: The output folder (created).
        write_probabilities: Also write ``probabilities.tif``.
        quicklook: Also write ``quicklook.png`` (needs the scene's ``optical.tif``).
        progress: Called with the area (km2) of every strip written.
        extra_summary: More items for ``summary.json`` (options used).
        start_time: ``time.perf_counter()`` when mapping started (default: now), for the throughput.

    Returns:
        The written files and the summary.

    Raises:
        InputError: From reading the scene.
        Exception: Whatever the model raises; no output file is left behind in that case.
    """
    writer = SceneWriter(
        stream,
        mapping,
        Path(out_dir),
        write_probabilities=write_probabilities,
        quicklook=quicklook and _has_optical(stream.scene),
        start_time=time.perf_counter() if start_time is None else start_time,
    )
    return writer.write(progress, extra_summary or {})


class SceneWriter:
    """Writes one scene's outputs: every file to a temporary name, renamed only when all are complete.

    ``summary.json`` is entered first and renamed last, so it marks a complete output folder; on any error
    every temporary file is removed (and the output folder too, if this writer created it).

    Args:
        stream: The scene's blended strips.
        mapping: The model the stream was predicted with.
        out: The output folder.
        write_probabilities: Also write ``probabilities.tif``.
        quicklook: Also write ``quicklook.png``.
        start_time: ``time.perf_counter()`` when mapping started.
    """

    def __init__(
        self,
        stream: SceneStream,
        mapping: PretrainedModel,
        out: Path,
        *,
        write_probabilities: bool,
        quicklook: bool,
        start_time: float,
    ) -> None:
        self.stream, self.mapping, self.out = stream, mapping, out
        self.scene = stream.scene
        self.quicklook = quicklook
        self.start_time = start_time
        self.nodata = float_nodata(self.scene)
        self.areas = row_areas_km2(self.scene)
        self.tally = _Tally(len(mapping.class_names), mapping.calibrator is not None)
        self.specs = output_specs(
            mapping.class_names,
            self.nodata,
            calibrated=mapping.calibrator is not None,
            probabilities=write_probabilities,
            mc=stream.mc_passes > 1,
            uncertain=stream.uncertain_below is not None,
        )
        self.files = {name: out / f"{name}.tif" for name in self.specs}
        self.vectors = vector_outputs(out, uncertain=stream.uncertain_below is not None)
        self.vector_summary: dict[str, Any] = {}

    def write(self, progress: ProgressCallback | None, extra_summary: dict[str, Any]) -> MapResult:
        """Stream every strip into the outputs, then finish them; returns the files and the summary."""
        check_output_dir(self.out, "output folder")
        created = not self.out.exists()
        try:
            with output_lock(self.out, "output folder"), contextlib.ExitStack() as stack:
                stack.enter_context(rasterio.Env(GDAL_CACHEMAX=gdal_cache_bytes(self.scene)))  # bytes
                summary_tmp = stack.enter_context(atomic_output(self.out / "summary.json"))
                quicklook_tmp = (
                    stack.enter_context(atomic_output(self.out / "quicklook.png")) if self.quicklook else None
                )
                cog_tmp = {
                    name: stack.enter_context(atomic_output(path)) for name, path in self.files.items()
                }
                vector_tmp = {
                    name: stack.enter_context(atomic_output(path)) for name, path in self.vectors.items()
                }
                for name, text in self.stream.attachments.items():
                    stack.enter_context(atomic_output(self.out / name)).write_text(text)
                sinks = self._open_sinks(stack)
                stack.callback(self.stream.close)
                self._consume(stack, sinks, progress)
                for name, sink in sinks.items():
                    sink.to_cog(cog_tmp[name], resampling=self.specs[name].resampling)
                if "uncertain_polygons" in vector_tmp:
                    self.vector_summary = write_uncertain_polygons(
                        cog_tmp["uncertain"],
                        cog_tmp.get("calibrated_confidence", cog_tmp["confidence"]),
                        vector_tmp["uncertain_polygons"],
                    )
                if quicklook_tmp is not None:
                    self._write_quicklook(quicklook_tmp, cog_tmp)
                summary = self._summary(extra_summary)
                summary_tmp.write_text(json_text(summary))
        except BaseException:
            if created:  # leave no empty output folder behind
                with contextlib.suppress(OSError):
                    self.out.rmdir()
            raise
        files = dict(self.files) | self.vectors
        if self.quicklook:
            files["quicklook"] = self.out / "quicklook.png"
        files.update({Path(name).stem: self.out / name for name in self.stream.attachments})
        files["summary"] = self.out / "summary.json"
        _remove_stale(self.out, {p.name for p in files.values()})
        return MapResult(out_dir=self.out, files=files, summary=summary)

    def _open_sinks(self, stack: contextlib.ExitStack) -> dict[str, StreamingRaster]:
        """One streaming GeoTIFF per output raster, removed when the stack closes."""
        token = uuid.uuid4().hex[:8]
        sinks: dict[str, StreamingRaster] = {}
        for name, spec in self.specs.items():
            stream_path = self.out / f".{name}.stream-{token}.tif"
            stack.callback(_remove, stream_path)
            sinks[name] = stack.enter_context(
                StreamingRaster(
                    stream_path,
                    crs=self.scene.crs,
                    transform=self.scene.transform,
                    height=self.scene.height,
                    width=self.scene.width,
                    count=spec.count,
                    dtype=spec.dtype,
                    nodata=spec.nodata,
                    descriptions=spec.descriptions,
                    tags=spec.tags,
                    colormap=spec.colormap,
                )
            )
        return sinks

    def _consume(
        self,
        stack: contextlib.ExitStack,
        sinks: dict[str, StreamingRaster],
        progress: ProgressCallback | None,
    ) -> None:
        """Write every strip in a background thread while the next ones are predicted in this one.

        The network runs in the calling thread (on glibc, the main thread's heap is the one
        :func:`~glaciermap.inference.heap.retained_heap` keeps: see :class:`Consumer`); ``progress`` is called
        here too, as strips finish writing.

        Raises:
            InputError: If the scene turned out to have no valid pixel.
        """
        scene, areas = self.scene, self.areas

        def write(strip: Strip) -> float:
            _write_strip(
                strip,
                sinks,
                self.tally,
                areas,
                self.mapping.calibrator,
                self.nodata,
                self.stream.uncertain_below,
            )
            return float(areas[strip.row : strip.row + strip.invalid.shape[0]].sum() * scene.width)

        writer = stack.enter_context(Consumer(write, depth=2, name="glaciermap-writer"))
        for strip in self.stream:
            _report(progress, writer.put(strip))
        _report(progress, writer.finish())
        if self.tally.valid_pixels == 0:
            files_list = ", ".join(info.path.name for info in scene.rasters.values())
            raise InputError(
                f"scene {scene.folder} has no valid pixel: every pixel is nodata ({RASTER_NODATA:g} or NaN) in "
                f"at least one of {files_list}; expected some valid data"
            )

    def _write_quicklook(self, path: Path, cog_tmp: dict[str, Path]) -> None:
        title = f"{self.scene.name}: {self.mapping.info.get('model', 'model')}"
        confidence = cog_tmp.get("calibrated_confidence", cog_tmp["confidence"])
        names = self.mapping.class_names
        _quicklook(path, self.scene, self.stream.thumbnail, cog_tmp["classes"], confidence, names, title)

    def _summary(self, extra: dict[str, Any]) -> dict[str, Any]:
        summary = _summary(self.stream, self.mapping, self.tally, self.areas, self.nodata, self.start_time)
        summary["outputs"] = sorted(
            [f"{n}.tif" for n in self.files]
            + [p.name for p in self.vectors.values()]
            + (["quicklook.png"] if self.quicklook else [])
            + list(self.stream.attachments)
        )
        summary.update(self.vector_summary)
        summary.update(self.stream.extra_summary)
        summary.update(extra)
        return summary


def vector_outputs(out: Path, *, uncertain: bool) -> dict[str, Path]:
    """The vector outputs of a scene, by name: ``uncertain_polygons`` -> ``uncertain.gpkg`` (with ``uncertain``).

    Args:
        out: The output folder.
        uncertain: The scene is mapped with ``uncertain_below`` (``uncertain.tif`` is written).

    Returns:
        Name -> final path.
    """
    return {"uncertain_polygons": out / "uncertain.gpkg"} if uncertain else {}


def write_uncertain_polygons(uncertain_tif: Path, confidence_tif: Path, path: Path) -> dict[str, Any]:
    """Polygonise ``uncertain.tif`` into the ``uncertain`` layer of a GeoPackage (see the module docstring).

    Read strip by strip (:func:`glaciermap.vector.polygonise_regions`), so memory is bounded by a strip and
    the polygons, whatever the scene size.

    Args:
        uncertain_tif: The finished ``uncertain.tif`` (1 uncertain, 0 certain, 255 nodata).
        confidence_tif: The confidence it thresholded (calibrated, else raw), for ``mean_confidence``.
        path: The GeoPackage to write (a temporary name from :func:`glaciermap.io.atomic_output`).

    Returns:
        Items for ``summary.json``: ``uncertain_regions`` (count) and ``uncertain_area_km2`` (their area).

    Raises:
        InputError: If a raster cannot be read or the layer cannot be written.
        OSError: If the disk is full.
    """
    frame = polygonise_regions(uncertain_tif, 1, values_path=confidence_tif)
    frame = frame.rename(columns={"mean_value": "mean_confidence"})
    write_vector(frame, path, "uncertain")
    return {
        "uncertain_regions": len(frame),
        "uncertain_area_km2": round(float(frame["area_km2"].sum()), 6),
    }


@dataclass(frozen=True)
class OutputSpec:
    """How one output raster is written.

    Attributes:
        count: Bands.
        dtype: Numpy dtype name.
        nodata: Nodata value.
        descriptions: Band descriptions.
        resampling: Overview resampling (GDAL name).
        tags: Dataset metadata.
        colormap: Palette of a single-band uint8 raster.
    """

    count: int
    dtype: str
    nodata: float
    descriptions: list[str]
    resampling: str = "AVERAGE"
    tags: dict[str, str] | None = None
    colormap: dict[int, tuple[int, int, int, int]] | None = None


def output_specs(
    names: tuple[str, ...],
    nodata: float,
    *,
    calibrated: bool,
    probabilities: bool,
    mc: bool,
    uncertain: bool = False,
) -> dict[str, OutputSpec]:
    """The output rasters of a scene, by name (file ``<name>.tif``), and how each is written.

    Args:
        names: Class names.
        nodata: Nodata of the float outputs.
        calibrated: Write ``calibrated_confidence.tif``.
        probabilities: Write ``probabilities.tif``.
        mc: Write ``mc_std.tif`` (Monte-Carlo dropout).
        uncertain: Write ``uncertain.tif`` (confidence below a threshold).

    Returns:
        Name -> :class:`OutputSpec`, in writing order.
    """
    specs = {
        "classes": OutputSpec(
            1,
            "uint8",
            IGNORE_INDEX,
            ["class"],
            "NEAREST",
            {f"class_{i}": n for i, n in enumerate(names)} | {"nodata_class": str(IGNORE_INDEX)},
            _colormap(names),
        ),
        "confidence": OutputSpec(
            1,
            "float32",
            nodata,
            ["confidence"],
            tags={"definition": "1 + sum_i p_i log_C p_i (GlaViTU paper Eq. 3)"},
        ),
    }
    if calibrated:
        specs["calibrated_confidence"] = OutputSpec(
            1,
            "float32",
            nodata,
            ["calibrated_confidence"],
            tags={"definition": "calibrator(confidence) (GlaViTU paper Eq. 4)"},
        )
    if probabilities:
        specs["probabilities"] = OutputSpec(len(names), "float32", nodata, list(names))
    if mc:
        specs["mc_std"] = OutputSpec(
            len(names),
            "float32",
            nodata,
            [f"{n}_std" for n in names],
            tags={"definition": "sqrt of the blended per-window variance over Monte-Carlo dropout passes"},
        )
    if uncertain:
        specs["uncertain"] = OutputSpec(
            1,
            "uint8",
            IGNORE_INDEX,
            ["uncertain"],
            "NEAREST",
            {"definition": "1 where calibrated (else raw) confidence < uncertain_below, 0 elsewhere"},
        )
    return specs


def _summary(
    stream: SceneStream,
    mapping: PretrainedModel,
    tally: _Tally,
    areas: npt.NDArray[np.float64],
    nodata: float,
    t0: float,
) -> dict[str, Any]:
    """The content of ``summary.json`` (without the list of outputs)."""
    scene, grid, names = stream.scene, stream.grid, mapping.class_names
    seconds = time.perf_counter() - t0
    scene_km2 = float(areas.sum() * scene.width)
    calibrated = mapping.calibrator is not None
    return {
        "scene": scene.name,
        "scene_dir": str(scene.folder),
        "region": scene.region,
        "crs": scene.crs.to_string(),
        "height": scene.height,
        "width": scene.width,
        "pixel_size_m": [abs(scene.transform.a), abs(scene.transform.e)],
        "class_names": list(names),
        "area_km2": {n: round(float(a), 6) for n, a in zip(names, tally.class_km2)},
        "glacier_area_km2": round(float(tally.class_km2[1:].sum()), 6),
        "scene_area_km2": round(scene_km2, 6),
        "nodata_area_km2": round(tally.nodata_km2, 6),
        "nodata_fraction": round(1.0 - tally.valid_pixels / max(tally.pixels, 1), 6),
        "infinite_pixels": int(stream.stats.get("infinite_pixels", 0)),
        "mean_confidence": tally.mean(tally.confidence_sum),
        "mean_calibrated_confidence": tally.mean(tally.calibrated_sum) if calibrated else None,
        **_confidence_summary(stream, mapping, tally),
        "seconds": round(seconds, 3),
        "km2_per_s": round(scene_km2 / seconds, 3) if seconds > 0 else None,
        "predict_seconds": round(stream.stats.get("seconds", 0.0), 3),
        "windows": int(stream.stats.get("windows", 0)),
        "skipped_windows": int(stream.stats.get("skipped_windows", 0)),
        "forward_passes": int(stream.stats.get("forward_passes", 0)),
        "window_size": grid.size,
        "stride": grid.stride,
        "padded_shape": list(grid.padded_shape),
        "blending": grid.kind,
        "device": str(stream.device),
        "precision": stream.precision,
        "channels_last": stream.channels_last,
        "convolution": stream.convolution,
        "location": stream.location,
        "model": dict(mapping.info),
        "nodata": {"classes": IGNORE_INDEX, "float": None if math.isnan(nodata) else nodata},
        "glaciermap_version": __version__,
    }


def _confidence_summary(stream: SceneStream, mapping: PretrainedModel, tally: _Tally) -> dict[str, Any]:
    """Histograms of raw and calibrated confidence, uncertain fraction and estimated IoU per class."""
    calibrated = mapping.calibrator is not None
    uncertain = None
    if stream.uncertain_below is not None and tally.valid_pixels:
        uncertain = round(tally.uncertain / tally.valid_pixels, 6)
    estimated: dict[str, float | None] | None = None
    correction = getattr(mapping.calibrator, "iou_correction", None)
    if tally.expected_iou is not None:
        values = tally.expected_iou.iou(correction)
        if tally.glacier is not None:  # three classes: also glacier = clean + debris-covered ice
            glacier = tally.glacier.iou()
            values = np.append(values, glacier if correction is None else float(correction(glacier)))
        names = (*mapping.class_names, "glacier")
        estimated = {n: None if not np.isfinite(v) else round(float(v), 6) for n, v in zip(names, values)}
    return {
        "confidence_histogram": {
            "edges": [round(float(e), 6) for e in np.linspace(0.0, 1.0, SUMMARY_BINS + 1)],
            "raw": tally.histogram.tolist(),
            "calibrated": tally.calibrated_histogram.tolist() if calibrated else None,
        },
        "uncertain_below": stream.uncertain_below,
        "uncertain_fraction": uncertain,
        "uncertain_regions": None,  # set from uncertain.gpkg when it is written
        "uncertain_area_km2": None,
        "estimated_iou": estimated,
        "estimated_iou_corrected": correction is not None if estimated is not None else None,
    }


def _calibrate_strip(
    calibrator: Any, probs: npt.NDArray[np.float32], confidence: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Calibrated confidence of a strip: ``R(conf)``, or the calibrator's own use of the probabilities.

    Temperature scaling of more than two classes is not a function of the raw confidence; calibrators that
    define ``apply_to_probabilities`` (every :class:`glaciermap.calibration.Calibrator`) are applied to them.
    """
    apply = getattr(calibrator, "apply_to_probabilities", None)
    if apply is not None and np.isnan(probs).any():  # nodata pixels only: their output is nodata anyway
        probs = np.nan_to_num(probs, nan=1.0 / probs.shape[0])
    out = apply(probs, axis=0) if apply is not None else calibrator(confidence)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def _report(progress: ProgressCallback | None, done: list[float]) -> None:
    """Hand the areas of the strips just written to ``progress``, in order."""
    if progress is not None:
        for area in done:
            progress(area)


def _write_strip(
    strip: Strip,
    sinks: dict[str, StreamingRaster],
    tally: _Tally,
    areas: npt.NDArray[np.float64],
    calibrator: Any,
    nodata: float,
    uncertain_below: float | None = None,
) -> None:
    """Class map, confidences, probabilities, spread and uncertain mask of one strip, written and tallied."""
    probs, invalid = strip.probabilities, strip.invalid
    valid = ~invalid
    classes = probs.argmax(axis=0).astype(np.uint8)
    classes[invalid] = IGNORE_INDEX
    confidence = entropy_confidence(probs, axis=0)
    calibrated = None
    if calibrator is not None:
        calibrated = _calibrate_strip(calibrator, probs, confidence)
        if tally.expected_iou is not None:
            tally.expected_iou.update(probs, calibrated, valid)
        if tally.glacier is not None:
            tally.glacier.update(probs, calibrated, valid)
    if uncertain_below is not None:
        basis = confidence if calibrated is None else calibrated
        uncertain = (basis < uncertain_below).astype(np.uint8)
        tally.uncertain += int(uncertain[valid].sum())
        uncertain[invalid] = IGNORE_INDEX
        sinks["uncertain"].write(strip.row, uncertain)
    if calibrated is not None:
        calibrated[invalid] = nodata
    confidence[invalid] = nodata
    rows = areas[strip.row : strip.row + probs.shape[1]]
    tally.add(classes, rows, confidence, calibrated, valid)
    sinks["classes"].write(strip.row, classes)
    sinks["confidence"].write(strip.row, confidence)
    if calibrated is not None:
        sinks["calibrated_confidence"].write(strip.row, calibrated)
    _write_extras(strip, sinks, nodata)


def _write_extras(strip: Strip, sinks: dict[str, StreamingRaster], nodata: float) -> None:
    """``probabilities.tif`` and ``mc_std.tif`` of one strip, where asked for."""
    invalid = strip.invalid
    if "probabilities" in sinks:
        out = strip.probabilities.copy()
        out[:, invalid] = nodata
        sinks["probabilities"].write(strip.row, out)
    if "mc_std" in sinks:
        if strip.spread is None:
            raise ValueError("Monte-Carlo output requested but the strip carries no spread")
        spread = strip.spread.astype(np.float32, copy=True)
        spread[:, invalid] = nodata
        sinks["mc_std"].write(strip.row, spread)


MAP_OUTPUTS: tuple[str, ...] = (
    "classes.tif",
    "confidence.tif",
    "calibrated_confidence.tif",
    "probabilities.tif",
    "mc_std.tif",
    "uncertain.tif",
    "uncertain.gpkg",
    "quicklook.png",
    "region_vector.json",
    "summary.json",
)
"""Every file a mapping run may write into its output folder."""


def _remove_stale(out: Path, written: set[str]) -> None:
    """Remove outputs of an earlier run that this run did not write (e.g. ``probabilities.tif``)."""
    for name in MAP_OUTPUTS:
        if name not in written:
            _remove(out / name)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    for aux in path.parent.glob(path.name + ".*"):
        with contextlib.suppress(FileNotFoundError):
            aux.unlink()
