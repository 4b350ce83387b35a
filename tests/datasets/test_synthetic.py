"""Tests of the synthetic glacier world (glaciermap.datasets.synthetic)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import rasterio

from glaciermap.constants import BANDS, IGNORE_INDEX, RASTER_NODATA, SCENE_FILES
from glaciermap.datasets.synthetic import GLACIER_FILE, PRESETS, REGION_CODES, generate_scene
from glaciermap.errors import ConfigError

ALL_FILES = [*SCENE_FILES.values(), GLACIER_FILE, "stats.json", "scene.json"]


def _digest(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ALL_FILES}


@pytest.fixture(scope="session")
def small_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("syn") / "a", size=(160, 192), seed=5)


def test_determinism(small_scene: Path, tmp_path: Path) -> None:
    again = generate_scene(tmp_path / "b", size=(160, 192), seed=5)
    other = generate_scene(tmp_path / "c", size=(160, 192), seed=6)
    assert _digest(small_scene) == _digest(again)
    diff = [k for k, v in _digest(other).items() if _digest(small_scene)[k] != v]
    assert "optical.tif" in diff and "dem.tif" in diff


def test_grid_and_metadata(small_scene: Path) -> None:
    meta = json.loads((small_scene / "scene.json").read_text())
    assert meta["region_code"] == "HMA" and meta["crs"] == "EPSG:32643"
    assert (meta["height"], meta["width"], meta["pixel_size"], meta["seed"]) == (160, 192, 10.0, 5)
    ref = None
    for modality, name in SCENE_FILES.items():
        with rasterio.open(small_scene / name) as src:
            assert src.crs.to_string() == "EPSG:32643"
            assert (src.height, src.width) == (160, 192)
            assert src.transform.a == 10.0 and src.transform.e == -10.0
            ref = ref or src.transform
            assert src.transform == ref
            if modality == "labels":
                assert src.dtypes == ("uint8",) and src.nodata == IGNORE_INDEX
            else:
                assert src.descriptions == BANDS[modality]
                assert set(src.dtypes) == {"float32"} and src.nodata == RASTER_NODATA
    with rasterio.open(small_scene / GLACIER_FILE) as src:
        assert src.dtypes == ("uint32",) and src.nodata == 0


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="karakoram"):
        generate_scene(tmp_path, preset="nowhere")
    with pytest.raises(ConfigError, match="size"):
        generate_scene(tmp_path, size=(32, 512))
    assert not any(tmp_path.iterdir())


def test_presets_have_region_codes() -> None:
    assert {"karakoram", "svalbard", "alaska"} <= set(PRESETS)
    assert all(p.region_code in REGION_CODES for p in PRESETS.values())
    assert len(REGION_CODES) == 11 and list(REGION_CODES) == sorted(REGION_CODES)
