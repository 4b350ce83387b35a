"""Read and validate a scene folder, the unit of input of every glaciermap dataset.

A scene folder holds one GeoTIFF per modality plus the labels, all on one grid, and two JSON files::

    <scene>/
      optical.tif   6 bands float32 (blue, green, red, nir, swir1, swir2), TOA reflectance
      dem.tif       2 bands float32 (elevation m, slope deg)
      thermal.tif   1 band  float32 (thermal, K)
      sar.tif       2 bands float32 (sar_asc, sar_desc), sigma0 linear
      insar.tif     2 bands float32 (coherence_asc, coherence_desc)
      labels.tif    1 band  uint8 (0 background, 1 clean ice, 2 debris-covered ice, 255 nodata)
      stats.json    per-modality statistics of the valid pixels (optional: computed when missing)
      scene.json    metadata: "region" (code, required; "region_code" is accepted too), "year", "crs",
                    "pixel_size", "height", "width", ...

Everything here reads metadata only (plus one decimated read to reject scenes without a valid pixel), so a
bad scene is rejected with an :class:`~glaciermap.errors.InputError` naming the file and what was expected
before any training starts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.windows
from affine import Affine
from pyproj import CRS

from glaciermap.constants import BANDS, IGNORE_INDEX, RASTER_NODATA, SCENE_FILES, SCENE_METADATA
from glaciermap.errors import ConfigError, InputError
from glaciermap.io import atomic_output, open_raster
from glaciermap.raster import RasterGrid
from glaciermap.transforms.stats import ModalityStats, NormStats, RunningStats

LABELS = "labels"
"""Key of the label raster in :attr:`SceneInfo.rasters` (``SCENE_FILES["labels"]``)."""

SCENE_STATS = "stats.json"
"""Name of the per-scene statistics file of a scene folder."""

LABEL_VALUES: frozenset[int] = frozenset({0, 1, 2, IGNORE_INDEX})
"""Values allowed in ``labels.tif``: background, clean ice, debris-covered ice, nodata."""

LabelPolicy = Literal["required", "optional", "ignore"]
"""Whether a scene must have ``labels.tif`` (training, evaluation), may have it (prediction) or is read without."""

_CHECK_PIXELS = 256 * 256
"""Number of pixels of the decimated read that looks for at least one valid pixel."""


@dataclass(frozen=True)
class RasterInfo:
    """Metadata of one raster of a scene folder (what rasterio reports without reading pixels).

    Attributes:
        path: The file.
        count: Number of bands.
        dtype: Numpy dtype name of the bands (e.g. ``"float32"``).
        crs_wkt: CRS as WKT.
        transform: Affine pixel-to-CRS transform.
        height: Rows (pixels).
        width: Columns (pixels).
        nodata: The nodata value declared in the file, or ``None``.
        descriptions: Band descriptions (``None`` where a band has none).
    """

    path: Path
    count: int
    dtype: str
    crs_wkt: str
    transform: Affine
    height: int
    width: int
    nodata: float | None
    descriptions: tuple[str | None, ...]

    @property
    def grid(self) -> RasterGrid:
        """The raster's grid."""
        crs = CRS.from_wkt(self.crs_wkt) if self.crs_wkt else None
        return RasterGrid(crs, self.transform, self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Footprint ``(left, bottom, right, top)`` in CRS units."""
        return self.grid.bounds


@dataclass(frozen=True)
class SceneInfo:
    """A validated scene folder: its metadata and the grid shared by all its rasters.

    Attributes:
        folder: The scene folder.
        metadata: The parsed ``scene.json``.
        region: Region code from ``scene.json`` (e.g. ``"HMA"``).
        year: Acquisition year from ``scene.json``, or ``None`` where absent.
        crs: The projected CRS shared by all rasters.
        transform: The affine transform shared by all rasters.
        height: Rows of the shared grid (pixels).
        width: Columns of the shared grid (pixels).
        rasters: Raster metadata by modality, plus ``"labels"`` where the scene has labels (and they were asked for).
    """

    folder: Path
    metadata: Mapping[str, Any]
    region: str
    year: int | None
    crs: CRS
    transform: Affine
    height: int
    width: int
    rasters: Mapping[str, RasterInfo] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Name of the scene (the folder name)."""
        return self.folder.name

    @property
    def grid(self) -> RasterGrid:
        """The grid shared by all rasters of the scene."""
        return RasterGrid(self.crs, self.transform, self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in CRS units (m)."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Footprint ``(left, bottom, right, top)`` in CRS units (m)."""
        return next(iter(self.rasters.values())).bounds

    @property
    def has_labels(self) -> bool:
        """Whether ``labels.tif`` was found and validated."""
        return LABELS in self.rasters


def _expected_bands(modality: str) -> str:
    names = BANDS[modality]
    return f"{len(names)} band{'s' if len(names) != 1 else ''} {', '.join(names)}"


def read_scene_metadata(folder: Path) -> dict[str, Any]:
    """Read and check ``scene.json`` of a scene folder.

    Args:
        folder: The scene folder.

    Returns:
        The parsed metadata. ``"region"`` (read from ``"region_code"`` where ``"region"`` is absent) is a
        non-empty string; ``"year"``, ``"height"``, ``"width"`` are integers and ``"pixel_size"`` a positive
        number where present.

    Raises:
        InputError: If the file is missing, not a JSON object, or a value has the wrong type.
    """
    path = folder / SCENE_METADATA
    if not path.is_file():
        raise InputError(
            f"scene {folder} has no {SCENE_METADATA}; expected a JSON object with at least 'region'"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err}); expected a JSON object with 'region'") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    region = meta.get("region", meta.get("region_code"))
    if not isinstance(region, str) or not region.strip():
        raise InputError(f"{path}: 'region' is {region!r}; expected a non-empty region code such as 'HMA'")
    meta["region"] = region
    for key in ("year", "height", "width"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise InputError(f"{path}: '{key}' is {value!r}; expected a positive integer")
    pixel_size = meta.get("pixel_size")
    if pixel_size is not None and (
        not isinstance(pixel_size, int | float) or isinstance(pixel_size, bool) or not pixel_size > 0
    ):
        raise InputError(f"{path}: 'pixel_size' is {pixel_size!r}; expected a positive number (m)")
    return meta


def inspect_raster(path: Path, what: str, *, count: int, names: Sequence[str] | None) -> RasterInfo:
    """Read the metadata of one raster and check its band count and band descriptions.

    Band descriptions are optional; where a band has one it must be the canonical name of that position.

    Args:
        path: The raster file.
        what: What the file should hold, for messages (e.g. ``"1 band thermal"``).
        count: Expected number of bands.
        names: Expected band descriptions in order, or ``None`` to skip that check.

    Returns:
        The raster's metadata.

    Raises:
        InputError: If the file is missing, not a raster, has no CRS, is rotated, or has the wrong bands.
    """
    with open_raster(path, what) as src:
        info = RasterInfo(
            path=path,
            count=src.count,
            dtype=str(src.dtypes[0]),
            crs_wkt=src.crs.to_wkt() if src.crs is not None else "",
            transform=src.transform,
            height=src.height,
            width=src.width,
            nodata=src.nodata,
            descriptions=tuple(src.descriptions),
        )
    if info.count != count:
        raise InputError(f"{path} has {info.count} band(s); expected {what}")
    if names is not None:
        for i, (got, want) in enumerate(zip(info.descriptions, names, strict=True), start=1):
            if got and got != want:
                raise InputError(
                    f"{path}: band {i} is described as {got!r}; expected {what} in this order "
                    f"(band {i} = {want!r})"
                )
    if not info.crs_wkt:
        raise InputError(f"{path} has no CRS; expected a projected CRS (e.g. UTM) shared by the whole scene")
    if info.transform.b != 0 or info.transform.d != 0 or info.transform.a <= 0 or info.transform.e >= 0:
        raise InputError(
            f"{path} has a rotated or flipped transform {tuple(info.transform)[:6]}; expected a north-up grid"
        )
    return info


def _check_same_grid(reference: RasterInfo, other: RasterInfo) -> None:
    """Raise if ``other`` is not on the grid of ``reference`` (CRS, overlap, transform, shape)."""
    if CRS.from_wkt(other.crs_wkt) != CRS.from_wkt(reference.crs_wkt):
        raise InputError(
            f"{other.path} has CRS {CRS.from_wkt(other.crs_wkt).to_string()} but {reference.path.name} has "
            f"{CRS.from_wkt(reference.crs_wkt).to_string()}; every raster of a scene must share one CRS and grid"
        )
    a, b = reference.bounds, other.bounds
    if min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]):
        raise InputError(
            f"{other.path} (bounds {b}) does not overlap {reference.path.name} (bounds {a}): the intersection "
            "of the scene's rasters is empty; expected every raster of a scene to cover the same grid"
        )
    if reference.grid.difference(other.grid) is not None:
        raise InputError(
            f"{other.path} is on grid {other.width}x{other.height} px with transform {tuple(other.transform)[:6]} "
            f"but {reference.path.name} is {reference.width}x{reference.height} px with transform "
            f"{tuple(reference.transform)[:6]}; every raster of a scene must share one grid"
        )


def _check_metadata_matches(path: Path, meta: Mapping[str, Any], info: RasterInfo) -> None:
    """Raise if the grid recorded in ``scene.json`` contradicts the rasters."""
    checks: list[tuple[str, Any, Any]] = [("height", meta.get("height"), info.height)]
    checks.append(("width", meta.get("width"), info.width))
    for key, recorded, actual in checks:
        if recorded is not None and recorded != actual:
            raise InputError(f"{path}: '{key}' is {recorded} but {info.path.name} has {actual} px")
    pixel_size = meta.get("pixel_size")
    if pixel_size is not None and not math.isclose(float(pixel_size), info.transform.a, rel_tol=1e-6):
        raise InputError(
            f"{path}: 'pixel_size' is {pixel_size} but {info.path.name} has {info.transform.a} m"
        )
    crs = meta.get("crs")
    if crs is not None:
        try:
            recorded_crs = CRS.from_user_input(crs)
        except Exception:  # pyproj raises CRSError, a subclass of several types
            raise InputError(
                f"{path}: 'crs' is {crs!r}; expected a CRS string such as 'EPSG:32643'"
            ) from None
        if recorded_crs != CRS.from_wkt(info.crs_wkt):
            raise InputError(
                f"{path}: 'crs' is {crs!r} but {info.path.name} is in {CRS.from_wkt(info.crs_wkt).to_string()}"
            )


def inspect_scene(
    folder: str | Path,
    modalities: Sequence[str],
    *,
    labels: LabelPolicy = "required",
    check_valid_pixels: bool = True,
) -> SceneInfo:
    """Validate a scene folder for the given modalities and return its metadata.

    Checks, each with an :class:`~glaciermap.errors.InputError` naming the file and what was expected: the
    folder and ``scene.json`` exist and hold sane values; every requested modality file exists, is a
    readable raster with the canonical band count and band descriptions, and has a CRS; ``labels.tif`` (if
    used) is a one-band integer raster; all rasters share one CRS, overlap, and share transform and shape;
    ``scene.json``'s ``crs``/``pixel_size``/``height``/``width`` agree with the rasters; and (optionally) at
    least one pixel is valid in every modality and the labels.

    Args:
        folder: The scene folder.
        modalities: Modalities that will be read (keys of :data:`~glaciermap.constants.BANDS`).
        labels: ``"required"``: ``labels.tif`` must exist; ``"optional"``: used where present; ``"ignore"``:
            not read.
        check_valid_pixels: Also reject scenes whose pixels are all nodata (one decimated read per raster).

    Returns:
        The scene's validated metadata.

    Raises:
        ConfigError: If a modality name is unknown or ``modalities`` is empty.
        InputError: If the scene is not what was expected (see above).
    """
    if not modalities:
        raise ConfigError("modalities is empty; expected at least one of " + ", ".join(BANDS))
    unknown = [m for m in modalities if m not in BANDS]
    if unknown:
        raise ConfigError(f"unknown modality {unknown[0]!r}; expected one of {', '.join(BANDS)}")
    root = Path(folder)
    if not root.is_dir():
        raise InputError(
            f"scene folder {root} not found; expected a folder with {SCENE_METADATA} and rasters"
        )
    meta = read_scene_metadata(root)

    rasters: dict[str, RasterInfo] = {}
    for modality in modalities:
        path = root / SCENE_FILES[modality]
        what = _expected_bands(modality)
        if not path.is_file():
            raise InputError(f"scene {root} has no {path.name}; expected {what} ({modality})")
        rasters[modality] = inspect_raster(path, what, count=len(BANDS[modality]), names=BANDS[modality])
    label_path = root / SCENE_FILES[LABELS]
    if labels == "required" or (labels == "optional" and label_path.is_file()):
        if not label_path.is_file():
            raise InputError(
                f"scene {root} has no {label_path.name}; expected 1 band uint8 labels "
                "(0 background, 1 clean ice, 2 debris-covered ice, 255 nodata)"
            )
        info = inspect_raster(label_path, "1 band uint8 labels", count=1, names=None)
        if not np.issubdtype(np.dtype(info.dtype), np.integer):
            raise InputError(f"{label_path} has dtype {info.dtype}; expected integer (uint8) class ids")
        rasters[LABELS] = info

    reference = rasters[modalities[0]]
    for info in rasters.values():
        _check_same_grid(reference, info)
    _check_metadata_matches(root / SCENE_METADATA, meta, reference)

    scene = SceneInfo(
        folder=root,
        metadata=meta,
        region=str(meta["region"]),
        year=meta.get("year"),
        crs=CRS.from_wkt(reference.crs_wkt),
        transform=reference.transform,
        height=reference.height,
        width=reference.width,
        rasters=rasters,
    )
    if check_valid_pixels:
        check_has_valid_pixels(scene)
    return scene


def check_label_values(values: Iterable[int], source: str | Path) -> None:
    """Raise if label values other than 0, 1, 2 and 255 occur.

    Args:
        values: Label values found.
        source: The label file, for the message.

    Raises:
        InputError: Naming the file and up to five unexpected values.
    """
    unexpected = set(values) - LABEL_VALUES
    if unexpected:
        raise InputError(
            f"{source} holds label value(s) {sorted(unexpected)[:5]}; expected 0 background, "
            f"1 clean ice, 2 debris-covered ice or {IGNORE_INDEX} nodata"
        )


def invalid_pixels(data: npt.NDArray[Any], nodata: float | None) -> npt.NDArray[np.bool_]:
    """Pixels where any band is nodata: not finite, the file's nodata value or :data:`RASTER_NODATA`.

    Not finite means NaN or +-infinity.

    Args:
        data: Bands ``(C, H, W)``.
        nodata: The file's declared nodata value, or ``None``.

    Returns:
        Boolean ``(H, W)``, True where the pixel is invalid.
    """
    bad = ~np.isfinite(data) if np.issubdtype(data.dtype, np.floating) else np.zeros(data.shape, dtype=bool)
    bad |= data == RASTER_NODATA
    if nodata is not None and not math.isnan(nodata):
        bad |= data == nodata
    out: npt.NDArray[np.bool_] = bad.any(axis=0)
    return out


def _valid_mask(scene: SceneInfo, out_shape: tuple[int, int] | None) -> npt.NDArray[np.bool_]:
    """Valid pixels of a scene (all modalities valid, label not nodata), optionally at a decimated shape."""
    valid: npt.NDArray[np.bool_] | None = None
    for key, info in scene.rasters.items():
        with rasterio.open(info.path) as src:
            data = src.read(out_shape=(info.count, *out_shape) if out_shape else None)
        if key == LABELS:
            ok = data[0] != IGNORE_INDEX
            if info.nodata is not None:
                ok &= data[0] != info.nodata
            check_label_values(np.unique(data[0][ok]).tolist(), info.path)
        else:
            ok = ~invalid_pixels(data, info.nodata)
        valid = ok if valid is None else valid & ok
    assert valid is not None
    return valid


def check_has_valid_pixels(scene: SceneInfo) -> None:
    """Raise if no pixel of the scene is valid in every modality (and the labels).

    A decimated read (at most about 256x256 pixels per raster) finds valid pixels cheaply; only when it finds
    none is the full raster read to confirm before raising. The decimated read also rejects unexpected
    label values.

    Args:
        scene: The scene to check.

    Raises:
        InputError: If every pixel is nodata or NaN, or ``labels.tif`` holds values other than 0, 1, 2, 255.
    """
    scale = max(1.0, math.sqrt(scene.height * scene.width / _CHECK_PIXELS))
    small = (max(1, round(scene.height / scale)), max(1, round(scene.width / scale)))
    if _valid_mask(scene, small if scale > 1 else None).any():
        return
    if scale > 1 and _valid_mask(scene, None).any():
        return
    files = ", ".join(info.path.name for info in scene.rasters.values())
    raise InputError(
        f"scene {scene.folder} has no valid pixel: every pixel is nodata ({RASTER_NODATA:g} or NaN) or "
        f"label {IGNORE_INDEX} in at least one of {files}; expected some valid data"
    )


def compute_raster_stats(
    info: RasterInfo, bands: Sequence[str], *, max_values: int = 1 << 22
) -> ModalityStats:
    """Statistics of the valid pixels of a raster, streamed over row blocks (constant memory).

    A pixel counts only where no band is nodata/NaN (the rule of :func:`invalid_pixels`), so every band
    shares one count, as in ``stats.json``.

    Args:
        info: The raster (from :func:`inspect_raster`).
        bands: Band names of the raster, in file order.
        max_values: Upper bound on the number of values read at once.

    Returns:
        Mean, population standard deviation, min and max per band, and the valid pixel count.
    """
    running = RunningStats(len(bands))
    rows = max(1, max_values // max(1, info.width * info.count))
    with rasterio.open(info.path) as src:
        for row in range(0, info.height, rows):
            window = rasterio.windows.Window(0, row, info.width, min(rows, info.height - row))
            data = src.read(window=window).astype(np.float64)
            ok = ~invalid_pixels(data, info.nodata)
            running.update(data[:, ok])
    return running.result(tuple(bands))


def _parse_modality_stats(path: Path, modality: str, entry: Any) -> ModalityStats:
    names = BANDS[modality]
    if not isinstance(entry, dict):
        raise InputError(
            f"{path}: '{modality}' is {type(entry).__name__}; expected an object with mean/std/..."
        )
    values: dict[str, tuple[float, ...]] = {}
    for key in ("mean", "std", "min", "max"):
        seq = entry.get(key)
        if (
            not isinstance(seq, list)
            or len(seq) != len(names)
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in seq)
        ):
            raise InputError(
                f"{path}: '{modality}.{key}' is {seq!r}; expected {len(names)} finite numbers "
                f"({', '.join(names)})"
            )
        values[key] = tuple(float(v) for v in seq)
    count = entry.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InputError(f"{path}: '{modality}.count' is {count!r}; expected a non-negative integer")
    if any(s < 0 for s in values["std"]):
        raise InputError(f"{path}: '{modality}.std' has a negative value; expected standard deviations >= 0")
    return ModalityStats(
        bands=names,
        mean=values["mean"],
        std=values["std"],
        min=values["min"],
        max=values["max"],
        count=count,
    )


def read_scene_stats(scene: SceneInfo, modalities: Sequence[str] | None = None) -> NormStats:
    """Per-band statistics of a scene, from its ``stats.json`` or, where missing, streamed from the rasters.

    Modalities missing from an existing ``stats.json`` are streamed too. Nothing is written to the scene
    folder (it may be read-only).

    Args:
        scene: A validated scene (from :func:`inspect_scene`).
        modalities: Modalities to return (defaults to all image rasters of ``scene``).

    Returns:
        The statistics (z-score method; choose the method where they are used).

    Raises:
        InputError: If ``stats.json`` exists but is not valid JSON or an entry is malformed.
    """
    wanted = list(modalities) if modalities is not None else [k for k in scene.rasters if k != LABELS]
    path = scene.folder / SCENE_STATS
    recorded: dict[str, Any] = {}
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: not valid JSON ({err}); expected per-modality statistics") from None
        if not isinstance(recorded, dict):
            raise InputError(f"{path}: expected a JSON object of per-modality statistics")
    out: dict[str, ModalityStats] = {}
    for modality in wanted:
        if modality in recorded:
            out[modality] = _parse_modality_stats(path, modality, recorded[modality])
        else:
            if modality not in scene.rasters:
                raise InputError(
                    f"scene {scene.folder}: no statistics and no raster for modality {modality!r}"
                )
            out[modality] = compute_raster_stats(scene.rasters[modality], BANDS[modality])
    return NormStats(modalities=out)


def is_scene_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a scene folder (it holds a ``scene.json``)."""
    return (Path(path) / SCENE_METADATA).is_file()


def holds_scenes(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder of scene folders rather than a scene folder."""
    p = Path(path)
    return p.is_dir() and not is_scene_folder(p) and any(is_scene_folder(c) for c in p.iterdir())


def find_scenes(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Scene folders from a list of scene folders and/or folders of scene folders.

    A path with a ``scene.json`` is a scene; otherwise its sub-folders that have one are taken, sorted by
    name.

    Args:
        paths: Scene folders or parents of scene folders.

    Returns:
        The scene folders, in the given order (sub-folders sorted).

    Raises:
        InputError: If a path does not exist or holds no scene folder.
    """
    scenes: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_scene_folder(path):
            scenes.append(path)
            continue
        if not path.is_dir():
            raise InputError(
                f"scene folder {path} not found; expected a folder with {SCENE_METADATA} and rasters"
            )
        found = sorted(p for p in path.iterdir() if is_scene_folder(p))
        if not found:
            raise InputError(
                f"{path} is neither a scene folder nor a folder of scene folders (no {SCENE_METADATA} found)"
            )
        scenes.extend(found)
    return scenes


def _loose_metadata(folder: Path, name: str = SCENE_METADATA) -> dict[str, Any] | None:
    """``folder/name`` parsed as a JSON object, or ``None`` when it is missing or not a JSON object."""
    try:
        meta = json.loads((folder / name).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def scene_pixels(folder: str | os.PathLike[str]) -> float:
    """Pixel count of a scene from its ``scene.json`` (``height * width``), 1 if unknown (for sharding)."""
    meta = _loose_metadata(Path(folder)) or {}
    try:
        return float(int(meta["height"]) * int(meta["width"]))
    except (KeyError, TypeError, ValueError):
        return 1.0


def scene_date(folder: str | os.PathLike[str]) -> str | None:
    """The acquisition ``date`` (or ``year``) of a scene folder's ``scene.json``, if it has one."""
    meta = _loose_metadata(Path(folder)) or {}
    value = meta.get("date", meta.get("year"))
    return None if value is None else str(value)


def scene_region(folder: str | os.PathLike[str], files: Sequence[str] = (SCENE_METADATA,)) -> str | None:
    """The region code (``region`` or ``region_code``) of the first of ``files`` in ``folder`` that has one.

    Args:
        folder: A scene folder or a mapping output folder.
        files: JSON files to look in, in order (e.g. ``scene.json`` then a mapping's ``summary.json``).

    Returns:
        The region code, or ``None``.

    Raises:
        InputError: If one of the files exists but is not valid JSON.
    """
    for name in files:
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            meta = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: not valid JSON ({err})") from None
        region = meta.get("region", meta.get("region_code")) if isinstance(meta, dict) else None
        if isinstance(region, str) and region:
            return region
    return None


def read_folder_metadata(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``scene.json`` of any folder glaciermap writes (a glacier scene or the crevasse world), unchecked.

    Raises:
        InputError: If it is missing or not a JSON object.
    """
    meta = _loose_metadata(Path(folder))
    if meta is None:
        raise InputError(f"{Path(folder) / SCENE_METADATA}: missing or not a JSON object")
    return meta


def write_scene_metadata(
    folder: str | os.PathLike[str], meta: Mapping[str, Any], *, require_region: bool = True
) -> Path:
    """Write ``scene.json`` of a scene folder as strict JSON (no NaN or Infinity), atomically.

    Args:
        folder: The scene folder (created if missing).
        meta: The metadata; must hold a non-empty ``"region"`` (or ``"region_code"``) string.
        require_region: Whether the region is required (a glacier scene folder; not the crevasse world).

    Returns:
        The path written.

    Raises:
        InputError: If the region is missing or a value is not strict JSON (NaN, Infinity, an object).
    """
    path = Path(folder) / SCENE_METADATA
    region = meta.get("region", meta.get("region_code"))
    if require_region and (not isinstance(region, str) or not region.strip()):
        raise InputError(f"{path}: 'region' is {region!r}; expected a non-empty region code such as 'HMA'")
    try:
        text = json.dumps(dict(meta), indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise InputError(f"{path}: {err}; expected JSON values (no NaN or Infinity)") from None
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path


def check_value_ranges(
    scene: SceneInfo, bands: Mapping[str, Sequence[str]], *, sample_side: int = 256
) -> None:
    """Stop early when a band's values are not in the units the models expect.

    Each raster is read once at reduced resolution (at most ``sample_side`` pixels a side); the 1st and 99th
    percentiles of each band's valid pixels must lie in :data:`glaciermap.constants.BAND_RANGES`.

    Args:
        scene: The validated scene.
        bands: The bands to check per modality (names from :data:`glaciermap.constants.BANDS`).
        sample_side: Side of the decimated read.

    Raises:
        InputError: Naming the file, the band, the values found and the expected unit and range.
    """
    from glaciermap.constants import BAND_RANGES

    for modality, names in bands.items():
        info = scene.rasters.get(modality)
        if info is None:
            continue
        scale = max(1.0, max(info.height, info.width) / sample_side)
        shape = (max(1, round(info.height / scale)), max(1, round(info.width / scale)))
        with open_raster(info.path, f"{modality} bands") as src:
            try:
                data = src.read(out_shape=(info.count, *shape), out_dtype=np.float64)
            except rasterio.errors.RasterioError as err:
                raise InputError(
                    f"{info.path}: cannot be read ({err}); expected a readable GeoTIFF"
                ) from None
        valid = ~invalid_pixels(data, info.nodata)
        if not valid.any():
            continue
        file_bands = BANDS[modality]
        for name in names:
            if name not in BAND_RANGES or name not in file_bands:
                continue
            lo, hi, unit = BAND_RANGES[name]
            values = data[file_bands.index(name)][valid]
            p1, p99 = (float(v) for v in np.percentile(values, [1, 99]))
            if p1 < lo or p99 > hi:
                raise InputError(
                    f"{info.path}: band {name!r} has values {p1:.6g} to {p99:.6g} (1st-99th percentile of a sample); "
                    f"expected {unit}, within [{lo:g}, {hi:g}]; convert the data, or pass --no-range-check to "
                    "map it anyway"
                )
