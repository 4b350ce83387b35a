"""torchgeo-style datasets of split-images (GEOCLASS-image v2.0, VarioMLP / ResNet-18 / VarioNet inputs).

* :class:`SplitImageDataset`: the split-images of one scene (single-band raster + split-image index + an
  optional label table), each read by a window from the raster (the scene is never read whole).
* :class:`SplitImageFolder`: the reference's image-folder dataset (one numbered sub-folder per class of
  8-bit grayscale images, reference notes section 9.2).

Both return the split-image sample contract (``docs/glossary.md``)::

    image   float32 (1, H, W)   intensities: float (raster values, e.g. DN or reflectance) or the
                                reference's 8-bit scale 0 ... 255 (``intensity="uint8"``)
    vario   float32 (3 n,)      default vario features [N-S, E-W, diagonal] (reference section 3.1), or
                                (4, n) with ``vario_rows="all"`` for the rotation augmentation
    label   int64 ()            class id (-1 for an unlabelled tile)
    tile_id int64 ()
    crs     pyproj.CRS          (scene datasets only)
    bounds  float64 (4,)        tile (xmin, ymin, xmax, ymax) in that CRS (scene datasets only)

Intensities (reference notes section 2.1): ``"float"`` (default) keeps the raster's values as float32;
``"uint8"`` applies ``ceil(min(255, 255 DN / M))`` with ``M = mean + 4 std`` of a 1/10 subsample of the
whole scene (nodata left out unless ``legacy_stats=True``, which reproduces the reference).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from pyproj import CRS
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from glaciermap.datasets.crevasse_classes import CrevasseClassV1, CrevasseClassV2
from glaciermap.datasets.crevasse_labels import FolderIds, list_image_folder, read_label_table
from glaciermap.datasets.split_index import read_split_index, scale_max_of_raster
from glaciermap.errors import ConfigError, InputError
from glaciermap.io import open_raster
from glaciermap.transforms.vario import DEFAULT_LAG_THRESHOLD, VarioMode, directional_vario, scale_to_uint8

Intensity = Literal["float", "uint8"]
"""Tile intensities: raster values as float32, or the reference's 8-bit scaling (section 2.1)."""

VarioRows = Literal["default", "all"]
"""``"default"``: the flat ``[N-S, E-W, diagonal]`` vector; ``"all"``: the four rows ``(4, n)``."""

Sample = dict[str, Any]


def _vario(image: Tensor, lag_threshold: float, mode: VarioMode, rows: VarioRows, integer: bool) -> Tensor:
    """The vario features of a ``(1, H, W)`` image.

    ``integer``: its values are whole numbers 0-255 (8-bit intensities), passed as uint8 so that the float
    mode takes the exact int8 product path.
    """
    tile = image[0]
    if mode == "legacy_uint8" or integer:
        tile = tile.round().clamp(0, 255).to(torch.uint8)
    v = directional_vario(tile, lag_threshold, mode=mode).to(torch.float32)
    return v if rows == "all" else v[:3].flatten()


class SplitImageDataset(Dataset[Sample]):
    """The split-images of one scene (module docstring for the sample contract).

    Args:
        image: Single-band raster the index was built from.
        index: Split-image index (GeoDataFrame, or ``index.gpkg`` / ``index.csv``).
        labels: Optional label table (CSV path or DataFrame, ``tile_id,label``); with labels, only the
            labelled tiles are items (in index order); without, every tile is an item with label -1.
        scheme: Class scheme of the labels.
        intensity: ``"float"`` or ``"uint8"``.
        scale_max: ``M`` of the 8-bit scaling; computed from the raster when ``None``.
        legacy_stats: Keep nodata in the 8-bit statistics (the reference's behaviour).
        vario: Compute the ``vario`` key.
        vario_rows: ``"default"`` or ``"all"``.
        vario_mode: Vario arithmetic (``"legacy_uint8"`` requires ``intensity="uint8"``).
        lag_threshold: Lag threshold of the vario function.
        transforms: Optional callable applied to each sample dict.

    Raises:
        InputError: For a missing raster, index or label file, a label table naming unknown tiles or classes.
        ConfigError: For ``vario_mode="legacy_uint8"`` with float intensities.
    """

    def __init__(
        self,
        image: str | os.PathLike[str],
        index: str | os.PathLike[str] | gpd.GeoDataFrame,
        labels: str | os.PathLike[str] | pd.DataFrame | None = None,
        scheme: type[CrevasseClassV2] | type[CrevasseClassV1] = CrevasseClassV2,
        intensity: Intensity = "float",
        scale_max: float | None = None,
        legacy_stats: bool = False,
        vario: bool = True,
        vario_rows: VarioRows = "default",
        vario_mode: VarioMode = "float",
        lag_threshold: float = DEFAULT_LAG_THRESHOLD,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        if vario_mode == "legacy_uint8" and intensity != "uint8":
            raise ConfigError(
                "vario_mode 'legacy_uint8': expected intensity 'uint8' (the reference's 8-bit tiles)"
            )
        self.path = Path(image)
        with open_raster(self.path, "panchromatic band") as src:
            self.crs = CRS.from_user_input(src.crs)
            self.transform = src.transform
            self.nodata = src.nodata
        frame = index if isinstance(index, gpd.GeoDataFrame) else read_split_index(index)
        frame = frame.sort_values("tile_id").reset_index(drop=True)
        self.labels: npt.NDArray[np.int64]
        if labels is not None:
            table = read_label_table(labels, scheme)
            known = set(frame["tile_id"].tolist())
            unknown = [t for t in table["tile_id"].tolist() if t not in known]
            if unknown:
                raise InputError(
                    f"label table: tile {unknown[0]} is not in the split-image index (expected its ids)"
                )
            merged = frame.merge(table[["tile_id", "label"]], on="tile_id", how="inner")
            frame = merged
            self.labels = merged["label"].to_numpy(dtype=np.int64)
        else:
            self.labels = np.full(len(frame), -1, dtype=np.int64)
        self.index = frame
        self.scheme = scheme
        self.intensity: Intensity = intensity
        if intensity == "uint8" and scale_max is None:
            scale_max = scale_max_of_raster(self.path, mask_nodata=not legacy_stats)
        self.scale_max = scale_max
        self.vario = vario
        self.vario_rows: VarioRows = vario_rows
        self.vario_mode: VarioMode = vario_mode
        self.lag_threshold = lag_threshold
        self.transforms = transforms
        self._src: Any = None
        self._pid = os.getpid()

    def __len__(self) -> int:
        """Number of split-images."""
        return len(self.index)

    def _read(self, i: int) -> npt.NDArray[Any]:
        if self._src is None or self._pid != os.getpid():  # a forked DataLoader worker opens its own handle
            self._src = open_raster(self.path, "panchromatic band")
            self._pid = os.getpid()
        row = self.index.iloc[i]
        window = Window(int(row["col"]), int(row["row"]), int(row["width"]), int(row["height"]))
        return np.asarray(self._src.read(1, window=window))

    def uint8_tile(self, tile_id: int) -> npt.NDArray[np.uint8]:
        """The 8-bit tile of ``tile_id`` (reference notes section 2.1), e.g. for the image-folder export."""
        matches = np.flatnonzero(self.index["tile_id"].to_numpy() == tile_id)
        if matches.size == 0:
            raise InputError(f"tile {tile_id}: not in the split-image index")
        scale = self.scale_max if self.scale_max is not None else scale_max_of_raster(self.path)
        self.scale_max = scale
        return scale_to_uint8(self._read(int(matches[0])), scale).numpy()

    def __getitem__(self, i: int) -> Sample:
        """The sample of item ``i`` (module docstring)."""
        raw = self._read(i)
        if self.intensity == "uint8":
            assert self.scale_max is not None
            image = scale_to_uint8(raw, self.scale_max).to(torch.float32)[None]
        else:
            image = torch.from_numpy(raw.astype(np.float32))[None]
        row = self.index.iloc[i]
        r, c, h, w = (int(row[k]) for k in ("row", "col", "height", "width"))
        xs, ys = self.transform * (
            np.array([c, c + w], dtype=np.float64),
            np.array([r + h, r], dtype=np.float64),
        )
        sample: Sample = {
            "image": image,
            "label": torch.tensor(int(self.labels[i]), dtype=torch.int64),
            "tile_id": torch.tensor(int(row["tile_id"]), dtype=torch.int64),
            "crs": self.crs,
            "bounds": torch.tensor([min(xs), min(ys), max(xs), max(ys)], dtype=torch.float64),
        }
        if self.vario:
            integer = self.intensity == "uint8"
            sample["vario"] = _vario(image, self.lag_threshold, self.vario_mode, self.vario_rows, integer)
        return self.transforms(sample) if self.transforms is not None else sample

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the open file handle (DataLoader workers reopen it)."""
        state = dict(self.__dict__)
        state["_src"] = None
        return state


class SplitImageFolder(Dataset[Sample]):
    """The reference's image-folder dataset: ``<root>/<class number>/<image>`` (reference notes section 9.2).

    Images are read as single-channel 8-bit (the reference's RGB copies, which triple the vario values,
    reference notes section 2.6, are not reproduced).

    Args:
        root: Folder with one numbered sub-folder per class.
        scheme: Class scheme of the folder numbers.
        folder_ids: ``"scheme"`` ids or the reference's ``"reference"`` ``class_enum`` positions.
        vario: Compute the ``vario`` key.
        vario_rows: ``"default"`` or ``"all"``.
        vario_mode: Vario arithmetic (``"legacy_uint8"`` runs on the 8-bit values).
        lag_threshold: Lag threshold of the vario function.
        transforms: Optional callable applied to each sample dict.

    Raises:
        InputError: For a missing folder, a non-numeric sub-folder or no image (see
            :func:`~glaciermap.datasets.crevasse_labels.list_image_folder`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        scheme: type[CrevasseClassV2] | type[CrevasseClassV1] = CrevasseClassV2,
        folder_ids: FolderIds = "scheme",
        vario: bool = True,
        vario_rows: VarioRows = "default",
        vario_mode: VarioMode = "float",
        lag_threshold: float = DEFAULT_LAG_THRESHOLD,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        self.files = list_image_folder(root, scheme, folder_ids)
        self.scheme = scheme
        self.labels = self.files["label"].to_numpy(dtype=np.int64)
        self.vario = vario
        self.vario_rows: VarioRows = vario_rows
        self.vario_mode: VarioMode = vario_mode
        self.lag_threshold = lag_threshold
        self.transforms = transforms

    def __len__(self) -> int:
        """Number of images."""
        return len(self.files)

    def __getitem__(self, i: int) -> Sample:
        """The sample of image ``i`` (``image``, ``vario``, ``label``, ``tile_id``)."""
        from PIL import Image

        row = self.files.iloc[i]
        with Image.open(row["path"]) as img:
            array = np.asarray(img.convert("L"), dtype=np.float32)
        image = torch.from_numpy(array)[None]
        sample: Sample = {
            "image": image,
            "label": torch.tensor(int(row["label"]), dtype=torch.int64),
            "tile_id": torch.tensor(int(row["tile_id"]), dtype=torch.int64),
        }
        if self.vario:
            sample["vario"] = _vario(
                image, self.lag_threshold, self.vario_mode, self.vario_rows, integer=True
            )
        return self.transforms(sample) if self.transforms is not None else sample


def collate_split_images(samples: Sequence[Sample]) -> Sample:
    """Batch samples: tensors stacked, ``crs`` kept as a list."""
    crs = [s["crs"] for s in samples] if samples and "crs" in samples[0] else None
    batch: Sample = default_collate([{k: v for k, v in s.items() if k != "crs"} for s in samples])
    if crs is not None:
        batch["crs"] = crs
    return batch
