"""Write tiny scene folders (and broken variants) for the dataset and data-module tests.

Values are simple and known, so tests can assert them:

* band ``b`` of modality ``m`` holds ``BASE[m][b] + ROW_STEP[m] * row`` (float32), with the values below
  (physically plausible, so the mapper's unit checks accept them);
* labels: columns ``[0, w/3)`` are 0 (background), ``[w/3, 2w/3)`` 1 (clean ice), the rest 2 (debris);
* ``stats.json`` holds the exact statistics of the valid pixels (computed with numpy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin

from glaciermap.constants import BANDS, RASTER_NODATA, SCENE_FILES, SCENE_METADATA

BASE = {
    "optical": (0.1, 0.15, 0.2, 0.25, 0.3, 0.35),
    "dem": (4000.0, 10.0),
    "thermal": (260.0,),
    "sar": (0.05, 0.06),
    "sar_cross": (0.01, 0.012),
    "insar": (0.2, 0.3),
}
"""Value of row 0 of every band of each modality."""
ROW_STEP = {"optical": 0.01, "dem": 0.01, "thermal": 0.01, "sar": 0.001, "sar_cross": 0.001, "insar": 0.001}
"""Increase per row of every band of each modality."""


def band_values(modality: str, height: int, width: int) -> np.ndarray:
    """The clean (all-valid) bands of a modality, ``(C, H, W)`` float32."""
    count = len(BANDS[modality])
    rows = np.arange(height, dtype=np.float64)[None, :, None]
    base = np.asarray(BASE[modality], dtype=np.float64)[:count, None, None]
    values = base + ROW_STEP[modality] * rows
    return np.broadcast_to(values, (count, height, width)).astype(np.float32)


def label_values(height: int, width: int) -> np.ndarray:
    """The clean labels, ``(H, W)`` uint8: three vertical stripes 0, 1, 2."""
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[:, width // 3 : 2 * width // 3] = 1
    labels[:, 2 * width // 3 :] = 2
    return labels


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str,
    transform: Any,
    nodata: float | None,
    descriptions: Sequence[str] | None,
) -> None:
    """Write a ``(C, H, W)`` array as a GeoTIFF."""
    count, height, width = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=count,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data)
        if descriptions is not None:
            dst.descriptions = tuple(descriptions)


def write_scene(
    folder: Path,
    *,
    size: tuple[int, int] = (64, 64),
    pixel_size: float = 10.0,
    crs: str = "EPSG:32643",
    origin: tuple[float, float] = (500000.0, 4000000.0),
    modalities: Sequence[str] = ("optical", "dem", "thermal", "sar", "insar"),
    labels: bool = True,
    stats: bool = True,
    region: str = "HMA",
    year: int = 2020,
    nodata_box: tuple[int, int, int, int] | None = None,
    nan_box: tuple[int, int, int, int] | None = None,
    label_nodata_box: tuple[int, int, int, int] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a scene folder with known values.

    Args:
        folder: Output folder (created).
        size: ``(height, width)`` in pixels.
        pixel_size: Pixel size (m).
        crs: CRS of all rasters.
        origin: ``(left, top)`` of the grid (m).
        modalities: Modalities to write.
        labels: Write ``labels.tif``.
        stats: Write ``stats.json`` (exact statistics of the valid pixels).
        region: Region code in ``scene.json``.
        year: Year in ``scene.json``.
        nodata_box: ``(row0, row1, col0, col1)`` set to -9999 in band 0 of the first modality.
        nan_box: ``(row0, row1, col0, col1)`` set to NaN in the last band of the last modality.
        label_nodata_box: ``(row0, row1, col0, col1)`` set to 255 in the labels.
        metadata: Extra or replacement keys of ``scene.json``.

    Returns:
        The folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    transform = from_origin(origin[0], origin[1], pixel_size, pixel_size)
    arrays = {m: band_values(m, height, width).copy() for m in modalities}
    if nodata_box is not None and modalities:
        r0, r1, c0, c1 = nodata_box
        arrays[modalities[0]][0, r0:r1, c0:c1] = RASTER_NODATA
    if nan_box is not None and modalities:
        r0, r1, c0, c1 = nan_box
        arrays[modalities[-1]][-1, r0:r1, c0:c1] = np.nan
    for m, data in arrays.items():
        write_raster(
            folder / SCENE_FILES[m],
            data,
            crs=crs,
            transform=transform,
            nodata=RASTER_NODATA,
            descriptions=BANDS[m],
        )
    if labels:
        lab = label_values(height, width)
        if label_nodata_box is not None:
            r0, r1, c0, c1 = label_nodata_box
            lab[r0:r1, c0:c1] = 255
        write_raster(
            folder / SCENE_FILES["labels"],
            lab[None],
            crs=crs,
            transform=transform,
            nodata=255,
            descriptions=None,
        )
    if stats:
        entry = {}
        for m, data in arrays.items():
            own = ~(np.isnan(data) | (data == RASTER_NODATA)).any(axis=0)
            values = data[:, own].astype(np.float64)
            if values.shape[1] == 0:  # no valid pixel: zero statistics, as the streaming computation gives
                values = np.zeros((data.shape[0], 1))
            entry[m] = {
                "mean": values.mean(axis=1).tolist(),
                "std": values.std(axis=1).tolist(),
                "min": values.min(axis=1).tolist(),
                "max": values.max(axis=1).tolist(),
                "count": int(own.sum()),  # 0 where the modality has no valid pixel
            }
        (folder / "stats.json").write_text(json.dumps(entry))
    meta: dict[str, Any] = {
        "region": region,
        "preset": "test",
        "year": year,
        "sensor": "test",
        "crs": crs,
        "pixel_size": pixel_size,
        "height": height,
        "width": width,
        "seed": 0,
    }
    meta.update(metadata or {})
    (folder / SCENE_METADATA).write_text(json.dumps(meta))
    return folder
