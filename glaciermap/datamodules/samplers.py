"""Samplers over scene collections, reproducible and sharded by rank for distributed training.

torchgeo's geo samplers are not distributed samplers: every rank would read the same windows, and Lightning's
fallback wrapper only shards correctly when each rank builds the same list. Here each epoch's list of
windows is a pure function of ``(seed, epoch)`` (:meth:`WindowSource.windows`), identical on every rank,
and :class:`ShardedWindowSampler` hands rank ``r`` of ``W`` the items ``r, r + W, r + 2W, ...``: the shards
are disjoint and together cover the list.

* :class:`RandomWindows`: random windows for training, scenes drawn in proportion to their area, windows
  uniform inside the scene and snapped to its pixel grid (torchgeo's ``get_random_bounding_box``). A new
  set every epoch (``set_epoch``, called by Lightning), the same set for the same seed.
* :class:`GridWindows`: the regular grid of torchgeo's ``GridGeoSampler`` over every scene, for
  validation, test and prediction; windows at the top and right edges reach past the scene (those pixels
  are nodata, ``mask`` 255), so every pixel is covered.

:class:`ShardedWindowSampler` subclasses :class:`torch.utils.data.DistributedSampler`, so Lightning neither
wraps nor replaces it and calls its ``set_epoch`` every epoch.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence
from typing import cast

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from glaciermap.datasets._compat import grid_windows, random_window
from glaciermap.datasets.karakoram import KarakoramZY3
from glaciermap.datasets.scene import SceneDataset, SceneQuery
from glaciermap.datasets.scene_folder import SceneInfo
from glaciermap.datasets.tile_benchmark import LENGTH_FACTOR as REFERENCE_LENGTH_FACTOR
from glaciermap.distributed import rank_and_world_size
from glaciermap.errors import ConfigError

WindowedScene = SceneDataset | KarakoramZY3
"""A geo dataset over one scene grid with ``scene`` (size, bounds) and ``res``: what the window sources read."""


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A torch generator seeded from ``(seed, epoch)`` (numpy ``SeedSequence``, so nearby seeds decorrelate).

    Args:
        seed: Base seed.
        epoch: Epoch number.

    Returns:
        A seeded CPU generator.
    """
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch & 0xFFFFFFFF]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def check_patch_fits(scenes: Sequence[SceneInfo], patch_size: int) -> None:
    """Raise if a scene is smaller than the patch size.

    Args:
        scenes: The scenes' metadata.
        patch_size: Patch size in pixels.

    Raises:
        ConfigError: Naming the first scene smaller than ``patch_size`` and both sizes.
    """
    for info in scenes:
        if info.height < patch_size or info.width < patch_size:
            raise ConfigError(
                f"scene {info.folder} is {info.width}x{info.height} px, smaller than patch_size "
                f"{patch_size}; expected scenes of at least {patch_size}x{patch_size} px (lower patch_size, or "
                "map small scenes with the scene mapper, which pads)"
            )


class WindowSource(abc.ABC):
    """The windows of one epoch over a list of scenes, a pure function of ``(seed, epoch)``."""

    @abc.abstractmethod
    def windows(self, seed: int, epoch: int, count: int | None) -> list[SceneQuery]:
        """Return the epoch's windows.

        Args:
            seed: Base seed (ignored by deterministic sources).
            epoch: Epoch number.
            count: Number of windows wanted (``None``: the source's natural length).

        Returns:
            The windows, in order.
        """

    @abc.abstractmethod
    def __len__(self) -> int:
        """Natural number of windows per epoch (all ranks together)."""


class RandomWindows(WindowSource):
    """Random square windows, scenes chosen in proportion to their area.

    Args:
        scenes: The scenes (each at least ``patch_size`` pixels wide and high).
        patch_size: Window size in pixels.
        length: Windows per epoch (all ranks together); default: ``length_factor`` times the number of
            non-overlapping windows that fit in the scenes.
        length_factor: Default epoch length as a multiple of the disjoint-window count: 4, the GlaViTU
            reference's epoch definition (reference notes 3.3), so epochs and SGDR cycles measured in epochs
            have the reference's length.

    Raises:
        ConfigError: If a scene is smaller than the patch, or ``length``/``patch_size`` is not positive.
    """

    def __init__(
        self,
        scenes: Sequence[WindowedScene],
        patch_size: int,
        length: int | None = None,
        length_factor: int = REFERENCE_LENGTH_FACTOR,
    ) -> None:
        if patch_size <= 0:
            raise ConfigError(f"patch_size is {patch_size}; expected a positive number of pixels")
        if length is not None and length <= 0:
            raise ConfigError(f"samples_per_epoch is {length}; expected a positive integer")
        check_patch_fits([ds.scene for ds in scenes], patch_size)
        self.scenes = list(scenes)
        self.patch_size = patch_size
        self.areas = torch.tensor(
            [float(ds.scene.height * ds.scene.width) for ds in scenes], dtype=torch.float64
        )
        natural = sum((ds.scene.height // patch_size) * (ds.scene.width // patch_size) for ds in scenes)
        self.length = length if length is not None else natural * max(1, length_factor)

    def __len__(self) -> int:
        """Windows per epoch."""
        return self.length

    def windows(self, seed: int, epoch: int, count: int | None) -> list[SceneQuery]:
        """Draw the epoch's windows.

        Args:
            seed: Base seed.
            epoch: Epoch number.
            count: Number of windows (default: ``len(self)``).

        Returns:
            ``count`` windows, the same for the same ``(seed, epoch)``.
        """
        n = self.length if count is None else count
        generator = epoch_generator(seed, epoch)
        picks = torch.multinomial(self.areas, n, replacement=True, generator=generator).tolist()
        out = []
        for i in picks:
            ds = self.scenes[i]
            x, y = random_window(ds.scene.bounds, self.patch_size, ds.res, generator)
            out.append(SceneQuery(int(i), x, y))
        return out


class GridWindows(WindowSource):
    """The regular grid of windows over every scene, in scene order.

    Args:
        scenes: The scenes (each at least ``patch_size`` pixels wide and high).
        patch_size: Window size in pixels.
        stride: Step between windows in pixels (default: ``patch_size``, no overlap).

    Raises:
        ConfigError: If a scene is smaller than the patch, ``stride``/``patch_size`` is not positive, or
            the stride exceeds the patch (the grid would leave gaps and windows past the scene edge).
    """

    def __init__(self, scenes: Sequence[WindowedScene], patch_size: int, stride: int | None = None) -> None:
        stride = patch_size if stride is None else stride
        if patch_size <= 0 or stride <= 0:
            raise ConfigError(
                f"patch_size {patch_size} and stride {stride}; expected positive numbers of pixels"
            )
        if stride > patch_size:
            raise ConfigError(
                f"eval stride {stride} is larger than the patch size {patch_size}; expected at most the patch "
                "size so that the evaluation grid covers every pixel"
            )
        check_patch_fits([ds.scene for ds in scenes], patch_size)
        self.items = [
            SceneQuery(i, x, y)
            for i, ds in enumerate(scenes)
            for x, y in grid_windows(ds, patch_size, stride)
        ]

    def __len__(self) -> int:
        """Number of grid windows."""
        return len(self.items)

    def windows(self, seed: int, epoch: int, count: int | None) -> list[SceneQuery]:
        """Return the grid (``seed`` and ``epoch`` are ignored).

        Args:
            seed: Ignored.
            epoch: Ignored.
            count: If larger than the grid, the grid is repeated from its start to reach ``count``.

        Returns:
            The grid windows.
        """
        if count is None or count <= len(self.items):
            return list(self.items)
        reps = math.ceil(count / len(self.items))
        return (self.items * reps)[:count]


class ShardedWindowSampler(DistributedSampler[SceneQuery]):
    """Yield this rank's share of an epoch's windows.

    Every rank builds the same window list from ``(seed, epoch)`` and takes items ``rank::world_size``.
    With ``pad=True`` (training) the list is lengthened so that every rank gets
    ``ceil(len(source) / world_size)`` windows (random sources draw extra windows; grids repeat from their
    start), which keeps ranks in step; with ``pad=False`` (evaluation) every window is used exactly once and
    shards differ in length by at most one.

    Args:
        source: The windows of each epoch.
        seed: Base seed (the same on every rank).
        rank: This process's rank (default: from ``torch.distributed``, else 0).
        world_size: Number of processes (default: from ``torch.distributed``, else 1).
        pad: Make all shards the same length.
        shuffle: Whether the source is random (reported to Lightning; the order comes from the source).

    Raises:
        ConfigError: If ``rank`` is not in ``[0, world_size)``.
    """

    def __init__(
        self,
        source: WindowSource,
        *,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        pad: bool = True,
        shuffle: bool = False,
    ) -> None:
        default_rank, default_size = rank_and_world_size()
        rank = default_rank if rank is None else rank
        world_size = default_size if world_size is None else world_size
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} with world_size {world_size}; expected 0 <= rank < world_size")
        # DistributedSampler only takes len() of its dataset; the window source provides it.
        sized = cast("Dataset[SceneQuery]", source)
        super().__init__(
            sized, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.source = source
        self.pad = pad

    def __len__(self) -> int:
        """Windows this rank yields per epoch."""
        total = len(self.source)
        if self.pad:
            return math.ceil(total / self.num_replicas)
        return len(range(self.rank, total, self.num_replicas))

    def __iter__(self) -> Iterator[SceneQuery]:
        """Yield this rank's windows of the current epoch (see ``set_epoch``)."""
        total = len(self.source)
        count = math.ceil(total / self.num_replicas) * self.num_replicas if self.pad else total
        items = self.source.windows(self.seed, self.epoch, count)
        return iter(items[self.rank : count : self.num_replicas])
