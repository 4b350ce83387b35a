"""Datasets: scene folders on disk and the torchgeo datasets that read them.

* :mod:`~glaciermap.datasets.scene_folder`: the scene-folder format: validation (:func:`inspect_scene`),
  ``scene.json`` metadata, normalisation statistics, finding scenes.
* :mod:`~glaciermap.datasets.scene`: torchgeo raster datasets per modality, :class:`SceneDataset` and
  :class:`SceneCollection` returning the sample contract (``docs/glossary.md``).

The submodules are imported on first use of one of their names (PEP 562): the scene-folder helpers do not
pay torchgeo's import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glaciermap.lazy import lazy_exports

if TYPE_CHECKING:
    from glaciermap.datasets.scene import (
        RASTERS,
        DemRaster,
        ImageFormat,
        InsarRaster,
        LabelRaster,
        OpticalRaster,
        SarRaster,
        SceneCollection,
        SceneDataset,
        SceneQuery,
        SceneRaster,
        Target,
        ThermalRaster,
        collate_samples,
        map_labels,
        region_index,
        resolve_bands,
    )
    from glaciermap.datasets.scene_folder import (
        LABEL_VALUES,
        LABELS,
        SCENE_STATS,
        LabelPolicy,
        RasterInfo,
        SceneInfo,
        check_has_valid_pixels,
        check_label_values,
        compute_raster_stats,
        find_scenes,
        holds_scenes,
        inspect_raster,
        inspect_scene,
        invalid_pixels,
        is_scene_folder,
        read_scene_metadata,
        read_scene_stats,
        scene_date,
        scene_pixels,
        scene_region,
        write_scene_metadata,
    )

_MODULES = {
    "scene": (
        "RASTERS",
        "DemRaster",
        "ImageFormat",
        "InsarRaster",
        "LabelRaster",
        "OpticalRaster",
        "SarRaster",
        "SceneCollection",
        "SceneDataset",
        "SceneQuery",
        "SceneRaster",
        "Target",
        "ThermalRaster",
        "collate_samples",
        "map_labels",
        "region_index",
        "resolve_bands",
    ),
    "scene_folder": (
        "LABELS",
        "LABEL_VALUES",
        "SCENE_STATS",
        "LabelPolicy",
        "RasterInfo",
        "SceneInfo",
        "check_has_valid_pixels",
        "check_label_values",
        "compute_raster_stats",
        "find_scenes",
        "holds_scenes",
        "inspect_raster",
        "inspect_scene",
        "invalid_pixels",
        "is_scene_folder",
        "read_scene_metadata",
        "read_scene_stats",
        "scene_date",
        "scene_pixels",
        "scene_region",
        "write_scene_metadata",
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())

__all__ = [
    "LABELS",
    "LABEL_VALUES",
    "RASTERS",
    "SCENE_STATS",
    "DemRaster",
    "ImageFormat",
    "InsarRaster",
    "LabelPolicy",
    "LabelRaster",
    "OpticalRaster",
    "RasterInfo",
    "SarRaster",
    "SceneCollection",
    "SceneDataset",
    "SceneInfo",
    "SceneQuery",
    "SceneRaster",
    "Target",
    "ThermalRaster",
    "check_has_valid_pixels",
    "check_label_values",
    "collate_samples",
    "compute_raster_stats",
    "find_scenes",
    "holds_scenes",
    "inspect_raster",
    "inspect_scene",
    "invalid_pixels",
    "is_scene_folder",
    "map_labels",
    "read_scene_metadata",
    "read_scene_stats",
    "region_index",
    "resolve_bands",
    "scene_date",
    "scene_pixels",
    "scene_region",
    "write_scene_metadata",
]
