"""The GlaViTU tile benchmark: the authors' published HDF5 tiles, read as a torchgeo-style dataset.

Layout (GlaViTU reference notes 4.2; GlaViTU paper, "Data": non-overlapping ~10x10 km tiles, 11 regions,
three tracks)::

    <file>.hdf5
      <tile>                 group per tile, e.g. "ALP-28-23"
        optical      (H, W, 6) float   blue, green, red, nir, swir1, swir2       (all tracks)
        dem          (H, W, 2) float   elevation, slope                          (all tracks)
        outlines     (H, W, 2)         one-hot [non-glacier, glacier]            (all tracks)
        thermal      (H, W, 1)         thermal-infrared                          (thermal track)
        co_pol_sar   (H, W, 2)         co-pol backscatter, asc / desc            (InSAR track)
        cross_pol_sar(H, W, 2)         cross-pol backscatter, asc / desc         (InSAR track)
        in_sar       (H, W, 2)         coherence, asc / desc                     (InSAR track)
        attrs: region, subregion, height, width (padded), padding_height, padding_width,
               original_height, original_width, xmin, xmax, ymin, ymax (degrees)

Arrays are stored **already padded and normalised** with the reference normalisation (GlaViTU reference
notes 4.4: min-max with the published constants, SAR backscatter converted with ``log10(sigma0 + 1e-6)``
first), so they are read as stored; :attr:`GlacierTileBenchmark.norm` reports that normalisation (method
``"reference"``, :func:`~glaciermap.transforms.normalisation.reference_norm_stats`) so that checkpoints carry
it and scenes mapped later (linear sigma0 on disk) get the same log10 + min-max. Samples follow the
glaciermap sample contract (``image`` float32 CHW or a per-modality dict, ``mask`` int64 HW, ``region``,
``location``), so the segmentation task takes them unchanged. Feature groups map to the canonical modality
keys ``optical``, ``dem``, ``thermal``, ``sar`` (co_pol_sar), ``sar_cross`` (cross_pol_sar) and ``insar``
(in_sar).

Epoch definition (GlaViTU reference notes 3.3): ``n_patches = sum over tiles of floor(H/p) * floor(W/p)``
(padded sizes); a training epoch has ``floor(n_patches / batch_size) * 4`` steps of random patches (a tile
drawn uniformly, then a uniform top-left corner in ``[0, H - p)``); validation reads the disjoint windows
row-major. See :func:`disjoint_patch_count` and :func:`reference_epoch_steps`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import h5py
import numpy as np
import torch
from torch import Tensor
from torchgeo.datasets import NonGeoDataset

from glaciermap.constants import IGNORE_INDEX
from glaciermap.datasets.scene import ImageFormat, region_index
from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.normalisation import NormStats, reference_norm_stats

Track = Literal["optical_dem", "thermal", "insar"]
"""The benchmark's tracks (GlaViTU paper, "Data"): Optical+DEM, Optical+DEM+thermal, Optical+DEM+InSAR."""

Mode = Literal["random", "grid"]
"""``"random"``: the reference training sampler; ``"grid"``: disjoint windows, row-major (validation, test)."""

TRACK_FEATURES: Final[dict[str, tuple[str, ...]]] = {
    "optical_dem": ("optical", "dem"),
    "thermal": ("optical", "dem", "thermal"),
    "insar": ("optical", "dem", "co_pol_sar", "cross_pol_sar", "in_sar"),
}
"""HDF5 feature groups read by each track, in branch order."""

FEATURE_MODALITY: Final[dict[str, str]] = {
    "optical": "optical",
    "dem": "dem",
    "thermal": "thermal",
    "co_pol_sar": "sar",
    "cross_pol_sar": "sar_cross",
    "in_sar": "insar",
}
"""HDF5 feature group -> canonical modality key of the samples (``glaciermap.constants.MODALITIES``)."""

FEATURE_CHANNELS: Final[dict[str, int]] = {
    "optical": 6,
    "dem": 2,
    "thermal": 1,
    "co_pol_sar": 2,
    "cross_pol_sar": 2,
    "in_sar": 2,
}
"""Channels of each feature group (GlaViTU reference notes 1.2)."""

OUTLINES: Final[str] = "outlines"
"""Name of the reference-mask dataset of a tile (one-hot, last channel = glacier)."""

LENGTH_FACTOR: Final[int] = 4
"""Random patches per epoch as a multiple of the disjoint-window count (GlaViTU reference notes 3.3)."""


def disjoint_patch_count(shapes: Sequence[tuple[int, int]], patch_size: int) -> int:
    """Number of disjoint ``patch_size`` windows over tiles (GlaViTU reference notes 3.3, ``n_patches``).

    Args:
        shapes: Padded ``(H, W)`` of each tile (pixels).
        patch_size: Window size (pixels).

    Returns:
        ``sum(floor(H / p) * floor(W / p))``.
    """
    return sum((h // patch_size) * (w // patch_size) for h, w in shapes)


def reference_epoch_steps(n_patches: int, batch_size: int, length_factor: int = LENGTH_FACTOR) -> int:
    """Training steps per epoch of the reference (GlaViTU reference notes 3.3).

    Args:
        n_patches: Disjoint-window count (:func:`disjoint_patch_count`).
        batch_size: Patches per batch (8 in the reference).
        length_factor: Multiple of the disjoint-window count (4 in the reference).

    Returns:
        ``floor(n_patches / batch_size) * length_factor``.

    Raises:
        ConfigError: If ``batch_size`` or ``length_factor`` is not positive.
    """
    if batch_size <= 0 or length_factor <= 0:
        raise ConfigError(
            f"batch_size {batch_size} and length_factor {length_factor} must both be positive integers"
        )
    return (n_patches // batch_size) * length_factor


@dataclass(frozen=True)
class TileInfo:
    """Metadata of one benchmark tile.

    Attributes:
        name: Group name (e.g. ``"ALP-28-23"``).
        region: Region code attribute (e.g. ``"ALP"``).
        subregion: Subregion attribute.
        height: Stored (padded) rows.
        width: Stored (padded) columns.
        bounds: ``(xmin, ymin, xmax, ymax)`` in degrees (lon, lat) of the unpadded tile, or ``None``.
        padding: ``(padding_height, padding_width)``: rows/columns of padding before the data.
        original: ``(original_height, original_width)``, or the stored size where absent.
    """

    name: str
    region: str
    subregion: str
    height: int
    width: int
    bounds: tuple[float, float, float, float] | None
    padding: tuple[int, int]
    original: tuple[int, int]


def _attr_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.size == 1:
        return _attr_str(value.item())
    return str(value)


def _read_tile(path: Path, name: str, group: h5py.Group, features: Sequence[str]) -> TileInfo:
    for required in ("optical", "dem", OUTLINES):
        if required not in group:
            raise InputError(
                f"{path}: tile {name!r} has no {required!r} group; expected optical, dem and outlines in every "
                "tile (GlaViTU reference notes 4.2)"
            )
    shape = group["optical"].shape
    if len(shape) != 3:
        raise InputError(f"{path}: tile {name!r} optical has shape {shape}; expected (H, W, 6)")
    h, w = int(shape[0]), int(shape[1])
    for key in (*features, OUTLINES):
        ds = group[key]
        channels = FEATURE_CHANNELS.get(key, 2)
        if ds.ndim != 3 or ds.shape[:2] != (h, w) or ds.shape[2] != channels:
            raise InputError(
                f"{path}: tile {name!r} {key!r} has shape {ds.shape}; expected ({h}, {w}, {channels})"
            )
    attrs = group.attrs
    if "region" not in attrs:
        raise InputError(f"{path}: tile {name!r} has no 'region' attribute; expected a region code")
    bounds: tuple[float, float, float, float] | None = None
    if all(k in attrs for k in ("xmin", "ymin", "xmax", "ymax")):
        bounds = (
            float(attrs["xmin"]),
            float(attrs["ymin"]),
            float(attrs["xmax"]),
            float(attrs["ymax"]),
        )
    return TileInfo(
        name=name,
        region=_attr_str(attrs["region"]),
        subregion=_attr_str(attrs.get("subregion", "")),
        height=h,
        width=w,
        bounds=bounds,
        padding=(int(attrs.get("padding_height", 0)), int(attrs.get("padding_width", 0))),
        original=(int(attrs.get("original_height", h)), int(attrs.get("original_width", w))),
    )


def _has_track_groups(path: Path, name: str, group: h5py.Group, track: str, features: Sequence[str]) -> bool:
    """Whether a tile holds the track's optional groups (all of them: True; none: False, the tile is left out).

    Raises:
        InputError: If the tile holds only some of them (e.g. an InSAR tile without ``in_sar``).
    """
    optional = [f for f in features if f not in ("optical", "dem")]
    missing = [f for f in optional if f not in group]
    if missing and len(missing) < len(optional):
        present = [f for f in optional if f in group]
        raise InputError(
            f"{path}: tile {name!r} has {', '.join(present)} but no {', '.join(map(repr, missing))} group; "
            f"the {track!r} track needs all of {', '.join(optional)} (a tile with none of them is left out)"
        )
    return not missing


class GlacierTileBenchmark(NonGeoDataset):
    """Tiles of one benchmark HDF5 file (train, val or test subset), filtered by track, region and subregion.

    Items follow the sample contract (``docs/glossary.md``): ``image`` float32 ``(C, H, W)`` (stacked in the
    track's feature order) or ``dict[modality, Tensor]``; ``mask`` int64 ``(H, W)`` = argmax of the one-hot
    ``outlines`` (0 non-glacier, 1 glacier), 255 where the one-hot vector is all zero (the padding);
    ``region`` (index in ``region_codes``, ``len(region_codes)`` when unseen or ``unseen_region``);
    ``location`` float32 ``(lat, lon)`` of the window centre in degrees (interpolated over the tile's bounds;
    NaN where the tile has none); ``tile`` (name) and ``window`` int64 ``(row, col)`` of the top-left pixel.

    Args:
        path: The HDF5 file.
        track: ``"optical_dem"``, ``"thermal"`` or ``"insar"``; tiles without the track's optional feature
            groups (thermal; co_pol_sar, cross_pol_sar, in_sar) are left out (as the reference does), a tile
            with only some of them is an error.
        regions: Keep only tiles whose ``region`` attribute is one of these (default: all).
        subregions: Keep only tiles whose ``subregion`` attribute is one of these (default: all).
        patch_size: Window size in pixels (384 in the reference).
        mode: ``"random"`` (training) or ``"grid"`` (disjoint windows, validation/test).
        batch_size: Batch size used to define the epoch length in ``"random"`` mode (8 in the reference).
        length_factor: Epoch length multiple in ``"random"`` mode (4 in the reference).
        region_codes: Known region codes, in index order (for ``region``).
        unseen_region: Report every sample's region as unseen (``len(region_codes)``): validation of
            region-encoding models with the "unknown" region.
        image_format: ``"stacked"`` or ``"per_modality"``.
        seed: Seed of the random windows; item ``i`` of epoch ``e`` is the same in every run and worker.

    Raises:
        ConfigError: If an option is invalid.
        InputError: If the file is missing or not HDF5, a tile lacks optical/dem/outlines or some of the
            track's groups, a feature has the wrong shape, no tile is left after filtering, or a kept tile is
            smaller than ``patch_size``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        track: Track = "optical_dem",
        regions: Sequence[str] | None = None,
        subregions: Sequence[str] | None = None,
        patch_size: int = 384,
        mode: Mode = "random",
        batch_size: int = 8,
        length_factor: int = LENGTH_FACTOR,
        region_codes: Sequence[str] = (),
        unseen_region: bool = False,
        image_format: ImageFormat = "stacked",
        seed: int = 0,
    ) -> None:
        if track not in TRACK_FEATURES:
            raise ConfigError(f"track is {track!r}; expected one of {', '.join(TRACK_FEATURES)}")
        if mode not in ("random", "grid"):
            raise ConfigError(f"mode is {mode!r}; expected 'random' or 'grid'")
        if image_format not in ("stacked", "per_modality"):
            raise ConfigError(f"image_format is {image_format!r}; expected 'stacked' or 'per_modality'")
        if patch_size <= 0:
            raise ConfigError(f"patch_size is {patch_size}; expected a positive number of pixels")
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: file not found; expected a GlaViTU benchmark HDF5 file")
        self.track: Track = track
        self.features = TRACK_FEATURES[track]
        self.patch_size = patch_size
        self.mode: Mode = mode
        self.batch_size = batch_size
        self.length_factor = length_factor
        self.region_codes = tuple(region_codes)
        self.unseen_region = unseen_region
        self.image_format: ImageFormat = image_format
        self.seed = seed
        self.epoch = 0
        self._file: h5py.File | None = None

        self.tiles = self._scan_tiles(regions, subregions)
        self.n_patches = disjoint_patch_count([(t.height, t.width) for t in self.tiles], patch_size)
        self._grid: list[tuple[int, int, int]] = [
            (i, r * patch_size, c * patch_size)
            for i, t in enumerate(self.tiles)
            for r in range(t.height // patch_size)
            for c in range(t.width // patch_size)
        ]
        self.norm: NormStats = reference_norm_stats([FEATURE_MODALITY[f] for f in self.features])
        """The reference normalisation the stored arrays went through (the track's modalities)."""

    def _scan_tiles(self, regions: Sequence[str] | None, subregions: Sequence[str] | None) -> list[TileInfo]:
        """Read the metadata of the file's tiles that have the track's groups and pass the filters.

        Raises:
            InputError: If the file is not HDF5, a tile is malformed or smaller than the patch, or none is left.
        """
        tiles: list[TileInfo] = []
        try:
            with h5py.File(self.path, "r") as f:
                for name in sorted(f.keys()):
                    group = f[name]
                    if not isinstance(group, h5py.Group):
                        continue
                    if not _has_track_groups(self.path, name, group, self.track, self.features):
                        continue  # the reference leaves out tiles without the track's optional groups
                    info = _read_tile(self.path, name, group, self.features)
                    if regions is not None and info.region not in regions:
                        continue
                    if subregions is not None and info.subregion not in subregions:
                        continue
                    tiles.append(info)
        except OSError as err:
            raise InputError(
                f"{self.path}: not a readable HDF5 file ({err}); expected benchmark tiles"
            ) from None
        if not tiles:
            raise InputError(
                f"{self.path}: no tile has the {self.track!r} track's groups ({', '.join(self.features)})"
                f"{'' if regions is None else f' in regions {list(regions)}'}"
                f"{'' if subregions is None else f' in subregions {list(subregions)}'}; expected at least one"
            )
        p = self.patch_size
        for tile in tiles:
            if tile.height < p or tile.width < p:
                raise InputError(
                    f"{self.path}: tile {tile.name!r} is {tile.height}x{tile.width} px, smaller than the "
                    f"{p} px patch; expected tiles of at least {p} px a side"
                )
        return tiles

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: the reference definition in ``"random"`` mode, ``ceil(n/batch)`` in ``"grid"``."""
        if self.mode == "random":
            return reference_epoch_steps(self.n_patches, self.batch_size, self.length_factor)
        return math.ceil(len(self._grid) / max(1, self.batch_size))

    @property
    def num_channels(self) -> int:
        """Image channels of the track (all feature groups together)."""
        return sum(FEATURE_CHANNELS[f] for f in self.features)

    def set_epoch(self, epoch: int) -> None:
        """Select the random windows of another epoch (``"random"`` mode).

        Args:
            epoch: Epoch number.
        """
        self.epoch = epoch

    def __len__(self) -> int:
        """Samples per epoch: ``steps_per_epoch * batch_size`` (random) or the disjoint-window count (grid)."""
        if self.mode == "random":
            return self.steps_per_epoch * self.batch_size
        return len(self._grid)

    def window(self, index: int, epoch: int | None = None) -> tuple[int, int, int]:
        """``(tile index, row, col)`` of item ``index`` (top-left pixel of the window).

        Args:
            index: Item index.
            epoch: Epoch of the random windows (default: the one set by :meth:`set_epoch`).

        Returns:
            The tile index into :attr:`tiles` and the window's top-left row and column.

        Raises:
            IndexError: If ``index`` is out of range.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        if self.mode == "grid":
            return self._grid[index]
        gen = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, index])
        t = int(gen.integers(len(self.tiles)))
        tile = self.tiles[t]
        p = self.patch_size
        row = int(gen.integers(tile.height - p)) if tile.height > p else 0
        col = int(gen.integers(tile.width - p)) if tile.width > p else 0
        return t, row, col

    def _h5(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        """Drop the open HDF5 handle when pickled (DataLoader workers open their own)."""
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def _location(self, tile: TileInfo, row: int, col: int) -> Tensor:
        if tile.bounds is None:
            return torch.tensor([math.nan, math.nan], dtype=torch.float32)
        xmin, ymin, xmax, ymax = tile.bounds
        oh, ow = tile.original
        cy = row + self.patch_size / 2 - tile.padding[0]
        cx = col + self.patch_size / 2 - tile.padding[1]
        lat = ymax - (ymax - ymin) * cy / max(oh, 1)
        lon = xmin + (xmax - xmin) * cx / max(ow, 1)
        return torch.tensor([lat, lon], dtype=torch.float32)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """Read one window.

        Args:
            index: Item index, or ``(epoch, index)`` (what
                :class:`~glaciermap.datamodules.tile_benchmark.TileEpochSampler` yields, so that DataLoader
                workers need no epoch state).

        Returns:
            The sample (see the class docstring).
        """
        t, row, col = self.window(index[1], index[0]) if isinstance(index, tuple) else self.window(index)
        tile = self.tiles[t]
        p = self.patch_size
        group = self._h5()[tile.name]
        images: dict[str, Tensor] = {}
        for feature in self.features:
            data = np.asarray(group[feature][row : row + p, col : col + p, :], dtype=np.float32)
            images[FEATURE_MODALITY[feature]] = torch.from_numpy(
                np.ascontiguousarray(data.transpose(2, 0, 1))
            )
        onehot = np.asarray(group[OUTLINES][row : row + p, col : col + p, :])
        mask = np.argmax(onehot, axis=-1).astype(np.int64)
        mask[onehot.max(axis=-1) <= 0] = IGNORE_INDEX
        sample: dict[str, Any] = {
            "image": torch.cat(list(images.values()), 0) if self.image_format == "stacked" else images,
            "mask": torch.from_numpy(mask),
            "region": len(self.region_codes)
            if self.unseen_region
            else region_index(tile.region, self.region_codes),
            "location": self._location(tile, row, col),
            "tile": tile.name,
            "window": torch.tensor([row, col], dtype=torch.int64),
        }
        return sample
