"""The scenes to map with Lightning: one whole scene per prediction step, sharded across devices and nodes.

* :class:`SceneList` is the scene folders as a dataset;
* :class:`MappingSceneSampler` hands each rank its share (a ``DistributedSampler`` without padding, so
  Lightning keeps it and no scene is repeated to even out the ranks): every scene is mapped by exactly one
  process;
* :class:`SceneMappingDataModule` lists the scenes for ``Trainer.predict``.

The model side is :class:`glaciermap.tasks.mapping.SceneMappingTask`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from glaciermap.datasets.scene_folder import find_scenes, scene_pixels
from glaciermap.distributed import rank_and_world_size
from glaciermap.errors import ConfigError
from glaciermap.inference.mapping import shard_scenes

__all__ = ["MappingSceneSampler", "SceneList", "SceneMappingDataModule"]


class SceneList(Dataset[dict[str, str]]):
    """Scene folders as a dataset: item ``i`` is ``{"scene": path}``.

    Args:
        scenes: The scene folders.
    """

    def __init__(self, scenes: Sequence[str | os.PathLike[str]]) -> None:
        self.scenes = [str(s) for s in scenes]

    def __len__(self) -> int:
        """Number of scenes."""
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict[str, str]:
        """The scene folder of item ``index``."""
        return {"scene": self.scenes[index]}


class MappingSceneSampler(DistributedSampler[int]):
    """This rank's whole scenes to map (:func:`~glaciermap.inference.mapping.shard_scenes`, balanced by pixels).

    Unlike ``DistributedSampler`` it never pads, so each scene is yielded by exactly one rank and ranks may
    get different numbers of scenes. (Training windows are sharded by
    :class:`~glaciermap.datamodules.samplers.ShardedWindowSampler` instead.)

    Args:
        dataset: The scene list.
        rank: This process's rank (default: :func:`glaciermap.distributed.rank_and_world_size`).
        world_size: Number of processes (default: likewise).
    """

    def __init__(self, dataset: SceneList, rank: int | None = None, world_size: int | None = None) -> None:
        default_rank, default_size = rank_and_world_size()
        rank = default_rank if rank is None else rank
        world_size = default_size if world_size is None else world_size
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=False, drop_last=False)
        indices = list(range(len(dataset)))
        weights = [scene_pixels(s) for s in dataset.scenes]
        self.indices: list[int] = shard_scenes(indices, rank, world_size, weights)

    def __iter__(self) -> Iterator[int]:
        """This rank's scene indices."""
        return iter(self.indices)

    def __len__(self) -> int:
        """Number of scenes of this rank."""
        return len(self.indices)


def _collate(items: list[dict[str, str]]) -> list[dict[str, str]]:
    return items


class SceneMappingDataModule(LightningDataModule):
    """The scenes to map, for ``Trainer.predict``.

    Args:
        scenes: Scene folders and/or folders of scene folders.
        batch_size: Scenes per prediction step (each is still mapped window batch by window batch).
        num_workers: DataLoader workers (listing scenes is cheap: 0 is fine).

    Raises:
        ConfigError: If two scenes share a folder name (their outputs would collide).
        InputError: If a path is neither a scene folder nor a folder of them.
    """

    def __init__(self, scenes: Sequence[str], batch_size: int = 1, num_workers: int = 0) -> None:
        super().__init__()
        self.scene_paths = list(scenes)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._scenes: list[Path] | None = None

    @property
    def scenes(self) -> list[Path]:
        """The scene folders (expanded and checked for unique names)."""
        if self._scenes is None:
            scenes = find_scenes(self.scene_paths)
            names = [s.name for s in scenes]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ConfigError(f"several scenes are named {dupes[0]!r}; scene folder names must be unique")
            self._scenes = scenes
        return self._scenes

    def predict_dataloader(self) -> DataLoader[dict[str, str]]:
        """One item per scene, this rank's share only."""
        dataset = SceneList(self.scenes)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=MappingSceneSampler(dataset),
            num_workers=self.num_workers,
            collate_fn=_collate,
        )
