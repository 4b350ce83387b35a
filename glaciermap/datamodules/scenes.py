"""LightningDataModule over scene folders: random windows for training, a grid for evaluation.

Why not torchgeo's ``GeoDataModule``: it builds every split from one dataset class with a ``split=``
argument, samples with torchgeo's (non-distributed) samplers and normalises on the device with a fixed
mean/std; here each split is its own list of scene folders, the statistics come from the training scenes and
travel with the checkpoint, and the samplers are sharded by rank. The reading itself is torchgeo's (see
:mod:`glaciermap.datasets.scene`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.fabric.utilities.seed import pl_worker_init_function
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from glaciermap.constants import CLASS_NAMES, IMAGE_FILL, Modality
from glaciermap.datamodules.samplers import (
    GridWindows,
    RandomWindows,
    ShardedWindowSampler,
    WindowedScene,
    WindowSource,
    check_patch_fits,
)
from glaciermap.datasets._compat import clear_file_handle_cache
from glaciermap.datasets.scene import (
    ImageFormat,
    SceneCollection,
    SceneDataset,
    Target,
    collate_samples,
    resolve_bands,
)
from glaciermap.datasets.scene_folder import LabelPolicy, SceneInfo, inspect_scene, read_scene_stats
from glaciermap.errors import ConfigError
from glaciermap.transforms.normalisation import NormMethod, NormStats, merge_stats, reference_norm_stats
from glaciermap.transforms.reference import REFERENCE_NORMALISATION

Split = Literal["train", "val", "test", "predict"]


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: drop inherited file handles, then seed as Lightning would.

    Args:
        worker_id: Index of the worker process.
    """
    clear_file_handle_cache()
    if int(os.environ.get("PL_SEED_WORKERS", "0")):
        pl_worker_init_function(worker_id)


class SceneDataModule(LightningDataModule):
    """Patches of scene folders for training, validation, test and prediction.

    Training samples ``samples_per_epoch`` random windows per epoch (a new set each epoch, reproducible for
    a seed); validation, test and prediction read the regular grid of windows over every scene (stride
    ``eval_stride``), covering the edges. In distributed runs each rank reads a disjoint shard. Batches follow
    the sample contract (``docs/glossary.md``), stacked by :func:`~glaciermap.datasets.scene.collate_samples`.

    Normalisation statistics (``norm_stats``) are, by default, the count-weighted merge of the training
    scenes' ``stats.json`` and are stored in checkpoints through :meth:`state_dict`, with the region codes.

    Args:
        train_scenes: Scene folders for training (labels required).
        val_scenes: Scene folders for validation (labels required).
        test_scenes: Scene folders for testing (labels required).
        predict_scenes: Scene folders for prediction (labels used where present).
        modalities: Modalities to read, in channel order.
        bands: Optional band subsets by modality (default: all canonical bands).
        target: ``"binary"`` (glacier / not) or ``"classes"`` (background, clean ice, debris-covered ice).
        patch_size: Window size in pixels; every scene must be at least this large.
        batch_size: Windows per batch (per rank).
        samples_per_epoch: Random training windows per epoch, all ranks together (default: 4x the number of
            non-overlapping windows that fit in the training scenes, the GlaViTU reference's epoch).
        eval_stride: Grid step for validation/test/prediction in pixels (default: ``patch_size``).
        num_workers: DataLoader worker processes.
        region_codes: Known region codes, in index order; other codes get the "unseen" index
            ``len(region_codes)``. Default: the sorted codes of the training scenes.
        norm: ``"train"`` (merge the training scenes' statistics), ``"glavitu_reference"`` (min-max with the
            GlaViTU reference constants, SAR backscatter in log10 first: method ``"reference"``,
            :mod:`glaciermap.transforms.reference`), a path to a JSON file written
            by :meth:`NormStats.save`, a :class:`NormStats`, or ``None`` for no normalisation.
        norm_method: ``"zscore"`` or ``"minmax"`` (overrides the method of ``norm``).
        image_format: ``"stacked"`` (one tensor) or ``"per_modality"`` (a dict of tensors).
        fill_value: Value of invalid image pixels after normalisation.
        seed: Base seed of the random windows; default: ``PL_GLOBAL_SEED`` (set by ``seed_everything``), else a
            seed drawn from torch's global generator and broadcast from rank 0.
        pin_memory: Pin batches in page-locked memory.

    Raises:
        ConfigError: If an option is invalid.
    """

    def __init__(
        self,
        train_scenes: Sequence[str | Path] = (),
        val_scenes: Sequence[str | Path] = (),
        test_scenes: Sequence[str | Path] = (),
        predict_scenes: Sequence[str | Path] = (),
        modalities: Sequence[Modality] = ("optical", "dem"),
        bands: Mapping[str, Sequence[str]] | None = None,
        target: Target = "binary",
        patch_size: int = 384,
        batch_size: int = 8,
        samples_per_epoch: int | None = None,
        eval_stride: int | None = None,
        num_workers: int = 0,
        region_codes: Sequence[str] | None = None,
        norm: NormStats | str | None = "train",
        norm_method: NormMethod = "zscore",
        image_format: ImageFormat = "stacked",
        fill_value: float = IMAGE_FILL,
        seed: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if target not in ("binary", "classes"):
            raise ConfigError(f"target is {target!r}; expected 'binary' or 'classes'")
        for name, value in (("patch_size", patch_size), ("batch_size", batch_size)):
            if value <= 0:
                raise ConfigError(f"{name} is {value}; expected a positive integer")
        if num_workers < 0:
            raise ConfigError(f"num_workers is {num_workers}; expected 0 or more")
        self.scene_folders: dict[Split, list[Path]] = {
            "train": [Path(p) for p in train_scenes],
            "val": [Path(p) for p in val_scenes],
            "test": [Path(p) for p in test_scenes],
            "predict": [Path(p) for p in predict_scenes],
        }
        self.modalities = list(modalities)
        self.bands_by_modality = resolve_bands(self.modalities, bands)
        self.target: Target = target
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.eval_stride = eval_stride
        self.num_workers = num_workers
        self._region_codes = tuple(region_codes) if region_codes is not None else None
        self.norm = norm
        self.norm_method: NormMethod = norm_method
        self.image_format: ImageFormat = image_format
        self.fill_value = fill_value
        self.seed = seed
        self.pin_memory = pin_memory
        self._infos: dict[Split, list[SceneInfo]] = {}
        self._datasets: dict[Split, SceneCollection] = {}
        self._norm_stats: NormStats | None = None
        self._resolved_seed: int | None = None

    # ----------------------------------------------------------------------------------------------
    # Derived configuration
    @property
    def bands(self) -> list[str]:
        """Band names of the stacked image, in channel order."""
        return [b for names in self.bands_by_modality.values() for b in names]

    @property
    def in_channels(self) -> int:
        """Number of image channels (all modalities together)."""
        return len(self.bands)

    @property
    def num_classes(self) -> int:
        """2 for the binary target, 3 for the classes target."""
        return len(CLASS_NAMES[2] if self.target == "binary" else CLASS_NAMES[3])

    @property
    def region_codes(self) -> tuple[str, ...]:
        """Known region codes in index order (default: sorted codes of the training scenes)."""
        if self._region_codes is None:
            self._region_codes = tuple(sorted({info.region for info in self._scene_infos("train")}))
        return self._region_codes

    @property
    def num_regions(self) -> int:
        """Number of region indices, including the "unseen" one: ``len(region_codes) + 1``."""
        return len(self.region_codes) + 1

    @property
    def norm_stats(self) -> NormStats | None:
        """Normalisation statistics in use; serialise with ``to_dict()``.

        ``None`` when ``norm=None``, and also while ``norm="train"`` has no training scenes to compute them
        from and no checkpoint state was loaded (:meth:`load_state_dict`); building a loader then raises a
        :class:`~glaciermap.errors.ConfigError` instead of reading unnormalised data.
        """
        return self._resolve_norm_stats(required=False)

    def _resolve_norm_stats(self, *, required: bool) -> NormStats | None:
        """The statistics (computed once); see :attr:`norm_stats`.

        Raises:
            ConfigError: If ``required`` and ``norm="train"`` has no training scenes.
        """
        if self._norm_stats is None and self.norm is not None:
            if isinstance(self.norm, NormStats):
                stats = self.norm
            elif self.norm == "train":
                infos = self._scene_infos("train")
                if not infos:
                    if not required:
                        return None
                    raise ConfigError(
                        "norm='train' needs train_scenes to compute statistics from; pass train_scenes, a "
                        "statistics JSON file, or the NormStats stored in the checkpoint"
                    )
                stats = merge_stats([read_scene_stats(info, self.modalities) for info in infos])
            elif self.norm == REFERENCE_NORMALISATION:
                # the published constants, method "reference" (SAR backscatter in log10 first) whatever
                # norm_method says
                self._norm_stats = reference_norm_stats(self.modalities).select(self.bands_by_modality)
                return self._norm_stats
            else:
                stats = NormStats.load(self.norm)
            self._norm_stats = stats.select(self.bands_by_modality).with_method(self.norm_method)
        return self._norm_stats

    def _scene_infos(self, split: Split) -> list[SceneInfo]:
        """Validated metadata of a split's scenes (read once)."""
        if split not in self._infos:
            policy: LabelPolicy = "optional" if split == "predict" else "required"
            self._infos[split] = [
                inspect_scene(folder, self.modalities, labels=policy) for folder in self.scene_folders[split]
            ]
        return self._infos[split]

    def _resolve_seed(self) -> int:
        """The base seed of the random windows, identical on every rank."""
        if self._resolved_seed is None:
            if self.seed is not None:
                seed = self.seed
            elif "PL_GLOBAL_SEED" in os.environ:
                seed = int(os.environ["PL_GLOBAL_SEED"])
            else:
                seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
                trainer = self.trainer
                if trainer is not None:
                    seed = int(trainer.strategy.broadcast(seed, src=0))
            self._resolved_seed = seed
        return self._resolved_seed

    # ----------------------------------------------------------------------------------------------
    # Lightning hooks
    def setup(self, stage: str) -> None:
        """Validate the scenes of the stage (metadata and sizes); datasets are built when loaders are made.

        Outside fitting, a module that carries its preprocessing (a task restored from a checkpoint) hands
        it over here through the trainer (:meth:`load_state_dict`); statistics are only read when a loader is
        requested.

        Args:
            stage: ``"fit"``, ``"validate"``, ``"test"`` or ``"predict"``.

        Raises:
            ConfigError: If a split the stage needs has no scenes, or a scene is smaller than the patch.
            InputError: If a scene folder is not what was expected.
        """
        splits: dict[str, tuple[Split, ...]] = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
        }
        if stage not in splits:
            raise ConfigError(f"stage is {stage!r}; expected one of {', '.join(splits)}")
        if stage != "fit":
            self._adopt_module_preprocessing()
        required = splits[stage][:1]
        for split in splits[stage]:
            if not self.scene_folders[split]:
                if split in required:
                    raise ConfigError(f"stage {stage!r} needs {split}_scenes; none were given")
                continue
            check_patch_fits(self._scene_infos(split), self.patch_size)
        self._resolve_seed()

    def dataset(self, split: Split) -> SceneCollection:
        """The dataset of a split (built on first use).

        Args:
            split: ``"train"``, ``"val"``, ``"test"`` or ``"predict"``.

        Returns:
            The split's scenes.

        Raises:
            ConfigError: If the split has no scenes or a scene is smaller than the patch.
        """
        if split not in self._datasets:
            infos = self._scene_infos(split)
            if not infos:
                raise ConfigError(f"no {split}_scenes given")
            scenes = [
                SceneDataset(
                    info.folder,
                    self.modalities,
                    bands=self.bands_by_modality,
                    target=None if split == "predict" else self.target,
                    labels="optional" if split == "predict" else "required",
                    region_codes=self.region_codes,
                    norm=self._resolve_norm_stats(required=True),
                    image_format=self.image_format,
                    fill_value=self.fill_value,
                    scene=info,
                )
                for info in infos
            ]
            check_patch_fits(infos, self.patch_size)
            self._datasets[split] = SceneCollection(scenes)
        return self._datasets[split]

    def _loader(self, split: Split) -> DataLoader[dict[str, Any]]:
        collection = self.dataset(split)
        return self._window_loader(split, collection, collection.scenes)

    def _window_loader(
        self, split: Split, collection: Dataset[dict[str, Any]], scenes: Sequence[WindowedScene]
    ) -> DataLoader[dict[str, Any]]:
        """Random windows (training) or the grid (other splits) over ``scenes``, read from ``collection``."""
        source: WindowSource
        if split == "train":
            source = RandomWindows(scenes, self.patch_size, self.samples_per_epoch)
        else:
            source = GridWindows(scenes, self.patch_size, self.eval_stride)
        sampler = ShardedWindowSampler(
            source, seed=self._resolve_seed(), pad=split == "train", shuffle=split == "train"
        )
        return DataLoader(
            collection,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            drop_last=False,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=worker_init if self.num_workers > 0 else None,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Random windows of the training scenes, this rank's shard."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader[dict[str, Any]] | list[Any]:
        """Grid windows of the validation scenes (an empty list, i.e. no validation, when none are given)."""
        return self._loader("val") if self.scene_folders["val"] else []

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Grid windows of the test scenes, this rank's shard."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Grid windows of the prediction scenes, this rank's shard."""
        return self._loader("predict")

    def _adopt_module_preprocessing(self) -> None:
        """Take the statistics, region codes and bands of the trainer's module, if it carries them.

        A task restored from a checkpoint (``SegmentationTask.preprocessing()``) hands its preprocessing to
        the data through the trainer, so test and predict results do not depend on which scenes the user has
        at hand.
        """
        trainer = getattr(self, "trainer", None)
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        preprocessing = getattr(module, "preprocessing", None)
        state = preprocessing() if callable(preprocessing) else None
        if state is not None:
            self.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the data module: normalisation statistics, region codes and bands.

        Raises:
            ConfigError: If ``norm="train"`` has no training scenes and no state was loaded.
        """
        stats = self._resolve_norm_stats(required=True)
        return {
            "norm_stats": stats.to_dict() if stats is not None else None,
            "region_codes": list(self.region_codes),
            "bands": {m: list(b) for m, b in self.bands_by_modality.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore statistics and region codes from a checkpoint (datasets are rebuilt on next use).

        Args:
            state_dict: As returned by :meth:`state_dict`.

        Raises:
            ConfigError: If the checkpoint's bands differ from this data module's.
        """
        bands = state_dict.get("bands")
        if bands is not None and {m: tuple(b) for m, b in bands.items()} != self.bands_by_modality:
            raise ConfigError(
                f"the checkpoint was trained on bands {bands}; this data module reads "
                f"{ {m: list(b) for m, b in self.bands_by_modality.items()} }"
            )
        stats = state_dict.get("norm_stats")
        self._norm_stats = NormStats.from_dict(stats) if stats is not None else None
        if self._norm_stats is None:
            self.norm = None
        self._region_codes = tuple(state_dict.get("region_codes", ()))
        self._datasets.clear()
