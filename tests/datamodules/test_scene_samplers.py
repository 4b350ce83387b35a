"""Scene samplers: grid coverage, random windows inside scenes, reproducibility, sharding by rank."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from glaciermap.datamodules.samplers import GridWindows, RandomWindows, ShardedWindowSampler, epoch_generator
from glaciermap.datasets.scene import SceneDataset
from glaciermap.errors import ConfigError
from tests.data.scenes import write_scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[SceneDataset]:
    """A 64x96 px scene in UTM 43N and a 48x48 px scene in UTM 33N (different CRS, 20 m pixels)."""
    root = tmp_path_factory.mktemp("samplers")
    big = write_scene(root / "big", size=(64, 96), modalities=["dem"])
    small = write_scene(
        root / "small",
        size=(48, 48),
        pixel_size=20.0,
        crs="EPSG:32633",
        origin=(400000.0, 8700000.0),
        modalities=["dem"],
    )
    return [SceneDataset(big, ["dem"]), SceneDataset(small, ["dem"])]


def key(q: tuple[int, slice, slice]) -> tuple[int, float, float]:
    return (q[0], float(q[1].start), float(q[2].start))


def test_grid_covers_every_scene_including_edges(scenes: list[SceneDataset]) -> None:
    grid = GridWindows(scenes, patch_size=32)
    # big: 2 rows x 3 cols; small: ceil((48-32)/32)+1 = 2 rows and cols (the last ones reach past the edge).
    assert len(grid) == 6 + 4
    items = grid.windows(seed=0, epoch=0, count=None)
    covered = torch.zeros(48, 48, dtype=torch.bool)
    left, _, _, top = scenes[1].scene.bounds
    for q in (q for q in items if q.scene == 1):
        assert q.x.stop - q.x.start == 32 * 20.0 and q.y.stop - q.y.start == 32 * 20.0
        c0, r1 = int((q.x.start - left) / 20.0), int((top - q.y.start) / 20.0)
        covered[max(0, r1 - 32) : r1, c0 : c0 + 32] = True
    assert covered.all()
    assert grid.windows(seed=5, epoch=3, count=None) == items
    assert len(GridWindows(scenes, patch_size=32, stride=16)) == (3 * 5) + (2 * 2)


def test_random_windows_inside_scenes_on_the_pixel_grid(scenes: list[SceneDataset]) -> None:
    windows = RandomWindows(scenes, patch_size=32, length=200).windows(seed=1, epoch=0, count=None)
    assert len(windows) == 200
    for q in windows:
        ds = scenes[q.scene]
        left, bottom, right, top = ds.scene.bounds
        res = ds.res[0]
        assert left <= q.x.start and q.x.stop <= right and bottom <= q.y.start and q.y.stop <= top
        assert q.x.stop - q.x.start == 32 * res
        assert ((q.x.start - left) / res).is_integer() and ((q.y.start - bottom) / res).is_integer()
    # Scenes are drawn in proportion to their area in pixels (6144 vs 2304 px).
    share = sum(q.scene == 0 for q in windows) / len(windows)
    assert 0.62 < share < 0.82


def test_random_windows_are_reproducible_and_change_every_epoch(scenes: list[SceneDataset]) -> None:
    source = RandomWindows(scenes, patch_size=32, length=20)
    a = [key(q) for q in source.windows(seed=7, epoch=0, count=None)]
    assert a == [key(q) for q in source.windows(seed=7, epoch=0, count=None)]
    assert a != [key(q) for q in source.windows(seed=7, epoch=1, count=None)]
    assert a != [key(q) for q in source.windows(seed=8, epoch=0, count=None)]
    g1, g2 = epoch_generator(3, 4), epoch_generator(3, 4)
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))


def test_default_length_is_four_times_the_disjoint_windows(scenes: list[SceneDataset]) -> None:
    # GlaViTU reference notes 3.3: an epoch draws 4x as many random patches as would tile the scenes once.
    assert len(RandomWindows(scenes, patch_size=32)) == 4 * (2 * 3 + 1 * 1)
    assert len(RandomWindows(scenes, patch_size=32, length_factor=1)) == 2 * 3 + 1 * 1


@pytest.mark.parametrize("world_size", [2, 3])
def test_grid_shards_are_disjoint_and_cover_everything(scenes: list[SceneDataset], world_size: int) -> None:
    grid = GridWindows(scenes, patch_size=32)
    everything = [key(q) for q in grid.windows(0, 0, None)]
    shards = [
        [key(q) for q in ShardedWindowSampler(grid, rank=r, world_size=world_size, pad=False)]
        for r in range(world_size)
    ]
    assert sorted(k for shard in shards for k in shard) == sorted(everything)
    assert all(set(a).isdisjoint(b) for i, a in enumerate(shards) for b in shards[i + 1 :])
    lengths = [
        len(ShardedWindowSampler(grid, rank=r, world_size=world_size, pad=False)) for r in range(world_size)
    ]
    assert lengths == [len(s) for s in shards] and max(lengths) - min(lengths) <= 1


def test_padded_grid_shards_have_equal_length(scenes: list[SceneDataset]) -> None:
    grid = GridWindows(scenes, patch_size=32)  # 10 windows over 3 ranks -> 4 each, 2 repeated
    shards = [list(ShardedWindowSampler(grid, rank=r, world_size=3, pad=True)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert {key(q) for s in shards for q in s} == {key(q) for q in grid.windows(0, 0, None)}


def test_random_shards_per_rank_and_epoch(scenes: list[SceneDataset]) -> None:
    source = RandomWindows(scenes, patch_size=32, length=10)
    samplers = [
        ShardedWindowSampler(source, seed=11, rank=r, world_size=2, pad=True, shuffle=True) for r in range(2)
    ]
    full = [key(q) for q in source.windows(seed=11, epoch=0, count=10)]
    assert [key(q) for q in samplers[0]] == full[0::2]
    assert [key(q) for q in samplers[1]] == full[1::2]
    assert [len(s) for s in samplers] == [5, 5]
    before = [key(q) for q in samplers[0]]
    samplers[0].set_epoch(1)
    after = [key(q) for q in samplers[0]]
    assert after != before
    assert after == [key(q) for q in source.windows(seed=11, epoch=1, count=10)][0::2]
    # An odd total is padded up so that both ranks step together.
    odd = RandomWindows(scenes, patch_size=32, length=7)
    assert [len(list(ShardedWindowSampler(odd, rank=r, world_size=2))) for r in range(2)] == [4, 4]


def test_sampler_is_a_distributed_sampler_lightning_keeps(scenes: list[SceneDataset]) -> None:
    sampler = ShardedWindowSampler(GridWindows(scenes, patch_size=32))
    assert isinstance(sampler, DistributedSampler)
    assert (sampler.rank, sampler.num_replicas) == (0, 1) and len(sampler) == 10
    with pytest.raises(ConfigError, match="rank 2 with world_size 2"):
        ShardedWindowSampler(GridWindows(scenes, patch_size=32), rank=2, world_size=2)


def test_scene_smaller_than_the_patch(scenes: list[SceneDataset]) -> None:
    with pytest.raises(ConfigError, match=r"scene .*small is 48x48 px, smaller than patch_size 64"):
        RandomWindows(scenes, patch_size=64)
    with pytest.raises(ConfigError, match=r"small is 48x48 px, smaller than patch_size 50"):
        GridWindows(scenes, patch_size=50)
    with pytest.raises(ConfigError, match="samples_per_epoch is 0"):
        RandomWindows(scenes, patch_size=16, length=0)
    with pytest.raises(ConfigError, match="stride -1"):
        GridWindows(scenes, patch_size=16, stride=-1)
    with pytest.raises(ConfigError, match="eval stride 32 is larger than the patch size 16"):
        GridWindows(scenes, patch_size=16, stride=32)
