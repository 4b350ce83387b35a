"""LightningDataModule over Karakoram ZY-3 folders: the U-Net+CBAM recipe on real inputs.

Karakoram paper Sec. 3.3.1: 512-pixel tiles of pan-sharpened ZY-3 multispectral (blue, green, red, nir), Landsat-8
LST and ZY-3-DEM slope on one 2 m grid, three classes, batch 4. Each folder is read by
:class:`~glaciermap.datasets.karakoram.KarakoramZY3`; windows are drawn exactly as for scene folders
(:class:`~glaciermap.datamodules.scenes.SceneDataModule`: random windows for training, the grid for evaluation,
sharded by rank), and the statistics travel with the checkpoint the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from glaciermap.constants import Modality
from glaciermap.datamodules.scenes import SceneDataModule, Split
from glaciermap.datasets.karakoram import KARAKORAM_BANDS, KarakoramZY3, karakoram_stats
from glaciermap.datasets.scene import ImageFormat, SceneCollection, SceneQuery, Target
from glaciermap.datasets.scene_folder import SceneInfo
from glaciermap.errors import ConfigError
from glaciermap.transforms.normalisation import NormMethod, NormStats

KARAKORAM_MODALITIES: tuple[Modality, ...] = ("optical", "thermal", "dem")
"""Modalities of the Karakoram input, in channel order (Karakoram paper Sec. 3.3.1)."""


class KarakoramFolders(Dataset[dict[str, Any]]):
    """Several :class:`KarakoramZY3` folders indexed by :class:`~glaciermap.datasets.scene.SceneQuery`.

    Args:
        scenes: The folders' datasets, in index order.
    """

    def __init__(self, scenes: Sequence[KarakoramZY3]) -> None:
        self.scenes = list(scenes)

    def __len__(self) -> int:
        """Number of folders."""
        return len(self.scenes)

    def __getitem__(self, query: SceneQuery) -> dict[str, Any]:
        """Read the window ``(x, y)`` of folder ``scene``.

        Args:
            query: Folder index and window.

        Returns:
            The sample contract (see :class:`KarakoramZY3`).
        """
        scene, x, y = query
        return self.scenes[scene][(x, y)]


class KarakoramDataModule(SceneDataModule):
    """Karakoram ZY-3 folders for training, validation, test and prediction (Karakoram paper Sec. 3.3.1).

    Args:
        train_scenes: Karakoram folders for training (labels required).
        val_scenes: Folders for validation (labels required).
        test_scenes: Folders for testing (labels required).
        predict_scenes: Folders for prediction (labels read where present).
        modalities: Must be ``["optical", "thermal", "dem"]`` (kept as an argument so that the CLI links it to
            the task).
        bands: ``None`` or the Karakoram bands (blue, green, red, nir / thermal / slope); configs state them so
            that the CLI links them to the model (``examples/karakoram_zy3.yaml``).
        target: ``"classes"`` (the paper's three classes) or ``"binary"``.
        patch_size: Window size in pixels (512 in the paper).
        batch_size: Windows per batch (4 in the paper).
        samples_per_epoch: Random training windows per epoch (default: 4x the disjoint windows).
        eval_stride: Grid step for evaluation in pixels (default: ``patch_size``).
        num_workers: DataLoader worker processes.
        norm: ``"train"`` (statistics of the training folders, from a decimated read,
            :func:`~glaciermap.datasets.karakoram.karakoram_stats`), a JSON file written by
            :meth:`NormStats.save`, a :class:`NormStats`, or ``None``.
        norm_method: ``"zscore"`` or ``"minmax"``.
        image_format: ``"stacked"`` or ``"per_modality"``.
        seed: Base seed of the random windows (default: ``PL_GLOBAL_SEED``).
        pin_memory: Pin batches in page-locked memory.
        **kwargs: Other :class:`SceneDataModule` arguments (``region_codes``, ``fill_value``).

    Raises:
        ConfigError: If an option is invalid or the modalities/bands are not the Karakoram ones.
    """

    def __init__(
        self,
        train_scenes: Sequence[str | Path] = (),
        val_scenes: Sequence[str | Path] = (),
        test_scenes: Sequence[str | Path] = (),
        predict_scenes: Sequence[str | Path] = (),
        modalities: Sequence[Modality] = KARAKORAM_MODALITIES,
        bands: Mapping[str, Sequence[str]] | None = None,
        target: Target = "classes",
        patch_size: int = 512,
        batch_size: int = 4,
        samples_per_epoch: int | None = None,
        eval_stride: int | None = None,
        num_workers: int = 0,
        norm: NormStats | str | None = "train",
        norm_method: NormMethod = "zscore",
        image_format: ImageFormat = "stacked",
        seed: int | None = None,
        pin_memory: bool = False,
        **kwargs: Any,
    ) -> None:
        if tuple(modalities) != KARAKORAM_MODALITIES:
            raise ConfigError(
                f"modalities are {list(modalities)}; Karakoram folders hold {list(KARAKORAM_MODALITIES)}"
            )
        if bands is not None and any(tuple(bands.get(m, ())) != KARAKORAM_BANDS[m] for m in bands):
            raise ConfigError(
                f"bands are {dict(bands)}; Karakoram folders hold "
                f"{ {m: list(b) for m, b in KARAKORAM_BANDS.items()} } (leave bands unset)"
            )
        kwargs.setdefault("region_codes", ())
        super().__init__(
            train_scenes=train_scenes,
            val_scenes=val_scenes,
            test_scenes=test_scenes,
            predict_scenes=predict_scenes,
            modalities=KARAKORAM_MODALITIES,
            bands={m: list(b) for m, b in KARAKORAM_BANDS.items()},
            target=target,
            patch_size=patch_size,
            batch_size=batch_size,
            samples_per_epoch=samples_per_epoch,
            eval_stride=eval_stride,
            num_workers=num_workers,
            norm=norm,
            norm_method=norm_method,
            image_format=image_format,
            seed=seed,
            pin_memory=pin_memory,
            **kwargs,
        )
        self._folders: dict[Split, KarakoramFolders] = {}

    def _scene_infos(self, split: Split) -> list[SceneInfo]:
        """Grids of a split's folders (checked, unnormalised datasets; read once)."""
        if split not in self._infos:
            target = None if split == "predict" else self.target
            self._infos[split] = [
                KarakoramZY3(folder, target=target).scene for folder in self.scene_folders[split]
            ]
        return self._infos[split]

    def _resolve_norm_stats(self, *, required: bool) -> NormStats | None:
        """Statistics of the training folders (``norm="train"``), a file, the given object or ``None``."""
        if self._norm_stats is None and self.norm is not None:
            if isinstance(self.norm, NormStats):
                stats = self.norm
            elif self.norm == "train":
                if not self.scene_folders["train"]:
                    if not required:
                        return None
                    raise ConfigError(
                        "norm='train' needs train_scenes to compute statistics from; pass train_scenes, a "
                        "statistics JSON file, or the NormStats stored in the checkpoint"
                    )
                stats = karakoram_stats(self.scene_folders["train"])
            else:
                stats = NormStats.load(self.norm)
            self._norm_stats = stats.select(self.bands_by_modality).with_method(self.norm_method)
        return self._norm_stats

    def folders(self, split: Split) -> KarakoramFolders:
        """The normalised datasets of a split (built on first use).

        Args:
            split: ``"train"``, ``"val"``, ``"test"`` or ``"predict"``.

        Returns:
            The split's folders.

        Raises:
            ConfigError: If the split has no folders.
        """
        if split not in self._folders:
            if not self.scene_folders[split]:
                raise ConfigError(f"no {split}_scenes given")
            self._scene_infos(split)  # checks every folder first
            norm = self._resolve_norm_stats(required=True)
            self._folders[split] = KarakoramFolders(
                [
                    KarakoramZY3(
                        folder,
                        target=None if split == "predict" else self.target,
                        norm=norm,
                        image_format=self.image_format,
                        check_ranges=False,
                    )
                    for folder in self.scene_folders[split]
                ]
            )
        return self._folders[split]

    def dataset(self, split: Split) -> SceneCollection:
        """Not available: Karakoram folders are not scene folders; use :meth:`folders`.

        Args:
            split: Ignored.

        Raises:
            ConfigError: Always.
        """
        raise ConfigError(f"Karakoram folders are read with folders({split!r}), not dataset()")

    def _loader(self, split: Split) -> DataLoader[dict[str, Any]]:
        folders = self.folders(split)
        return self._window_loader(split, folders, folders.scenes)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore statistics from a checkpoint (datasets are rebuilt on next use).

        Args:
            state_dict: As returned by :meth:`state_dict`.
        """
        super().load_state_dict(state_dict)
        self._folders.clear()
