"""Streaming COG writer, and sharding scene lists across ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio.transform import from_origin

from glaciermap.baselines import band_ratio_model
from glaciermap.errors import ConfigError
from glaciermap.inference.mapping import map_scenes, shard_scenes
from glaciermap.inference.writers import StreamingRaster
from tests.data.scenes import write_scene


def test_streaming_raster_writes_a_cog_in_uneven_row_chunks(tmp_path: Path) -> None:
    height, width = 1100, 700  # more than two 512-row blocks, so overviews and block buffering are exercised
    rng = np.random.default_rng(0)
    data = rng.random((2, height, width), dtype=np.float32)
    transform = from_origin(500000.0, 4000000.0, 10.0, 10.0)
    sink = StreamingRaster(
        tmp_path / "stream.tif",
        crs=CRS.from_epsg(32643),
        transform=transform,
        height=height,
        width=width,
        count=2,
        dtype="float32",
        nodata=-9999.0,
        descriptions=["a", "b"],
        tags={"definition": "test"},
    )
    row = 0
    for step in (1, 7, 300, 511, 200, 81):
        sink.write(row, data[:, row : row + step])
        row += step
    assert row == height
    sink.to_cog(tmp_path / "out.tif", resampling="AVERAGE")
    with rasterio.open(tmp_path / "out.tif") as src:
        np.testing.assert_array_equal(src.read(), data)
        assert src.crs.to_epsg() == 32643 and src.transform == transform
        assert src.nodata == -9999.0 and src.descriptions == ("a", "b")
        assert src.tags()["definition"] == "test"
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.overviews(1)  # internal overviews
        assert src.block_shapes[0] == (512, 512)


def test_streaming_raster_rejects_gaps_and_incomplete_rasters(tmp_path: Path) -> None:
    kwargs = {
        "crs": CRS.from_epsg(32643),
        "transform": from_origin(0, 0, 10, 10),
        "height": 40,
        "width": 30,
        "count": 1,
        "dtype": "uint8",
        "nodata": 255,
    }
    sink = StreamingRaster(tmp_path / "a.tif", **kwargs)  # type: ignore[arg-type]
    sink.write(0, np.zeros((10, 30), np.uint8))
    with pytest.raises(ValueError, match="in order"):
        sink.write(20, np.zeros((10, 30), np.uint8))
    with pytest.raises(ValueError, match="10 of 40 rows"):
        sink.to_cog(tmp_path / "a_cog.tif")
    assert not (tmp_path / "a_cog.tif").exists()


def test_shards_are_disjoint_and_cover_every_scene() -> None:
    scenes = [f"s{i}" for i in range(7)]
    for weights in (None, [5, 1, 1, 9, 2, 2, 3]):
        shards = [shard_scenes(scenes, r, 2, weights) for r in range(2)]
        assert set(shards[0]).isdisjoint(shards[1])
        assert sorted(shards[0] + shards[1]) == sorted(scenes)
        assert all(shard == sorted(shard, key=scenes.index) for shard in shards)  # original order kept
    # largest first to the least loaded rank: s3 (9) -> 0, s0 (5) -> 1, s6 (3) -> 1, s4 (2) -> 1, s5 (2) -> 0,
    # s1 (1) -> 1, s2 (1) -> 0 (tie, lower rank): loads 12 and 11
    assert shard_scenes(scenes, 0, 2, [5, 1, 1, 9, 2, 2, 3]) == ["s2", "s3", "s5"]
    assert shard_scenes(scenes, 1, 2, [5, 1, 1, 9, 2, 2, 3]) == ["s0", "s1", "s4", "s6"]
    assert shard_scenes(scenes, 2, 3) == ["s2", "s5"]
    with pytest.raises(ConfigError, match="rank 2 with world_size 2"):
        shard_scenes(scenes, 2, 2)
    with pytest.raises(ConfigError, match="one weight per scene"):
        shard_scenes(scenes, 0, 2, [1.0])


def test_map_scenes_by_rank_writes_each_scene_once(tmp_path: Path) -> None:
    scenes = [
        write_scene(
            tmp_path / "in" / f"scene{i}", size=(40 + 8 * i, 48), modalities=("optical",), labels=False
        )
        for i in range(3)
    ]
    out = tmp_path / "out"
    done = []
    for rank in range(2):
        results = map_scenes(
            band_ratio_model(),
            scenes,
            out,
            rank=rank,
            world_size=2,
            window_size=32,
            device="cpu",
            quicklook=False,
        )
        done.append([r.out_dir.name for r in results])
    assert set(done[0]).isdisjoint(done[1]) and sorted(done[0] + done[1]) == ["scene0", "scene1", "scene2"]
    for s in scenes:
        with rasterio.open(out / s.name / "classes.tif") as src:
            assert (src.height, src.width) == (int(s.name[-1]) * 8 + 40, 48)
    with pytest.raises(ConfigError, match="several scenes are named"):
        map_scenes(band_ratio_model(), [scenes[0], scenes[0]], out, rank=0, world_size=1)
