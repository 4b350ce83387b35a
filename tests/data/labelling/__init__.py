"""A tiny synthetic crevasse world and predictions for the labelling tests.

The world is 4 x 12 split-images of 40 x 48 px (160 x 576 px, quick-look scale 1, so quick-look pixels are
raster pixels): tile ``id = 12 * row + col``. Predictions are the true class with the confidence
``CONF[id % 10]``.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from glaciermap.synthetic.crevasses import generate_crevasse_world

TILES = (4, 12)
TILE_SIZE = (40, 48)
CONF = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95)


def make_world(folder: Path) -> dict[str, Path]:
    """Write the world, ``predictions.csv`` and ``predictions.gpkg``; returns their paths by name."""
    generate_crevasse_world(folder, seed=3, tiles=TILES, tile_size=TILE_SIZE)
    truth = pd.read_csv(folder / "labels.csv")
    pred = truth.assign(confidence=[CONF[int(t) % 10] for t in truth["tile_id"]])
    pred.to_csv(folder / "predictions.csv", index=False)
    index = gpd.read_file(folder / "index.gpkg")
    frame = gpd.GeoDataFrame(
        pred.merge(index[["tile_id", "geometry"]], on="tile_id"), geometry="geometry", crs=index.crs
    )
    frame.to_file(folder / "predictions.gpkg", driver="GPKG")
    assert all(isinstance(g, shapely.Polygon) for g in frame.geometry)
    return {
        "image": folder / "pan.tif",
        "index": folder / "index.gpkg",
        "truth": folder / "labels.csv",
        "predictions": folder / "predictions.csv",
        "predictions_gpkg": folder / "predictions.gpkg",
    }
