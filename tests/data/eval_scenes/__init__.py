"""Two tiny reference scenes and predictions with hand-known differences, for the evaluation tests.

Grid: 40 x 40 pixels of 10 m (a pixel is 100 m2), EPSG:32643. Reference scene ``a`` (region HMA):

* glacier 1: rows 2-11, cols 2-21, clean ice (200 px, 0.02 km2);
* glacier 2: rows 20-35, cols 5-14 (160 px): clean rows 20-29, debris rows 30-35 (60 px);
* glacier 3: rows 20-29, cols 25-34, clean (100 px);
* row 39 is nodata (255) in the labels.

Prediction ``a`` (``classes.tif``): glacier 1 exactly, only the clean part of glacier 2, glacier 3 missed, and
a false positive at rows 2-11, cols 26-35 (100 px, 0.01 km2). Glacier level: TP 300, FP 100, FN 160 -> IoU
300 / 560.

Reference scene ``b`` (region SVAL): glacier 1 rows 5-24, cols 5-24 (400 px, clean); prediction ``b`` is it
shifted one column east (TP 380, FP 20, FN 20).

``optical.tif`` makes the band ratio (3.2, 0.17) find exactly the clean ice: background ratio 1, blue 0.1;
clean ice ratio 5, blue 0.5; debris ratio 1.2, blue 0.15.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rasterio.transform import from_origin

from glaciermap.constants import BANDS, RASTER_NODATA
from tests.data.scenes import write_raster

SIZE = 40
CRS = "EPSG:32643"
TRANSFORM = from_origin(500000.0, 4000000.0, 10.0, 10.0)


def reference_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, glacier ids)`` of reference scene ``name``."""
    labels = np.zeros((SIZE, SIZE), np.uint8)
    ids = np.zeros((SIZE, SIZE), np.uint32)
    if name == "a":
        ids[2:12, 2:22] = 1
        ids[20:36, 5:15] = 2
        ids[20:30, 25:35] = 3
        labels[ids > 0] = 1
        labels[30:36, 5:15] = 2
        labels[39] = 255
    else:
        ids[5:25, 5:25] = 1
        labels[ids > 0] = 1
    return labels, ids


def prediction_array(name: str) -> np.ndarray:
    """``classes.tif`` of prediction ``name``."""
    classes = np.zeros((SIZE, SIZE), np.uint8)
    if name == "a":
        classes[2:12, 2:22] = 1
        classes[20:30, 5:15] = 1
        classes[2:12, 26:36] = 1
    else:
        classes[5:25, 6:26] = 1
    return classes


def optical_array(labels: np.ndarray) -> np.ndarray:
    """Reflectance making the band ratio detect exactly the clean ice."""
    ratio = np.select([labels == 1, labels == 2], [5.0, 1.2], 1.0).astype(np.float32)
    blue = np.select([labels == 1, labels == 2], [0.5, 0.15], 0.1).astype(np.float32)
    optical = np.full((6, SIZE, SIZE), 0.2, np.float32)
    optical[0], optical[4] = blue, 0.05
    optical[2] = ratio * 0.05
    return optical


def _write(path: Path, data: np.ndarray, nodata: float | None) -> None:
    write_raster(path, data, crs=CRS, transform=TRANSFORM, nodata=nodata, descriptions=None)


def write_reference(root: Path, names: tuple[str, ...] = ("a", "b")) -> Path:
    """Reference scene folders ``root/<name>`` with labels, glacier ids, optical bands and ``scene.json``."""
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        labels, ids = reference_arrays(name)
        _write(folder / "labels.tif", labels[None], 255)
        _write(folder / "glaciers.tif", ids[None], 0)
        write_raster(
            folder / "optical.tif", optical_array(labels), crs=CRS, transform=TRANSFORM, nodata=RASTER_NODATA,
            descriptions=BANDS["optical"],
        )  # fmt: skip
        meta = {"region": "HMA" if name == "a" else "SVAL", "crs": CRS, "pixel_size": 10.0}
        (folder / "scene.json").write_text(json.dumps(meta))
    return root


def write_predictions(root: Path, names: tuple[str, ...] = ("a", "b")) -> Path:
    """Mapping output folders ``root/<name>`` with ``classes.tif``."""
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        _write(folder / "classes.tif", prediction_array(name)[None], 255)
    return root
