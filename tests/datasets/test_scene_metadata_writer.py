"""write_scene_metadata: strict JSON, atomic, read back by read_scene_metadata."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from glaciermap.datasets.scene_folder import read_scene_metadata, write_scene_metadata
from glaciermap.errors import InputError


def test_round_trip(tmp_path: Path) -> None:
    write_scene_metadata(
        tmp_path, {"region": "HMA", "year": 2023, "pixel_size": 10.0, "sources": {"blue": "b.tif"}}
    )
    meta = read_scene_metadata(tmp_path)
    assert (meta["region"], meta["year"], meta["pixel_size"], meta["sources"]["blue"]) == (
        "HMA",
        2023,
        10.0,
        "b.tif",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["scene.json"]


def test_rejects_nan_and_missing_region(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no NaN or Infinity"):
        write_scene_metadata(tmp_path, {"region": "HMA", "offset": math.nan})
    with pytest.raises(InputError, match="'region' is None"):
        write_scene_metadata(tmp_path, {"year": 2020})
    assert not list(tmp_path.iterdir())
