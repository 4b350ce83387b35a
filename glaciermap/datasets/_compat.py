"""The few torchgeo calls whose form depends on the installed torchgeo version (0.8, 0.9, 0.10).

Python 3.11 installs torchgeo 0.8.x; Python >= 3.12 gets 0.9 or 0.10. What glaciermap relies on, and how
it differs between them:

* ``RasterDataset(paths, crs, res, bands, transforms, cache)`` and ``dataset[query]`` with a query of plain
  ``(slice(xmin, xmax), slice(ymin, ymax))`` returning ``"image"`` ``(C, H, W)`` or ``"mask"`` ``(H, W)``:
  the same in all three (0.8 replaced 0.7's ``BoundingBox`` queries by slices). The *other* keys of
  torchgeo's samples differ (0.8: ``bounds`` is the query itself; 0.9+: ``bounds`` is a 9-value tensor and
  a ``transform`` tensor is added), so glaciermap builds its own ``bounds`` and never reads torchgeo's.
* ``GridGeoSampler`` and ``get_random_bounding_box``: present in all three; 0.10 deprecates
  ``GridGeoSampler`` in favour of ``GriddedPatchSampler`` (a warning is emitted, silenced here).
* The cached file handles of ``RasterDataset`` (``_cached_load_warp_file``, an ``lru_cache`` on the class)
  must be dropped in forked DataLoader workers; the cache's name is the same in all three, its signature is
  not, which does not matter for ``cache_clear``.
* Task classes moved from ``torchgeo.trainers`` to ``torchgeo.tasks`` in 0.9 (not used by the datasets).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torchgeo.datasets import GeoDataset, RasterDataset
from torchgeo.samplers import GridGeoSampler, get_random_bounding_box


def grid_windows(dataset: GeoDataset, size: int, stride: int) -> list[tuple[slice, slice]]:
    """Windows of a regular grid over a dataset's footprint, from torchgeo's grid sampler.

    torchgeo <= 0.9 starts the grid at the bottom-left corner of the footprint; the last row and column may
    reach past the top and right edges (so edges are covered; the part outside the scene is nodata).

    Args:
        dataset: A dataset with one footprint in its index.
        size: Window size in pixels.
        stride: Step between windows in pixels.

    Returns:
        ``(x, y)`` slices in CRS units, one per window.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        sampler = GridGeoSampler(dataset, size, stride)
    return [(query[0], query[1]) for query in sampler]


def random_window(
    bounds: tuple[float, float, float, float], size: int, res: tuple[float, float], generator: torch.Generator
) -> tuple[slice, slice]:
    """A random window of ``size`` pixels inside ``bounds``, snapped to the pixel grid.

    Args:
        bounds: ``(left, bottom, right, top)`` in CRS units, at least ``size`` pixels wide and high.
        size: Window size in pixels.
        res: Pixel size ``(x, y)`` in CRS units.
        generator: Random number generator.

    Returns:
        ``(x, y)`` slices in CRS units.
    """
    extent = (size * res[1], size * res[0])
    x, y = get_random_bounding_box(bounds, extent, res, generator)
    return x, y


def clear_file_handle_cache() -> None:
    """Drop the file handles torchgeo's ``RasterDataset`` caches (call in each DataLoader worker).

    A forked worker inherits the parent's open GDAL handles, whose file offsets are shared with the parent
    and the other workers; reading through them concurrently can return wrong pixels.
    """
    cached: Any = getattr(RasterDataset, "_cached_load_warp_file", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()
