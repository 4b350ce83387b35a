"""Tests of the synthetic crevasse world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from glaciermap.datamodules.split_images import stratified_split
from glaciermap.datasets.crevasse_classes import CrevasseClassV2
from glaciermap.datasets.crevasse_labels import read_label_table
from glaciermap.datasets.split_index import read_split_index
from glaciermap.errors import ConfigError
from glaciermap.synthetic.crevasses import generate_crevasse_world
from glaciermap.transforms.vario import directional_vario

TILE = (30, 40)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 22 x 22 split-images = 121 regions = 11 full rounds of the 11 classes
    return generate_crevasse_world(
        tmp_path_factory.mktemp("w") / "world", seed=5, tiles=(22, 22), tile_size=TILE
    )


def tile_means(folder: Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    index = read_split_index(folder / "index.gpkg")
    labels = read_label_table(folder / "labels.csv")
    assert labels["tile_id"].tolist() == index["tile_id"].tolist()
    with rasterio.open(folder / "pan.tif") as src:
        pan = src.read(1).astype(np.float64)
    means = np.array(
        [pan[r : r + h, c : c + w].mean() for r, c, h, w in index[["row", "col", "height", "width"]].values]
    )
    return means, labels["label"].to_numpy(), index


def test_world_files_grid_and_labels(world: Path) -> None:
    meta = json.loads((world / "scene.json").read_text())
    assert (meta["height"], meta["width"], meta["pixel_size"], meta["crs"]) == (660, 880, 0.5, "EPSG:32633")
    assert meta["n_tiles"] == 484 and set(meta["tiles_per_class"].values()) == {44}
    with rasterio.open(world / "pan.tif") as src, rasterio.open(world / "classes.tif") as cls_src:
        assert src.count == 1 and src.dtypes[0] == "uint16" and src.nodata == 0 and src.res == (0.5, 0.5)
        assert src.crs.to_epsg() == 32633
        pan, classes = src.read(1), cls_src.read(1)
    assert pan.min() >= 1 and pan.max() <= 2047
    _, labels, index = tile_means(world)
    for (r, c), label in zip(index[["row", "col"]].values, labels):
        assert np.all(classes[r : r + TILE[0], c : c + TILE[1]] == label)
    import geopandas as gpd

    assert gpd.read_file(world / "aoi.gpkg").crs.to_epsg() == 4326


def test_world_is_deterministic_by_seed(tmp_path: Path, world: Path) -> None:
    again = generate_crevasse_world(tmp_path / "again", seed=5, tiles=(22, 22), tile_size=TILE)
    other = generate_crevasse_world(tmp_path / "other", seed=6, tiles=(22, 22), tile_size=TILE)
    with (
        rasterio.open(world / "pan.tif") as a,
        rasterio.open(again / "pan.tif") as b,
        rasterio.open(other / "pan.tif") as c,
    ):
        first = a.read(1)
        assert np.array_equal(first, b.read(1)) and not np.array_equal(first, c.read(1))
    assert (world / "labels.csv").read_text() == (again / "labels.csv").read_text()
    with pytest.raises(ConfigError, match="even"):
        generate_crevasse_world(tmp_path / "bad", tiles=(3, 4))


def test_brightness_alone_stays_near_chance(world: Path) -> None:
    means, labels, _ = tile_means(world)
    train, test = stratified_split(labels, (0.5, 0.5), seed=0)
    class_mean = np.array([means[train][labels[train] == k].mean() for k in range(11)])
    predicted = np.abs(means[test][:, None] - class_mean[None, :]).argmin(axis=1)
    accuracy = float((predicted == labels[test]).mean())
    assert accuracy < 1.5 / 11, accuracy


def test_structure_separates_classes(world: Path) -> None:
    """Vario features carry the class: a nearest-class-mean on log vario beats brightness by far."""
    _, labels, index = tile_means(world)
    with rasterio.open(world / "pan.tif") as src:
        pan = src.read(1)
    import torch

    tiles = np.stack([pan[r : r + TILE[0], c : c + TILE[1]] for r, c in index[["row", "col"]].values])
    features = torch.log1p(directional_vario(torch.from_numpy(tiles.astype(np.float32)))).flatten(1).numpy()
    train, test = stratified_split(labels, (0.5, 0.5), seed=0)
    centroids = np.stack([features[train][labels[train] == k].mean(0) for k in range(11)])
    distance = ((features[test][:, None, :] - centroids[None]) ** 2).sum(-1)
    accuracy = float((distance.argmin(1) == labels[test]).mean())
    assert accuracy > 3 / 11, accuracy
    assert len(CrevasseClassV2) == 11


def test_plot_example_draws_the_docs_figure(world: Path, tmp_path: Path) -> None:
    """``examples/plot_crevasse_world.py`` (which makes docs/img/crevasse_world.png) runs on a world folder."""
    import runpy

    from PIL import Image

    script = Path(__file__).resolve().parents[2] / "examples" / "plot_crevasse_world.py"
    out = tmp_path / "figure.png"
    runpy.run_path(str(script))["main"]([str(out), "--world", str(world)])
    with Image.open(out) as img:
        assert img.size == (1296, 828)
        assert len(img.convert("L").getcolors(256) or []) > 50  # not a blank canvas
