"""Scene mapping: sliding-window prediction of whole scenes into Cloud-Optimised GeoTIFFs.

The public API (see ``docs/mapping.md``; names are imported on first use, so that importing
:mod:`glaciermap.inference.options` for the command line does not load the models)::

    map_scene(model, scene_dir, out_dir, options=None, **overrides) -> MapResult
    map_scenes(model, scenes, out_root, rank=None, world_size=None, ...) -> list[MapResult]
    load_pretrained(path) -> PretrainedModel   # .ckpt or .safetensors: network + bands + normalisation + classes
    PretrainedModel.from_model(model, norm_stats)   # (both re-exported from glaciermap.models.pretrained)
    ScenePredictor(mapping, MapOptions(...)).stream(scene_dir)   # the blended strips, for custom writers

The band-ratio rule maps through the same path as a model (:func:`glaciermap.baselines.band_ratio_model`).
The Lightning path for many scenes on several GPUs (``glaciermap predict``) is
:mod:`glaciermap.tasks.mapping` with :mod:`glaciermap.datamodules.mapping`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glaciermap.lazy import lazy_exports

if TYPE_CHECKING:
    from glaciermap.calibration.base import PROBABILITY_CLIP
    from glaciermap.inference.classify import (
        Classification,
        classify_scene,
        load_classifier,
        write_classification,
    )
    from glaciermap.inference.confidence import entropy_confidence
    from glaciermap.inference.mapping import ModelSource, map_scene, map_scenes, resolve_model, shard_scenes
    from glaciermap.inference.options import Backend, MapOptions, Precision
    from glaciermap.inference.outputs import MapResult
    from glaciermap.inference.predictor import DEFAULT_WINDOW, ScenePredictor, SceneStream, Strip
    from glaciermap.inference.progress import MappingProgress
    from glaciermap.inference.tta import DIHEDRAL, Dihedral, tta_predict
    from glaciermap.inference.windows import (
        BlendWindow,
        GridLayout,
        WindowEdge,
        WindowGrid,
        blend_weights,
        overlap_stride,
        window_grid,
        window_profile,
    )
    from glaciermap.inference.writers import COG_OPTIONS, StreamingRaster
    from glaciermap.models.pretrained import (
        CALIBRATOR_KINDS,
        Calibrator,
        PretrainedModel,
        calibrator_from_dict,
        load_pretrained,
        register_calibrator,
    )

_MODULES: dict[str, tuple[str, ...]] = {
    "glaciermap.calibration.base": ("PROBABILITY_CLIP",),
    "classify": (
        "Classification",
        "classify_scene",
        "load_classifier",
        "write_classification",
    ),
    "confidence": ("entropy_confidence",),
    "mapping": (
        "ModelSource",
        "map_scene",
        "map_scenes",
        "resolve_model",
        "shard_scenes",
    ),
    "options": (
        "Backend",
        "MapOptions",
        "Precision",
    ),
    "outputs": ("MapResult",),
    "predictor": (
        "DEFAULT_WINDOW",
        "ScenePredictor",
        "SceneStream",
        "Strip",
    ),
    "progress": ("MappingProgress",),
    "tta": (
        "DIHEDRAL",
        "Dihedral",
        "tta_predict",
    ),
    "windows": (
        "BlendWindow",
        "GridLayout",
        "WindowEdge",
        "WindowGrid",
        "blend_weights",
        "overlap_stride",
        "window_grid",
        "window_profile",
    ),
    "writers": (
        "COG_OPTIONS",
        "StreamingRaster",
    ),
    "glaciermap.models.pretrained": (
        "CALIBRATOR_KINDS",
        "Calibrator",
        "PretrainedModel",
        "calibrator_from_dict",
        "load_pretrained",
        "register_calibrator",
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())

__all__ = [
    "CALIBRATOR_KINDS",
    "COG_OPTIONS",
    "DEFAULT_WINDOW",
    "DIHEDRAL",
    "PROBABILITY_CLIP",
    "Backend",
    "BlendWindow",
    "Calibrator",
    "Classification",
    "Dihedral",
    "GridLayout",
    "MapOptions",
    "MapResult",
    "MappingProgress",
    "ModelSource",
    "Precision",
    "PretrainedModel",
    "ScenePredictor",
    "SceneStream",
    "StreamingRaster",
    "Strip",
    "WindowEdge",
    "WindowGrid",
    "blend_weights",
    "calibrator_from_dict",
    "classify_scene",
    "entropy_confidence",
    "load_classifier",
    "load_pretrained",
    "map_scene",
    "map_scenes",
    "overlap_stride",
    "register_calibrator",
    "resolve_model",
    "shard_scenes",
    "tta_predict",
    "window_grid",
    "window_profile",
    "write_classification",
]
