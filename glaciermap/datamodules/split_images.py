"""A LightningDataModule over labelled split-images (scene + index + label table, or an image folder).

The labelled split-images are divided into train / validation / test subsets **per class** (stratified)
with a seeded generator, so every run and every model sees the same subsets (the reference draws an unseeded
80/20 split and saves the indices, reference notes section 7; here the seed fixes them). Validation and
test samples carry the default vario feature vector ``[N-S, E-W, diagonal]``; with ``rotate_vario=True`` the
training samples get the rotation augmentation of reference notes section 3.3, redrawn on every access.

Sources: ``root`` (a folder written by ``glaciermap synth-crevasses``: ``pan.tif``, ``index.gpkg``,
``labels.csv``), or ``image`` + ``index`` + ``labels`` explicitly, or ``folder`` (the reference's
image-folder layout, :class:`~glaciermap.datasets.split_images.SplitImageFolder`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from glaciermap.datasets.split_images import (
    Intensity,
    Sample,
    SplitImageDataset,
    SplitImageFolder,
    collate_split_images,
)
from glaciermap.errors import ConfigError
from glaciermap.transforms.vario import DEFAULT_LAG_THRESHOLD, ROTATIONS, VarioMode, vario_features


def stratified_split(
    labels: Sequence[int] | npt.NDArray[np.int64], fractions: Sequence[float], seed: int = 0
) -> list[npt.NDArray[np.int64]]:
    """Seeded, per-class split of item indices into subsets of the given fractions.

    Each class is shuffled with the seed and cut at ``rint(cumulative fraction x class size)`` (halves round
    to even), so every subset holds about its fraction of every class.

    Args:
        labels: Class id of every item.
        fractions: Fraction of each subset (e.g. ``(0.7, 0.15, 0.15)``), non-negative, summing to 1.
        seed: Random seed.

    Returns:
        One sorted index array per subset; together they cover every item exactly once.

    Raises:
        ConfigError: If the fractions are negative or do not sum to 1.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if (f < 0).any() or abs(f.sum() - 1.0) > 1e-6:
        raise ConfigError(f"split fractions {tuple(fractions)}: expected non-negative fractions summing to 1")
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    parts: list[list[npt.NDArray[np.int64]]] = [[] for _ in f]
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        cuts = np.rint(np.cumsum(f)[:-1] * len(members)).astype(np.int64)
        for k, chunk in enumerate(np.split(members, cuts)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]


class _Rotated(Dataset[Sample]):
    """A subset whose ``vario`` (4, n) becomes the flat vector: randomly rotated (training) or default."""

    def __init__(self, base: Subset[Sample], rotate: bool, seed: int) -> None:
        self.base = base
        self.rotate = rotate
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Sample:
        sample = dict(self.base[i])
        if "vario" in sample:
            choice = int(torch.randint(4, (1,), generator=self.generator).item()) if self.rotate else 0
            sample["vario"] = vario_features(sample["vario"], ROTATIONS[choice])
        return sample


class SplitImageDataModule(L.LightningDataModule):
    """Train / validation / test split-images for crevasse classification (module docstring).

    Args:
        root: Folder of the synthetic crevasse world (``pan.tif``, ``index.gpkg``, ``labels.csv``).
        image: Panchromatic raster (instead of ``root``).
        index: Split-image index (instead of ``root``).
        labels: Label table (instead of ``root``).
        folder: Image-folder dataset (instead of a scene).
        fractions: Train, validation and test fractions (stratified per class).
        seed: Seed of the split and of the rotation draws.
        batch_size: Training batch size (validation and test use the same).
        num_workers: DataLoader workers.
        intensity: ``"float"`` or ``"uint8"`` (scene sources; folders are 8-bit).
        vario_mode: Vario arithmetic (``"float"`` or ``"legacy_uint8"``).
        lag_threshold: Lag threshold of the vario function.
        rotate_vario: Rotation augmentation of the training vario vectors (reference notes section 3.3).

    Raises:
        ConfigError: If no source or more than one is given, or for invalid fractions.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        image: str | os.PathLike[str] | None = None,
        index: str | os.PathLike[str] | None = None,
        labels: str | os.PathLike[str] | None = None,
        folder: str | os.PathLike[str] | None = None,
        fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 0,
        intensity: Intensity = "float",
        vario_mode: VarioMode = "float",
        lag_threshold: float = DEFAULT_LAG_THRESHOLD,
        rotate_vario: bool = False,
    ) -> None:
        super().__init__()
        sources = [
            root is not None,
            image is not None or index is not None or labels is not None,
            folder is not None,
        ]
        if sum(sources) != 1:
            raise ConfigError(
                "split-image data module: expected exactly one of root, image/index/labels or folder"
            )
        if root is not None:
            base = Path(root)
            image, index, labels = base / "pan.tif", base / "index.gpkg", base / "labels.csv"
        elif folder is None and (image is None or index is None or labels is None):
            raise ConfigError("split-image data module: image, index and labels must be given together")
        stratified_split([0], fractions)  # validates the fractions early
        self.image, self.index, self.labels, self.folder = image, index, labels, folder
        self.fractions = fractions
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.intensity: Intensity = intensity
        self.vario_mode: VarioMode = vario_mode
        self.lag_threshold = lag_threshold
        self.rotate_vario = rotate_vario
        self.dataset: SplitImageDataset | SplitImageFolder | None = None
        self.subsets: dict[str, Dataset[Sample]] = {}

    def setup(self, stage: str | None = None) -> None:
        """Open the dataset and draw the stratified subsets (once).

        Args:
            stage: Lightning stage (unused: all subsets are made together).
        """
        if self.dataset is not None:
            return
        common: dict[str, Any] = {
            "vario_rows": "all",
            "vario_mode": self.vario_mode,
            "lag_threshold": self.lag_threshold,
        }
        if self.folder is not None:
            self.dataset = SplitImageFolder(self.folder, **common)
        else:
            assert self.image is not None and self.index is not None
            self.dataset = SplitImageDataset(
                self.image, self.index, labels=self.labels, intensity=self.intensity, **common
            )
        parts = stratified_split(self.dataset.labels, self.fractions, self.seed)
        for k, (name, idx) in enumerate(zip(("train", "val", "test"), parts, strict=True)):
            subset = Subset(self.dataset, idx.tolist())
            self.subsets[name] = _Rotated(
                subset, rotate=self.rotate_vario and name == "train", seed=self.seed + k
            )

    @property
    def num_classes(self) -> int:
        """Number of classes of the scheme (11 for the v2 scheme)."""
        assert self.dataset is not None
        return len(self.dataset.scheme)

    def _loader(self, name: str, shuffle: bool) -> DataLoader[Sample]:
        if name not in self.subsets:
            self.setup()
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.subsets[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_split_images,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader[Sample]:
        """Shuffled training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Sample]:
        """Validation batches."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[Sample]:
        """Test batches."""
        return self._loader("test", shuffle=False)
