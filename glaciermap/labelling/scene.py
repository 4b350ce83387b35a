"""The scene behind the labelling tool: quick-look, split-image footprints, full-resolution tiles, vario curves.

The quick-look is the pan band read at a reduced resolution (at most :data:`QUICKLOOK_MAX` pixels on the long
side), stretched to 8 bits with the reference's scaling constant (the same one the 8-bit tiles use, reference
notes section 2.1), in the raster's pixel grid (north-up for the usual north-up products). Footprints are
given in quick-look pixels: ``[x, y, width, height]`` of each split-image.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
import torch

from glaciermap.datasets.crevasse_labels import read_label_table
from glaciermap.datasets.split_images import SplitImageDataset
from glaciermap.datasets.split_index import read_split_index
from glaciermap.errors import InputError
from glaciermap.io import open_raster
from glaciermap.transforms.vario import DIRECTIONS, directional_vario, scale_to_uint8, vario_lags

QUICKLOOK_MAX = 1600
"""Long side of the quick-look (pixels)."""


def png_bytes(array: npt.NDArray[np.uint8]) -> bytes:
    """Encode an 8-bit grayscale array as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def read_predictions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read predictions: a GeoPackage or CSV with ``tile_id``, ``label`` (class name or id), ``confidence``.

    Args:
        path: ``.gpkg`` (any geometry; ignored) or ``.csv``.

    Returns:
        Label table (``tile_id``, ``label`` id, ``confidence``).

    Raises:
        InputError: For a missing file, missing columns or an unknown class.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found (expected predictions with tile_id,label,confidence)")
    if p.suffix.lower() == ".csv":
        return read_label_table(p)
    import geopandas as gpd

    frame = pd.DataFrame(gpd.read_file(p)).drop(columns="geometry", errors="ignore")
    if "confidence" not in frame:
        raise InputError(f"{p}: lacks the column confidence (expected tile_id,label,confidence)")
    return read_label_table(frame.assign(label=frame["label"].astype(str)))


@dataclass
class Scene:
    """A pan raster, its split-image index and optional predictions, ready to serve.

    Args:
        image: Single-band raster of the index.
        index_path: Split-image index (``index.gpkg`` or ``index.csv``).
        predictions_path: Optional predictions (:func:`read_predictions`).

    Raises:
        InputError: For a missing file, or an index whose tiles fall outside the raster.
    """

    image: Path
    index_path: Path
    predictions_path: Path | None = None
    index: pd.DataFrame = field(init=False)
    dataset: SplitImageDataset = field(init=False)
    predictions: pd.DataFrame | None = field(init=False, default=None)
    scale: float = field(init=False)
    shape: tuple[int, int] = field(init=False)
    _quicklook: bytes | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        """Read the index and the predictions; check that the index fits the raster."""
        with open_raster(self.image, "panchromatic band") as src:
            self.shape = (int(src.height), int(src.width))
        index = read_split_index(self.index_path)
        too_far = (index["row"] + index["height"] > self.shape[0]) | (
            index["col"] + index["width"] > self.shape[1]
        )
        if bool(too_far.any()):
            raise InputError(
                f"{self.index_path}: tiles reach beyond {self.image} ({self.shape[0]} x {self.shape[1]} px; "
                "expected the index made from this image)"
            )
        self.index = pd.DataFrame(index.drop(columns="geometry", errors="ignore")).reset_index(drop=True)
        self.dataset = SplitImageDataset(self.image, index, vario=False)
        self.scale = min(1.0, QUICKLOOK_MAX / max(self.shape))
        if self.predictions_path is not None:
            self.predictions = read_predictions(self.predictions_path)
        self._by_id = {int(t): i for i, t in enumerate(self.index["tile_id"])}

    def position(self, tile_id: int) -> int:
        """Row of ``tile_id`` in the index.

        Raises:
            InputError: For a tile not in the index.
        """
        if tile_id not in self._by_id:
            raise InputError(f"tile {tile_id}: not in the split-image index")
        return self._by_id[tile_id]

    def quicklook_png(self) -> bytes:
        """The 8-bit quick-look as PNG (computed once)."""
        if self._quicklook is None:
            from rasterio.enums import Resampling

            out = (max(1, round(self.shape[0] * self.scale)), max(1, round(self.shape[1] * self.scale)))
            with open_raster(self.image, "panchromatic band") as src:
                data = src.read(1, out_shape=out, resampling=Resampling.average)
            scale_max = self.dataset.scale_max or self._scale_max()
            self._quicklook = png_bytes(scale_to_uint8(data.astype(np.float32), scale_max).numpy())
        return self._quicklook

    def _scale_max(self) -> float:
        self.dataset.uint8_tile(int(self.index["tile_id"].iloc[0]))  # computes and keeps scale_max
        assert self.dataset.scale_max is not None
        return float(self.dataset.scale_max)

    def tile_png(self, tile_id: int) -> bytes:
        """The full-resolution 8-bit split-image as PNG.

        Raises:
            InputError: For a tile not in the index.
        """
        self.position(tile_id)
        return png_bytes(self.dataset.uint8_tile(tile_id))

    def vario(self, tile_id: int) -> dict[str, Any]:
        """The four directional vario curves of a tile (reference notes section 2), in DN squared.

        Each curve holds its direction's valid lags only (the zero padding of the feature layout is dropped).

        Raises:
            InputError: For a tile not in the index.
        """
        from rasterio.windows import Window

        row = self.index.iloc[self.position(tile_id)]
        window = Window(int(row["col"]), int(row["row"]), int(row["width"]), int(row["height"]))
        with open_raster(self.image, "panchromatic band") as src:
            tile = torch.from_numpy(src.read(1, window=window).astype(np.float32))
        curves = directional_vario(tile).numpy()
        counts = vario_lags(int(tile.shape[0]), int(tile.shape[1])).counts
        return {
            "tile_id": tile_id,
            "directions": list(DIRECTIONS),
            "curves": [curves[k, :n].round(4).tolist() for k, n in enumerate(counts)],
        }

    def footprints(self) -> list[dict[str, Any]]:
        """Every split-image with its quick-look rectangle ``[x, y, w, h]`` and grid row/column."""
        s = self.scale
        t = self.index
        return [
            {
                "id": int(tid),
                "rect": [c * s, r * s, w * s, h * s],
                "row": int(r // h),
                "col": int(c // w),
            }
            for tid, r, c, h, w in zip(t["tile_id"], t["row"], t["col"], t["height"], t["width"])
        ]

    def tiles_in_polygon(self, points: list[list[float]]) -> list[int]:
        """Tiles whose centre lies inside a polygon given in quick-look pixels.

        Raises:
            InputError: For fewer than three points or an invalid polygon.
        """
        if len(points) < 3:
            raise InputError(f"polygon of {len(points)} points: expected at least 3 [x, y] points")
        try:
            polygon = shapely.make_valid(shapely.Polygon([(float(x), float(y)) for x, y in points]))
        except (TypeError, ValueError) as err:
            raise InputError(f"polygon: {err} (expected a list of [x, y] points)") from None
        t = self.index
        cx = (t["col"] + t["width"] / 2.0).to_numpy() * self.scale
        cy = (t["row"] + t["height"] / 2.0).to_numpy() * self.scale
        inside = shapely.contains_xy(polygon, cx, cy)
        return [int(v) for v in t["tile_id"].to_numpy()[inside]]
