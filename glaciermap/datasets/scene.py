"""torchgeo datasets over scene folders.

* One torchgeo :class:`~torchgeo.datasets.RasterDataset` per modality (:class:`OpticalRaster`,
  :class:`DemRaster`, :class:`ThermalRaster`, :class:`SarRaster`, :class:`SarCrossRaster`, :class:`InsarRaster`) and for the labels
  (:class:`LabelRaster`); torchgeo does the windowed reading.
* :class:`SceneDataset`, a :class:`~torchgeo.datasets.GeoDataset` that joins the requested modalities and
  the labels of **one** scene folder on its shared grid (validated eagerly, see
  :func:`~glaciermap.datasets.scene_folder.inspect_scene`) and returns the sample contract (``image``,
  ``mask``, ``region``, ``location``, ``crs``, ``bounds``; see ``docs/glossary.md``). It can be indexed
  with a geo query ``(slice(xmin, xmax), slice(ymin, ymax))`` and sampled with torchgeo's samplers.
* :class:`SceneCollection`, several scenes (each may have its own CRS), indexed by
  :class:`SceneQuery` ``(scene, x, y)``; the samplers of :mod:`glaciermap.datamodules.samplers` produce
  these queries.

Each scene keeps its own CRS and pixel size: scenes are never reprojected, so a patch is always read on the
native grid. Overlapping scenes (same place, other years) stay distinct because queries name their scene.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import pandas as pd
import shapely
import torch
from geopandas import GeoDataFrame
from pyproj import CRS, Transformer
from torch import Tensor
from torch.utils.data import Dataset, default_collate
from torchgeo.datasets import GeoDataset, RasterDataset

from glaciermap.constants import BANDS, IGNORE_INDEX, IMAGE_FILL, SCENE_FILES
from glaciermap.datasets.scene_folder import (
    LABELS,
    LabelPolicy,
    SceneInfo,
    check_label_values,
    inspect_scene,
    invalid_pixels,
    read_scene_stats,
)
from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.normalisation import Normalize, NormStats

Target = Literal["binary", "classes"]
"""``"binary"``: 0 background, 1 glacier (clean or debris-covered); ``"classes"``: 0, 1 clean, 2 debris."""

ImageFormat = Literal["stacked", "per_modality"]
"""``"stacked"``: one ``(C, H, W)`` tensor, modalities concatenated in the requested order;
``"per_modality"``: ``dict[modality, (C_m, H, W)]`` for multi-branch models."""


class SceneRaster(RasterDataset):
    """Base class of the per-modality rasters of a scene folder (one file, canonical bands)."""

    modality: ClassVar[str]


class OpticalRaster(SceneRaster):
    """``optical.tif``: TOA reflectance, bands blue, green, red, nir, swir1, swir2."""

    modality = "optical"
    filename_glob = SCENE_FILES["optical"]
    all_bands = BANDS["optical"]
    rgb_bands = ("red", "green", "blue")


class DemRaster(SceneRaster):
    """``dem.tif``: elevation (m) and slope (degrees)."""

    modality = "dem"
    filename_glob = SCENE_FILES["dem"]
    all_bands = BANDS["dem"]


class ThermalRaster(SceneRaster):
    """``thermal.tif``: brightness temperature (K)."""

    modality = "thermal"
    filename_glob = SCENE_FILES["thermal"]
    all_bands = BANDS["thermal"]


class SarRaster(SceneRaster):
    """``sar.tif``: sigma0 (linear) of the ascending and descending tracks."""

    modality = "sar"
    filename_glob = SCENE_FILES["sar"]
    all_bands = BANDS["sar"]


class SarCrossRaster(SceneRaster):
    """``sar_cross.tif``: cross-polarised sigma0 (linear) of the ascending and descending tracks."""

    modality = "sar_cross"
    filename_glob = SCENE_FILES["sar_cross"]
    all_bands = BANDS["sar_cross"]


class InsarRaster(SceneRaster):
    """``insar.tif``: interferometric coherence of the ascending and descending tracks."""

    modality = "insar"
    filename_glob = SCENE_FILES["insar"]
    all_bands = BANDS["insar"]


class LabelRaster(RasterDataset):
    """``labels.tif``: 0 background, 1 clean ice, 2 debris-covered ice, 255 nodata (read as int64 mask)."""

    filename_glob = SCENE_FILES[LABELS]
    is_image = False


RASTERS: dict[str, type[SceneRaster]] = {
    cls.modality: cls
    for cls in (OpticalRaster, DemRaster, ThermalRaster, SarRaster, SarCrossRaster, InsarRaster)
}
"""The raster dataset class of each modality."""


@functools.lru_cache(maxsize=64)
def _to_wgs84(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(crs_wkt), CRS.from_epsg(4326), always_xy=True)


def region_index(region: str, region_codes: Sequence[str]) -> int:
    """Index of a region code; codes not in the list map to the "unseen" index ``len(region_codes)``.

    Args:
        region: Region code of a scene (e.g. ``"HMA"``).
        region_codes: Known region codes, in index order.

    Returns:
        The region index in ``[0, len(region_codes)]``.
    """
    return list(region_codes).index(region) if region in region_codes else len(region_codes)


def resolve_bands(
    modalities: Sequence[str], bands: Mapping[str, Sequence[str]] | None
) -> dict[str, tuple[str, ...]]:
    """Bands to read per modality: all canonical bands unless a subset is requested.

    Args:
        modalities: Modalities to read.
        bands: Optional band subsets by modality (canonical names, any order).

    Returns:
        Band names by modality, in the requested modality order.

    Raises:
        ConfigError: If a modality or band is unknown, or a subset is given for a modality not read.
    """
    chosen: dict[str, tuple[str, ...]] = {}
    for modality in modalities:
        if modality not in BANDS:
            raise ConfigError(f"unknown modality {modality!r}; expected one of {', '.join(BANDS)}")
        if modality in chosen:
            raise ConfigError(f"modality {modality!r} is listed twice")
        chosen[modality] = BANDS[modality]
    for modality, names in (bands or {}).items():
        if modality not in chosen:
            raise ConfigError(f"bands given for {modality!r}, which is not in modalities {list(modalities)}")
        unknown = [b for b in names if b not in BANDS[modality]]
        if unknown or not names:
            raise ConfigError(
                f"band {unknown[0] if unknown else None!r} of {modality!r} is unknown; expected some of "
                f"{', '.join(BANDS[modality])}"
            )
        chosen[modality] = tuple(names)
    return chosen


def map_labels(labels: Tensor, target: Target, source: str = "labels.tif") -> Tensor:
    """Turn raw label values into the training target.

    Args:
        labels: ``(H, W)`` int64 values 0, 1, 2 or 255.
        target: ``"binary"`` (1 and 2 become 1) or ``"classes"`` (unchanged).
        source: The file the labels come from, for the error message.

    Returns:
        ``(H, W)`` int64 target with 255 kept as ignore index.

    Raises:
        InputError: If ``labels`` holds other values.
    """
    check_label_values(torch.unique(labels).tolist(), source)
    if target == "binary":
        return torch.where((labels == 1) | (labels == 2), torch.ones_like(labels), labels)
    return labels


class SceneDataset(GeoDataset):
    """The requested modalities and labels of one scene folder, as a torchgeo GeoDataset.

    A query ``(slice(xmin, xmax), slice(ymin, ymax))`` in the scene's CRS (optionally with a time slice,
    ignored) returns the sample contract (``docs/glossary.md``):

    * ``image``: float32 ``(C, H, W)`` (``image_format="stacked"``) or ``dict[modality, (C_m, H, W)]``,
      normalised, with every invalid pixel set to ``fill_value`` in every channel;
    * ``mask``: int64 ``(H, W)``: the target (see :data:`Target`), 255 where the label is 255, where any
      band of any requested modality is nodata/NaN, or outside the scene. Absent when the scene is read
      without labels;
    * ``region``: int, index of the scene's region code in ``region_codes`` (``len(region_codes)`` if unseen);
    * ``location``: float32 ``(2,)``, latitude and longitude (degrees, EPSG:4326) of the window centre;
    * ``crs``: :class:`pyproj.CRS` of the scene; ``bounds``: float64 ``(4,)`` ``(xmin, ymin, xmax, ymax)`` of
      the window in that CRS (m).

    Args:
        folder: The scene folder.
        modalities: Modalities to read, in channel order.
        bands: Optional band subsets by modality (default: all canonical bands).
        target: ``"binary"`` or ``"classes"``, or ``None`` to read no labels (prediction).
        labels: Whether labels must exist (default: required when ``target`` is set, else ignored).
        region_codes: Known region codes, in index order.
        norm: Statistics to normalise with; ``"scene"`` uses this scene's ``stats.json`` (or streams them);
            ``None`` leaves values in their units (invalid pixels still get ``fill_value``).
        image_format: ``"stacked"`` or ``"per_modality"``.
        fill_value: Value of invalid image pixels after normalisation.
        scene: An already validated scene (skips re-validation).

    Raises:
        ConfigError: If an option is invalid.
        InputError: If the scene folder is not what was expected (see
            :func:`~glaciermap.datasets.scene_folder.inspect_scene`).
    """

    def __init__(
        self,
        folder: str | Path,
        modalities: Sequence[str] = ("optical", "dem"),
        *,
        bands: Mapping[str, Sequence[str]] | None = None,
        target: Target | None = "binary",
        labels: LabelPolicy | None = None,
        region_codes: Sequence[str] = (),
        norm: NormStats | Literal["scene"] | None = "scene",
        image_format: ImageFormat = "stacked",
        fill_value: float = IMAGE_FILL,
        scene: SceneInfo | None = None,
    ) -> None:
        if target not in ("binary", "classes", None):
            raise ConfigError(f"target is {target!r}; expected 'binary', 'classes' or None")
        if image_format not in ("stacked", "per_modality"):
            raise ConfigError(f"image_format is {image_format!r}; expected 'stacked' or 'per_modality'")
        self.bands_by_modality = resolve_bands(modalities, bands)
        policy: LabelPolicy = labels if labels is not None else ("required" if target else "ignore")
        self.scene = scene if scene is not None else inspect_scene(folder, list(modalities), labels=policy)
        if target is not None and not self.scene.has_labels:
            raise InputError(f"scene {self.scene.folder} has no labels.tif; target {target!r} needs labels")
        self.target = target
        self.region_codes = tuple(region_codes)
        self.image_format = image_format
        self.fill_value = float(fill_value)

        if norm == "scene":
            norm = read_scene_stats(self.scene, list(self.bands_by_modality))
        self.norm = norm.select(self.bands_by_modality) if norm is not None else None
        self.normalizers = (
            {m: Normalize(s, self.norm.method) for m, s in self.norm.modalities.items()} if self.norm else {}
        )

        crs, res = self.scene.crs, self.scene.res
        self.rasters: dict[str, RasterDataset] = {
            m: RASTERS[m](paths=str(self.scene.rasters[m].path), crs=crs, res=res, bands=list(names))
            for m, names in self.bands_by_modality.items()
        }
        if self.scene.has_labels and policy != "ignore":
            self.rasters[LABELS] = LabelRaster(paths=str(self.scene.rasters[LABELS].path), crs=crs, res=res)

        year = self.scene.year
        interval = (
            (pd.Timestamp(year=year, month=1, day=1), pd.Timestamp(year=year, month=12, day=31, hour=23))
            if year
            else (pd.Timestamp.min, pd.Timestamp.max)
        )
        self.index = GeoDataFrame(
            {"filepath": [str(self.scene.folder)]},
            index=pd.IntervalIndex.from_tuples([interval], closed="both", name="datetime"),
            geometry=[shapely.box(*self.scene.bounds)],
            crs=crs,
        )
        self._res = res
        self._crs_wkt = crs.to_wkt()

    @property
    def num_channels(self) -> int:
        """Number of image channels (all modalities together)."""
        return sum(len(b) for b in self.bands_by_modality.values())

    def _window(self, query: Any) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of a query; open ends default to the scene's footprint."""
        if isinstance(query, slice):
            query = (query,)
        if not isinstance(query, tuple) or not query or not all(isinstance(q, slice) for q in query[:2]):
            raise IndexError(
                f"query {query!r} is not a geo query; expected (slice(xmin, xmax), slice(ymin, ymax))"
            )
        left, bottom, right, top = self.scene.bounds
        x = query[0]
        y = query[1] if len(query) > 1 else slice(None)
        for axis, s, res in (("x", x, self.res[0]), ("y", y, self.res[1])):
            if s.step is not None and not np.isclose(s.step, res):
                raise IndexError(
                    f"query step {s.step} along {axis} differs from the pixel size {res}; not supported"
                )
        xmin = left if x.start is None else float(x.start)
        xmax = right if x.stop is None else float(x.stop)
        ymin = bottom if y.start is None else float(y.start)
        ymax = top if y.stop is None else float(y.stop)
        if xmax <= left or xmin >= right or ymax <= bottom or ymin >= top or xmax <= xmin or ymax <= ymin:
            raise IndexError(
                f"query x [{xmin}, {xmax}], y [{ymin}, {ymax}] does not intersect scene {self.scene.name} "
                f"with bounds {self.scene.bounds}"
            )
        return xmin, ymin, xmax, ymax

    def _outside(self, window: tuple[float, float, float, float], shape: tuple[int, int]) -> Tensor:
        """``(H, W)`` True where a pixel centre of the window lies outside the scene footprint."""
        xmin, _, _, ymax = window
        left, bottom, right, top = self.scene.bounds
        rx, ry = self.res
        xs = xmin + (torch.arange(shape[1], dtype=torch.float64) + 0.5) * rx
        ys = ymax - (torch.arange(shape[0], dtype=torch.float64) + 0.5) * ry
        out_x = (xs < left) | (xs > right)
        out_y = (ys < bottom) | (ys > top)
        return out_y[:, None] | out_x[None, :]

    def __getitem__(self, query: Any) -> dict[str, Any]:
        """Read one window.

        Args:
            query: ``(slice(xmin, xmax), slice(ymin, ymax)[, slice(tmin, tmax)])`` in the scene's CRS (m);
                open ends default to the scene's footprint.

        Returns:
            The sample contract (see the class docstring).

        Raises:
            IndexError: If the window does not intersect the scene or asks for another pixel size.
            InputError: If ``labels.tif`` holds values other than 0, 1, 2, 255.
        """
        window = self._window(query)
        geo_query = (slice(window[0], window[2]), slice(window[1], window[3]))
        images: dict[str, Tensor] = {}
        invalid: Tensor | None = None
        for modality in self.bands_by_modality:
            data = self.rasters[modality][geo_query]["image"].float()
            pixel_bad = torch.from_numpy(invalid_pixels(data.numpy(), self.scene.rasters[modality].nodata))
            invalid = pixel_bad if invalid is None else invalid | pixel_bad
            images[modality] = self.normalizers[modality](data) if modality in self.normalizers else data
        assert invalid is not None
        invalid |= self._outside(window, (invalid.shape[0], invalid.shape[1]))
        for modality, data in images.items():
            images[modality] = data.masked_fill(invalid, self.fill_value).contiguous()

        sample: dict[str, Any] = {}
        if self.image_format == "stacked":
            sample["image"] = torch.cat(list(images.values()), dim=0)
        else:
            sample["image"] = images
        if LABELS in self.rasters:
            raw = self.rasters[LABELS][geo_query]["mask"].long()
            ignore = invalid
            label_nodata = self.scene.rasters[LABELS].nodata
            if label_nodata is not None and not np.isnan(label_nodata):
                ignore = ignore | (raw == int(label_nodata))
            target: Target = self.target or "classes"
            source = str(self.scene.rasters[LABELS].path)
            sample["mask"] = map_labels(raw.masked_fill(ignore, IGNORE_INDEX), target, source)
        xmin, ymin, xmax, ymax = window
        lon, lat = _to_wgs84(self._crs_wkt).transform((xmin + xmax) / 2, (ymin + ymax) / 2)
        sample["region"] = region_index(self.scene.region, self.region_codes)
        sample["location"] = torch.tensor([lat, lon], dtype=torch.float32)
        sample["crs"] = self.scene.crs
        sample["bounds"] = torch.tensor([xmin, ymin, xmax, ymax], dtype=torch.float64)
        return sample


class SceneQuery(NamedTuple):
    """A window of one scene of a :class:`SceneCollection`.

    Attributes:
        scene: Index of the scene in the collection.
        x: ``slice(xmin, xmax)`` in the scene's CRS (m).
        y: ``slice(ymin, ymax)`` in the scene's CRS (m).
    """

    scene: int
    x: slice
    y: slice


class SceneCollection(Dataset[dict[str, Any]]):
    """Several :class:`SceneDataset` (possibly in different CRSs), indexed by :class:`SceneQuery`.

    ``len()`` is the number of scenes; windows are chosen by a sampler (see
    :mod:`glaciermap.datamodules.samplers`).

    Args:
        scenes: The scenes, in index order.

    Raises:
        ConfigError: If ``scenes`` is empty or the scenes disagree on channels, target or region codes.
    """

    def __init__(self, scenes: Sequence[SceneDataset]) -> None:
        if not scenes:
            raise ConfigError("no scenes given; expected at least one scene folder")
        first = scenes[0]
        for scene in scenes[1:]:
            if (scene.bands_by_modality, scene.target, scene.region_codes, scene.image_format) != (
                first.bands_by_modality,
                first.target,
                first.region_codes,
                first.image_format,
            ):
                raise ConfigError(
                    f"scene {scene.scene.folder} is read with other bands/target/region codes than "
                    f"{first.scene.folder}; expected one configuration for all scenes of a collection"
                )
        self.scenes = list(scenes)

    def __len__(self) -> int:
        """Number of scenes."""
        return len(self.scenes)

    def __getitem__(self, query: SceneQuery) -> dict[str, Any]:
        """Read the window of one scene.

        Args:
            query: Scene index and window.

        Returns:
            The sample contract (see :class:`SceneDataset`).

        Raises:
            IndexError: If the query is not a :class:`SceneQuery` of this collection.
        """
        if not isinstance(query, tuple) or len(query) != 3 or not isinstance(query[0], int):
            raise IndexError(
                f"query {query!r} is not a SceneQuery(scene, x, y); use a glaciermap scene sampler"
            )
        scene, x, y = query
        if not 0 <= scene < len(self.scenes):
            raise IndexError(
                f"scene index {scene} out of range; the collection has {len(self.scenes)} scenes"
            )
        return self.scenes[scene][(x, y)]


def collate_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch samples: tensors (and dicts of tensors) are stacked, ints become int64 tensors, ``crs`` a list.

    Args:
        samples: Samples of the contract.

    Returns:
        A batch: ``image`` ``(B, C, H, W)`` (or a dict of those), ``mask`` ``(B, H, W)``, ``region`` ``(B,)``,
        ``location`` ``(B, 2)``, ``bounds`` ``(B, 4)``, ``crs`` a list of B CRSs.
    """
    crs = [s["crs"] for s in samples] if samples and "crs" in samples[0] else None
    batch: dict[str, Any] = default_collate([{k: v for k, v in s.items() if k != "crs"} for s in samples])
    if crs is not None:
        batch["crs"] = crs
    return batch
