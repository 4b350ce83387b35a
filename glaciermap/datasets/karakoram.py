"""The Karakoram ZY-3 inputs: pan-sharpened multispectral, LST, slope and 3-class labels on one 2 m grid.

Karakoram paper Sec. 3.1 and 3.3.1: the U-Net+CBAM model takes pan-sharpened ZY-3 multispectral bands (2 m;
blue, green, red, NIR) with Landsat-8 land-surface temperature (LST, K) and ZY-3-DEM slope (degrees) aligned
to the 2 m grid, and predicts background / clean ice / debris-covered ice. Each input is one torchgeo
:class:`~torchgeo.datasets.RasterDataset` (:class:`ZY3Multispectral`, :class:`KarakoramLST`,
:class:`KarakoramSlope`, :class:`KarakoramLabels`); :class:`KarakoramZY3` checks that they share one grid
and joins them into the glaciermap sample contract, channels ordered as the ``karakoram_unet_cbam`` recipe
reads them: ``optical`` (blue, green, red, nir), ``thermal`` (LST), ``dem`` (slope).

Files of a Karakoram folder (names matched by glob, so ``ZY3_..._ms.tif`` works too)::

    *ms.tif      4 bands reflectance (blue, green, red, nir), float, pan-sharpened 2 m
    *lst.tif     1 band  LST in K
    *slope.tif   1 band  slope in degrees
    *labels.tif  1 band  uint8 0 background, 1 clean ice, 2 debris-covered ice, 255 nodata (optional)

Use :mod:`glaciermap.prepare.karakoram` to make LST and pan-sharpened bands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import pandas as pd
import shapely
import torch
from geopandas import GeoDataFrame
from pyproj import CRS
from torch import Tensor
from torchgeo.datasets import GeoDataset, RasterDataset

from glaciermap.constants import IGNORE_INDEX
from glaciermap.datasets.scene import ImageFormat, Target, map_labels
from glaciermap.datasets.scene_folder import (
    RasterInfo,
    SceneInfo,
    _check_same_grid,
    inspect_raster,
    invalid_pixels,
)
from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.normalisation import Normalize, NormMethod, NormStats, RunningStats

KARAKORAM_BANDS: Final[dict[str, tuple[str, ...]]] = {
    "optical": ("blue", "green", "red", "nir"),
    "thermal": ("thermal",),
    "dem": ("slope",),
}
"""Modalities and bands of the Karakoram model input, in channel order (Karakoram paper Sec. 3.3.1)."""


class KarakoramRaster(RasterDataset):
    """Base class of the Karakoram input rasters (one file each)."""

    modality: ClassVar[str]
    what: ClassVar[str]


class ZY3Multispectral(KarakoramRaster):
    """Pan-sharpened ZY-3 multispectral reflectance, 2 m: blue, green, red, nir (Karakoram paper Sec. 3.1)."""

    modality = "optical"
    what = "4 bands blue, green, red, nir (pan-sharpened ZY-3 reflectance)"
    filename_glob = "*ms.tif"
    all_bands = KARAKORAM_BANDS["optical"]
    rgb_bands = ("red", "green", "blue")


class KarakoramLST(KarakoramRaster):
    """Landsat-8 land-surface temperature (K) resampled to the 2 m grid (Karakoram paper Sec. 3.1)."""

    modality = "thermal"
    what = "1 band land-surface temperature (K)"
    filename_glob = "*lst.tif"
    all_bands = KARAKORAM_BANDS["thermal"]


class KarakoramSlope(KarakoramRaster):
    """Slope (degrees) from the 4 m ZY-3 DEM resampled to the 2 m grid (Karakoram paper Sec. 3.2)."""

    modality = "dem"
    what = "1 band slope (degrees)"
    filename_glob = "*slope.tif"
    all_bands = KARAKORAM_BANDS["dem"]


class KarakoramLabels(RasterDataset):
    """Manually delineated labels: 0 background, 1 clean ice, 2 debris-covered ice, 255 nodata."""

    filename_glob = "*labels.tif"
    is_image = False


RASTER_CLASSES: Final[tuple[type[KarakoramRaster], ...]] = (ZY3Multispectral, KarakoramLST, KarakoramSlope)

_RANGES: Final[dict[str, tuple[float, float, str]]] = {
    "thermal": (150.0, 350.0, "K (not degrees Celsius)"),
    "dem": (0.0, 90.0, "degrees"),
}


def _find(folder: Path, pattern: str, what: str, required: bool) -> Path | None:
    found = sorted(folder.glob(pattern))
    if len(found) > 1:
        raise InputError(f"{folder}: {len(found)} files match {pattern!r}; expected one file with {what}")
    if not found:
        if required:
            raise InputError(f"{folder}: no file matches {pattern!r}; expected one GeoTIFF with {what}")
        return None
    return found[0]


class KarakoramZY3(GeoDataset):
    """ZY-3 multispectral + LST + slope (+ labels) of one Karakoram folder, joined on their shared 2 m grid.

    A query ``(slice(xmin, xmax), slice(ymin, ymax))`` in the grid's CRS returns ``image`` (float32
    ``(6, H, W)`` stacked optical, thermal, dem or a per-modality dict), ``mask`` (int64 ``(H, W)``; 255
    where the label is 255 or any input is nodata), ``crs`` and ``bounds``.

    Args:
        folder: The folder with the rasters (see the module docstring).
        target: ``"classes"`` (the paper's three classes), ``"binary"``, or ``None`` to read no labels.
        norm: Statistics of the three modalities (bands as in :data:`KARAKORAM_BANDS`), or ``None``.
        image_format: ``"stacked"`` or ``"per_modality"``.
        check_ranges: Check LST and slope units on a decimated read (LST in K, slope in degrees).

    Raises:
        ConfigError: If an option is invalid.
        InputError: If a raster is missing, has the wrong band count, is in other units, or is not on the
            multispectral grid (CRS, transform, shape).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        target: Target | None = "classes",
        norm: NormStats | None = None,
        image_format: ImageFormat = "stacked",
        check_ranges: bool = True,
    ) -> None:
        if target not in ("binary", "classes", None):
            raise ConfigError(f"target is {target!r}; expected 'binary', 'classes' or None")
        if image_format not in ("stacked", "per_modality"):
            raise ConfigError(f"image_format is {image_format!r}; expected 'stacked' or 'per_modality'")
        root = Path(folder)
        if not root.is_dir():
            raise InputError(
                f"{root}: folder not found; expected a folder with *ms.tif, *lst.tif, *slope.tif"
            )
        self.infos: dict[str, RasterInfo] = {}
        for cls in RASTER_CLASSES:
            path = _find(root, cls.filename_glob, cls.what, True)
            assert path is not None
            self.infos[cls.modality] = inspect_raster(path, cls.what, count=len(cls.all_bands), names=None)
        label_path = _find(root, KarakoramLabels.filename_glob, "uint8 labels", target is not None)
        if label_path is not None and target is not None:
            self.infos["labels"] = inspect_raster(label_path, "1 band uint8 labels", count=1, names=None)
        reference = self.infos["optical"]
        for info in self.infos.values():
            _check_same_grid(reference, info)
        if check_ranges:
            self._check_ranges()
        self.target = target
        self.image_format: ImageFormat = image_format
        self.norm = norm.select(KARAKORAM_BANDS) if norm is not None else None
        self.normalizers = (
            {m: Normalize(s, self.norm.method) for m, s in self.norm.modalities.items()} if self.norm else {}
        )
        self.crs_ = CRS.from_wkt(reference.crs_wkt)
        res = (reference.transform.a, -reference.transform.e)
        self.rasters: dict[str, RasterDataset] = {
            cls.modality: cls(paths=str(self.infos[cls.modality].path), crs=self.crs_, res=res)
            for cls in RASTER_CLASSES
        }
        if "labels" in self.infos:
            self.rasters["labels"] = KarakoramLabels(
                paths=str(self.infos["labels"].path), crs=self.crs_, res=res
            )
        self.bounds_ = reference.bounds
        self.index = GeoDataFrame(
            {"filepath": [str(root)]},
            index=pd.IntervalIndex.from_tuples(
                [(pd.Timestamp.min, pd.Timestamp.max)], closed="both", name="datetime"
            ),
            geometry=[shapely.box(*self.bounds_)],
            crs=self.crs_,
        )
        self._res = res
        self.scene = self._scene_info(root, reference)
        """The folder as a scene (grid, size, bounds), what the window samplers of the data modules read."""

    def _scene_info(self, root: Path, reference: RasterInfo) -> SceneInfo:
        """The folder as a :class:`SceneInfo` on the multispectral grid (no region, no year)."""
        return SceneInfo(
            folder=root,
            metadata={},
            region="",
            year=None,
            crs=self.crs_,
            transform=reference.transform,
            height=reference.height,
            width=reference.width,
            rasters=self.infos,
        )

    def _check_ranges(self) -> None:
        import rasterio

        for modality, (lo, hi, unit) in _RANGES.items():
            info = self.infos[modality]
            with rasterio.open(info.path) as src:
                small = src.read(1, out_shape=(min(info.height, 256), min(info.width, 256))).astype("float64")
            ok = ~invalid_pixels(small[None], info.nodata)
            if ok.any():
                vmin, vmax = float(small[ok].min()), float(small[ok].max())
                if vmin < lo or vmax > hi:
                    raise InputError(
                        f"{info.path} has values in [{vmin:g}, {vmax:g}]; expected {unit} in [{lo:g}, {hi:g}]"
                    )

    @property
    def num_channels(self) -> int:
        """Image channels (6: blue, green, red, nir, LST, slope)."""
        return sum(len(b) for b in KARAKORAM_BANDS.values())

    def __getitem__(self, query: Any) -> dict[str, Any]:
        """Read one window.

        Args:
            query: ``(slice(xmin, xmax), slice(ymin, ymax))`` in the grid's CRS (m).

        Returns:
            The sample (see the class docstring).
        """
        geo_query = (query[0], query[1]) if isinstance(query, tuple) else query
        images: dict[str, Tensor] = {}
        invalid: Tensor | None = None
        for modality in KARAKORAM_BANDS:
            data = self.rasters[modality][geo_query]["image"].float()
            bad = torch.from_numpy(invalid_pixels(data.numpy(), self.infos[modality].nodata))
            invalid = bad if invalid is None else invalid | bad
            images[modality] = self.normalizers[modality](data) if modality in self.normalizers else data
        assert invalid is not None
        images = {m: d.masked_fill(invalid, 0.0).contiguous() for m, d in images.items()}
        sample: dict[str, Any] = {
            "image": torch.cat(list(images.values()), 0) if self.image_format == "stacked" else images
        }
        if "labels" in self.rasters and self.target is not None:
            raw = self.rasters["labels"][geo_query]["mask"].long()
            nodata = self.infos["labels"].nodata
            ignore = invalid if nodata is None else invalid | (raw == int(nodata))
            sample["mask"] = map_labels(
                raw.masked_fill(ignore, IGNORE_INDEX), self.target, str(self.infos["labels"].path)
            )
        xs, ys = geo_query[0], geo_query[1]
        sample["crs"] = self.crs_
        sample["bounds"] = torch.tensor([xs.start, ys.start, xs.stop, ys.stop], dtype=torch.float64)
        return sample

    def modalities(self) -> Mapping[str, int]:
        """Channels per modality, the ``in_channels`` of ``unet_cbam`` (``{"optical": 4, "thermal": 1, "dem": 1}``)."""
        return {m: len(b) for m, b in KARAKORAM_BANDS.items()}


def karakoram_stats(
    folders: Sequence[str | Path], method: NormMethod = "zscore", max_side: int = 1024
) -> NormStats:
    """Per-band statistics of the valid pixels of Karakoram folders, from a decimated read of each raster.

    A pixel counts where no input (multispectral, LST, slope) is nodata. Each raster is read at most
    ``max_side`` pixels a side (GDAL nearest-neighbour decimation), so a 2 m scene of any size costs a few MB.

    Args:
        folders: Karakoram folders (see the module docstring).
        method: ``"zscore"`` or ``"minmax"``.
        max_side: Largest side of the decimated read (pixels).

    Returns:
        Statistics of the modalities of :data:`KARAKORAM_BANDS`.

    Raises:
        ConfigError: If no folder is given.
        InputError: If a folder is not a valid Karakoram folder.
    """
    import rasterio

    if not folders:
        raise ConfigError("no Karakoram folders to compute statistics from; expected at least one")
    running = {m: RunningStats(len(b)) for m, b in KARAKORAM_BANDS.items()}
    for folder in folders:
        ds = KarakoramZY3(folder, target=None)
        shape = (min(ds.scene.height, max_side), min(ds.scene.width, max_side))
        arrays = {}
        for modality, info in ds.infos.items():
            with rasterio.open(info.path) as src:
                arrays[modality] = src.read(out_shape=(src.count, *shape)).astype("float32")
        invalid = np.zeros(shape, dtype=bool)
        for modality in KARAKORAM_BANDS:
            invalid |= invalid_pixels(arrays[modality], ds.infos[modality].nodata)
        for modality, stats in running.items():
            stats.update(arrays[modality][:, ~invalid])
    return NormStats({m: s.result(KARAKORAM_BANDS[m]) for m, s in running.items()}, method=method)
