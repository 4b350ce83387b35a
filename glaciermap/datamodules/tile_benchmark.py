"""LightningDataModule over the GlaViTU tile benchmark (the authors' HDF5 train / val / test files).

GlaViTU paper, "Data"; GlaViTU reference notes 3.3 and 4.2. Training reads random windows with the authors'
epoch definition (``floor(n_patches / batch_size) * 4`` steps, :func:`reference_epoch_steps`); validation and
test read the disjoint windows row-major. The stored arrays are already normalised with the reference
normalisation (min-max with the published constants, SAR backscatter in log10; reference notes 4.4), so they
are read as stored and that normalisation is what the checkpoint keeps (method ``"reference"``,
:func:`~glaciermap.transforms.normalisation.reference_norm_stats`): a scene mapped later with the checkpoint
(linear sigma0 on disk) goes through the same log10 + min-max.

All three tracks of the paper are served: ``optical_dem``, ``thermal`` and ``insar`` (optical, dem and the three
2-channel SAR branches ``sar`` (co-pol backscatter), ``sar_cross`` (cross-pol backscatter) and ``insar``
(coherence), as in the authors' InSAR-track GlaViTU).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from glaciermap.constants import Modality
from glaciermap.datamodules.scenes import SceneDataModule, Split, worker_init
from glaciermap.datasets.scene import ImageFormat, SceneCollection, Target, collate_samples
from glaciermap.datasets.scene_folder import SceneInfo
from glaciermap.datasets.tile_benchmark import (
    LENGTH_FACTOR,
    GlacierTileBenchmark,
    Track,
    reference_epoch_steps,
)
from glaciermap.distributed import rank_and_world_size
from glaciermap.errors import ConfigError
from glaciermap.transforms.normalisation import reference_norm_stats
from glaciermap.transforms.reference import reference_band_names

TRACK_MODALITIES: Final[dict[str, tuple[Modality, ...]]] = {
    "optical_dem": ("optical", "dem"),
    "thermal": ("optical", "dem", "thermal"),
    "insar": ("optical", "dem", "sar", "sar_cross", "insar"),
}
"""Modalities of each track, in branch order (the HDF5 groups ``co_pol_sar``, ``cross_pol_sar``, ``in_sar`` are
``sar``, ``sar_cross``, ``insar``)."""


class TileEpochSampler(DistributedSampler[tuple[int, int]]):
    """This rank's ``(epoch, index)`` items of a :class:`GlacierTileBenchmark` epoch.

    The epoch travels with each item, so DataLoader workers (persistent or not) read the epoch's random
    windows without shared state. Items ``rank::world_size``; with ``pad=True`` every rank gets
    ``ceil(len / world_size)`` items (wrapping to the start), which keeps ranks in step.

    Args:
        dataset: The benchmark subset.
        rank: This process's rank (default: from ``torch.distributed`` or the environment).
        world_size: Number of processes (default: likewise).
        pad: Make all shards the same length (training).

    Raises:
        ConfigError: If ``rank`` is not in ``[0, world_size)``.
    """

    def __init__(
        self,
        dataset: GlacierTileBenchmark,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        pad: bool = True,
    ) -> None:
        default_rank, default_size = rank_and_world_size()
        rank = default_rank if rank is None else rank
        world_size = default_size if world_size is None else world_size
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} with world_size {world_size}; expected 0 <= rank < world_size")
        # a DistributedSampler, so that Lightning does not wrap it in another one
        sized = cast("Dataset[tuple[int, int]]", dataset)
        super().__init__(sized, num_replicas=world_size, rank=rank, shuffle=pad, seed=0, drop_last=False)
        self.world_size = world_size
        self.total = len(dataset)
        self.pad = pad

    def __len__(self) -> int:
        """Items this rank yields per epoch."""
        if self.pad:
            return math.ceil(self.total / self.world_size)
        return len(range(self.rank, self.total, self.world_size))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Yield ``(epoch, index)`` of this rank's items."""
        count = math.ceil(self.total / self.world_size) * self.world_size if self.pad else self.total
        for i in range(self.rank, count, self.world_size):
            yield self.epoch, i % self.total


def _check_track(
    track: str,
    modalities: Sequence[str] | None,
    bands: Mapping[str, Sequence[str]] | None,
    target: str,
    length_factor: int,
) -> tuple[tuple[Modality, ...], dict[str, list[str]]]:
    """The track's modalities and bands, after checking the options against them."""
    if track not in TRACK_MODALITIES:
        raise ConfigError(f"track is {track!r}; expected one of {', '.join(TRACK_MODALITIES)}")
    expected = TRACK_MODALITIES[track]
    if modalities is not None and tuple(modalities) != expected:
        raise ConfigError(f"modalities are {list(modalities)}; the {track!r} track holds {list(expected)}")
    names: dict[str, list[str]] = {m: list(reference_band_names(m)) for m in expected}
    if bands is not None and any(list(b) != names.get(m) for m, b in bands.items()):
        raise ConfigError(f"bands are {dict(bands)}; the {track!r} track holds {names} (leave bands unset)")
    if target != "binary":
        raise ConfigError(f"target is {target!r}; the tile benchmark labels glacier / non-glacier ('binary')")
    if length_factor <= 0:
        raise ConfigError(f"length_factor is {length_factor}; expected a positive integer")
    return expected, names


class TileBenchmarkDataModule(SceneDataModule):
    """The GlaViTU tile benchmark for training, validation and test (GlaViTU reference notes 3.3 and 4.2).

    Args:
        train_path: HDF5 file of the training tiles.
        val_path: HDF5 file of the validation tiles.
        test_path: HDF5 file of the test tiles.
        track: ``"optical_dem"``, ``"thermal"`` or ``"insar"`` (see :data:`TRACK_MODALITIES`).
        regions: Keep only tiles of these region codes (default: all).
        subregions: Keep only tiles of these subregions (default: all).
        modalities: The track's modalities (default; kept as an argument so that the CLI links it to the task).
        bands: ``None`` (all of the track's bands).
        target: ``"binary"`` (the benchmark labels glacier / non-glacier).
        patch_size: Window size in pixels (384 in the reference).
        batch_size: Windows per batch (8 in the reference); also defines the epoch length.
        length_factor: Epoch length multiple (4 in the reference).
        num_workers: DataLoader worker processes.
        region_codes: Known region codes in index order (default: sorted regions of the training tiles).
        image_format: ``"stacked"`` or ``"per_modality"``.
        seed: Seed of the random windows (default: ``PL_GLOBAL_SEED``).
        pin_memory: Pin batches in page-locked memory.

    Raises:
        ConfigError: If an option is invalid.
    """

    def __init__(
        self,
        train_path: str | Path | None = None,
        val_path: str | Path | None = None,
        test_path: str | Path | None = None,
        track: Track = "optical_dem",
        regions: Sequence[str] | None = None,
        subregions: Sequence[str] | None = None,
        modalities: Sequence[Modality] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        target: Target = "binary",
        patch_size: int = 384,
        batch_size: int = 8,
        length_factor: int = LENGTH_FACTOR,
        num_workers: int = 0,
        region_codes: Sequence[str] | None = None,
        image_format: ImageFormat = "stacked",
        seed: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        expected, names = _check_track(track, modalities, bands, target, length_factor)
        super().__init__(
            modalities=expected,
            bands=names,
            target="binary",
            patch_size=patch_size,
            batch_size=batch_size,
            num_workers=num_workers,
            region_codes=region_codes,
            norm=reference_norm_stats(expected),
            norm_method="reference",
            image_format=image_format,
            seed=seed,
            pin_memory=pin_memory,
        )
        self.paths: dict[Split, Path | None] = {
            "train": Path(train_path) if train_path is not None else None,
            "val": Path(val_path) if val_path is not None else None,
            "test": Path(test_path) if test_path is not None else None,
            "predict": None,
        }
        self.track: Track = track
        self.regions = list(regions) if regions is not None else None
        self.subregions = list(subregions) if subregions is not None else None
        self.length_factor = length_factor
        self._tiles: dict[Split, GlacierTileBenchmark] = {}

    @property
    def region_codes(self) -> tuple[str, ...]:
        """Known region codes: as given, else the sorted regions of the training tiles."""
        if self._region_codes is None:
            tiles = self.tiles("train").tiles if self.paths["train"] is not None else []
            self._region_codes = tuple(sorted({t.region for t in tiles}))
        return self._region_codes

    def _scene_infos(self, split: Split) -> list[SceneInfo]:
        """Tiles are not scene folders: nothing to check here (the tiles are checked when read)."""
        return []

    def setup(self, stage: str) -> None:
        """Check that the stage's files are given and readable.

        Args:
            stage: ``"fit"``, ``"validate"`` or ``"test"``.

        Raises:
            ConfigError: If the stage is ``"predict"`` or its first split has no file.
            InputError: If a file is not a benchmark file.
        """
        splits: dict[str, tuple[Split, ...]] = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
        }
        if stage not in splits:
            raise ConfigError(f"stage is {stage!r}; the tile benchmark serves {', '.join(splits)}")
        if stage != "fit":
            self._adopt_module_preprocessing()
        for i, split in enumerate(splits[stage]):
            if self.paths[split] is None:
                if i == 0:
                    raise ConfigError(f"stage {stage!r} needs {split}_path; none was given")
                continue
            self.tiles(split)
        self._resolve_seed()

    def tiles(self, split: Split) -> GlacierTileBenchmark:
        """The benchmark subset of a split (random windows for training, the disjoint grid otherwise).

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            The dataset.

        Raises:
            ConfigError: If the split has no file.
        """
        if split not in self._tiles:
            path = self.paths[split]
            if path is None:
                raise ConfigError(f"no {split}_path given")
            dataset = GlacierTileBenchmark(
                path,
                track=self.track,
                regions=self.regions,
                subregions=self.subregions,
                patch_size=self.patch_size,
                mode="random" if split == "train" else "grid",
                batch_size=self.batch_size,
                length_factor=self.length_factor,
                image_format=self.image_format,
                seed=self._resolve_seed(),
            )
            self._tiles[split] = dataset
            dataset.region_codes = (
                self.region_codes
            )  # the training tiles' regions by default: read them first
        return self._tiles[split]

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per epoch, all ranks together: ``floor(n_patches / batch_size) * length_factor``."""
        return reference_epoch_steps(self.tiles("train").n_patches, self.batch_size, self.length_factor)

    def dataset(self, split: Split) -> SceneCollection:
        """Not available: the benchmark is read with :meth:`tiles`.

        Args:
            split: Ignored.

        Raises:
            ConfigError: Always.
        """
        raise ConfigError(f"the tile benchmark is read with tiles({split!r}), not dataset()")

    def _loader(self, split: Split) -> DataLoader[dict[str, Any]]:
        dataset = self.tiles(split)
        return DataLoader(
            dataset,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            sampler=TileEpochSampler(dataset, pad=split == "train"),
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=worker_init if self.num_workers > 0 else None,
            pin_memory=self.pin_memory,
        )

    def val_dataloader(self) -> DataLoader[dict[str, Any]] | list[Any]:
        """The disjoint windows of the validation tiles (an empty list, no validation, without ``val_path``)."""
        return self._loader("val") if self.paths["val"] is not None else []

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Not available: map scenes with ``glaciermap map`` or ``glaciermap predict``.

        Raises:
            ConfigError: Always.
        """
        raise ConfigError("the tile benchmark has no predict split; map scenes with 'glaciermap map'")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore statistics and region codes from a checkpoint (datasets are rebuilt on next use).

        Args:
            state_dict: As returned by :meth:`state_dict`.
        """
        super().load_state_dict(state_dict)
        self._tiles.clear()
