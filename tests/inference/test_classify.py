"""``glaciermap classify`` on the tiny synthetic crevasse world: the four outputs, thresholds, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import lightning as L
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine

from glaciermap.cli import main
from glaciermap.datamodules import SplitImageDataModule
from glaciermap.datasets.split_images import collate_split_images
from glaciermap.datasets.split_index import read_split_index
from glaciermap.tasks import SplitImageClassificationTask
from tests.data.crevasse_world import TILE_SIZE, TILES, VARIO_FEATURES, tiny_world


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny world and a VarioNet (Eq. 7) checkpoint trained for two steps on it."""
    base = tmp_path_factory.mktemp("classify")
    world = tiny_world(base / "world")
    task = SplitImageClassificationTask(
        model="varionet_eq7",
        model_kwargs={
            "vario_features": VARIO_FEATURES,
            "hidden": [1],
            "input_mode": "normalised",
            "size": [32, 48],
        },
        vario_settings={"tile_size": list(TILE_SIZE), "intensity": "uint8", "lag_threshold": 0.8},
    )
    trainer = L.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=base,
        limit_val_batches=0, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(task, datamodule=SplitImageDataModule(root=world, batch_size=4, intensity="uint8"))
    ckpt = base / "varionet.ckpt"
    trainer.save_checkpoint(ckpt)
    return world, ckpt


def test_classify_writes_the_four_outputs(trained: tuple[Path, Path], tmp_path: Path) -> None:
    world, ckpt = trained
    out = tmp_path / "out"
    argv = ["classify", "--checkpoint", str(ckpt), "--image", str(world / "pan.tif"), "--out", str(out)]
    assert main(argv) == 0
    n = TILES[0] * TILES[1]
    assert len(read_split_index(world / "index.gpkg")) == n
    tiles = gpd.read_file(out / "tiles.gpkg")
    with rasterio.open(world / "pan.tif") as src:
        scene_crs, scene_transform = src.crs, src.transform
    assert len(tiles) == n and tiles.crs == scene_crs
    names = json.loads((out / "summary.json").read_text())["class_counts"].keys()
    assert set(tiles["class_name"]) <= set(names) and "undisturbed_snow" in names
    assert ((tiles["beta"] >= 0) & (tiles["beta"] <= 1)).all()
    assert ((tiles["confidence"] > 0) & (tiles["confidence"] <= 1)).all()
    with rasterio.open(out / "classes.tif") as cls, rasterio.open(out / "confidence.tif") as conf:
        assert (cls.height, cls.width) == TILES and cls.crs == scene_crs and cls.nodata == 255
        assert cls.transform == scene_transform * Affine.scale(TILE_SIZE[1], TILE_SIZE[0])
        grid, conf_grid = cls.read(1), conf.read(1)
        assert cls.driver == "GTiff" and conf.dtypes[0] == "float32"
    rows = (tiles["row"] // TILE_SIZE[0]).to_numpy()
    cols = (tiles["col"] // TILE_SIZE[1]).to_numpy()
    assert np.array_equal(grid[rows, cols], tiles["class_id"].to_numpy())
    assert np.allclose(conf_grid[rows, cols], tiles["confidence"].to_numpy(), atol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    tile_km2 = TILE_SIZE[0] * TILE_SIZE[1] * abs(scene_transform.a * scene_transform.e) / 1e6
    assert summary["tiles"] == n and summary["tile_area_km2"] == pytest.approx(tile_km2)
    for name, count in summary["class_counts"].items():
        assert count == int((tiles["class_name"] == name).sum())
        assert summary["class_area_km2"][name] == pytest.approx(count * tile_km2)
    assert summary["mean_confidence"] == pytest.approx(tiles["confidence"].mean())
    assert (out / "quicklook.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*partial*")) and not list(out.glob("*.scratch.tif"))


def test_min_confidence_aoi_and_confident_export(trained: tuple[Path, Path], tmp_path: Path) -> None:
    world, ckpt = trained
    tiles = read_split_index(world / "index.gpkg")
    aoi = gpd.GeoDataFrame(
        geometry=[shapely.box(*tiles[tiles["row"] < 5 * TILE_SIZE[0]].total_bounds)], crs=tiles.crs
    )
    aoi_path = tmp_path / "aoi.gpkg"
    aoi.to_file(aoi_path)
    out = tmp_path / "out"
    base = ["classify", "--checkpoint", str(ckpt), "--image", str(world / "pan.tif"), "--out", str(out)]
    assert main([*base, "--aoi", str(aoi_path), "--min-confidence", "1.0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tiles"] == 5 * TILES[1] and summary["unlabelled"] == 5 * TILES[1]
    with rasterio.open(out / "classes.tif") as cls, rasterio.open(out / "confidence.tif") as conf:
        assert (cls.read(1) == 255).all()
        c = conf.read(1)
        assert np.isfinite(c[:5]).all() and np.isnan(c[5:]).all()
    assert set(gpd.read_file(out / "tiles.gpkg")["class_name"]) == {"unlabelled"}
    assert main([*base, "--export-confident", "0.0", "--equal"]) == 0
    exported = pd.read_csv(out / "confident_labels.csv")
    counts = exported["label"].value_counts()
    assert len(exported) == json.loads((out / "summary.json").read_text())["confident_exported"]
    assert counts.min() == counts.max() and len(exported) == counts.min() * len(counts)


class _CountingRaster:
    """A raster handle that records the window of every read (pixels, not seconds)."""

    def __init__(self, src: Any, log: list[tuple[int, int]]) -> None:
        self._src, self._log = src, log

    def __enter__(self) -> _CountingRaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self._src.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._src, name)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = self._src.read(*args, **kwargs)
        self._log.append(data.shape[-2:])
        return data


def test_classification_work_is_linear_in_the_scene_and_single_threaded(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the throughput fall of issue 16: every tile is read once by its own window, the index and the
    8-bit statistics read each pixel once, and the forward passes run with the requested intra-op threads
    (default one: two threads on shared cores stalled every small operation), restored afterwards."""
    import torch

    from glaciermap.datasets import split_images, split_index
    from glaciermap.inference import classify as classify_module
    from glaciermap.synthetic.crevasses import generate_crevasse_world

    _, ckpt = trained
    reads: list[tuple[int, int]] = []
    threads: list[int] = []

    def counting(path: Any, what: str) -> _CountingRaster:
        return _CountingRaster(rasterio.open(path), reads)

    def collate(samples: Any) -> Any:
        threads.append(torch.get_num_threads())
        return collate_split_images(samples)

    monkeypatch.setattr(split_images, "open_raster", counting)
    monkeypatch.setattr(split_index, "open_raster", counting)
    monkeypatch.setattr(classify_module, "collate_split_images", collate)
    before = torch.get_num_threads()
    tile_px = TILE_SIZE[0] * TILE_SIZE[1]
    for tiles, n_threads in (((22, 2), 1), ((22, 8), 2)):
        world = generate_crevasse_world(tmp_path / f"w{tiles[0]}", seed=3, tiles=tiles, tile_size=TILE_SIZE)
        reads.clear()
        threads.clear()
        kwargs = {"threads": n_threads} if n_threads > 1 else {}
        result = classify_module.classify_scene(ckpt, world / "pan.tif", **kwargs)
        n = tiles[0] * tiles[1]
        windows = [r for r in reads if r == TILE_SIZE]
        assert len(result.index) == n and len(windows) == n  # one window read per tile
        # the index's strips, the 8-bit statistics and the tile windows: each pixel read three times
        assert sum(h * w for h, w in reads) == 3 * n * tile_px
        assert set(threads) == {n_threads} and result.threads == n_threads
        assert torch.get_num_threads() == before
