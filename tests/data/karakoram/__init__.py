"""Tiny Karakoram ZY-3 folders (multispectral, LST, slope, labels on one 2 m grid), generated on demand.

``make_karakoram_folder(root, size)`` writes a folder :class:`~glaciermap.datasets.karakoram.KarakoramZY3`
reads: reflectance rising down the rows, LST 268.5 K (colder, 262 K, on the glacier), slope 25 degrees (10 on
the glacier), labels 0 background (left third), 1 clean ice (middle third), 2 debris-covered ice (right third).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

LEFT, TOP, RES = 560000.0, 4000000.0, 2.0
CRS = "EPSG:32643"  # UTM 43N, the Karakoram


def write(
    path: Path, data: np.ndarray, *, res: float = RES, crs: str = CRS, nodata: float | None = None
) -> None:
    """Write a ``(C, H, W)`` array as a GeoTIFF on the Karakoram test grid (top-left ``LEFT, TOP``)."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        crs=crs,
        transform=from_origin(LEFT, TOP, res, res),
        nodata=nodata,
    ) as dst:
        dst.write(data)


def make_karakoram_folder(root: Path, size: int = 64) -> Path:
    """Write one Karakoram folder of ``size`` x ``size`` pixels; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rows = np.arange(size, dtype=np.float32)[None, :, None] / size
    ms = 0.1 * np.arange(1, 5, dtype=np.float32)[:, None, None] + 0.1 * rows
    write(root / "ZY3_MUX_ms.tif", np.ascontiguousarray(np.broadcast_to(ms, (4, size, size))), nodata=-9999.0)
    labels = np.zeros((1, size, size), dtype=np.uint8)
    third = size // 3
    labels[0, :, third : 2 * third] = 1
    labels[0, :, 2 * third :] = 2
    lst = np.where(labels > 0, 262.0, 268.5).astype(np.float32)
    write(root / "LC08_lst.tif", lst, nodata=-9999.0)
    write(root / "zy3dem_slope.tif", np.where(labels > 0, 10.0, 25.0).astype(np.float32), nodata=-9999.0)
    write(root / "labels.tif", labels, nodata=255)
    return root
