"""Scene mapping: sliding-window prediction of whole scenes into Cloud-Optimised GeoTIFFs.

The public API (see ``docs/mapping.md``)::

    map_scene(model, scene_dir, out_dir, overlap=0.5, tta=False, mc_passes=0, ...) -> MapResult
    map_scenes(model, scenes, out_root, rank=None, world_size=None, ...) -> list[MapResult]
    load_pretrained(path) -> PretrainedModel   # .ckpt or .safetensors: network + bands + normalisation + classes
    PretrainedModel.from_model(model, norm_stats)   # (both re-exported from glaciermap.models.pretrained)
    ScenePredictor(mapping, MapOptions(...)).stream(scene_dir)   # the blended strips, for custom writers

The Lightning path for many scenes on several GPUs lives in :mod:`glaciermap.inference.lightning` (imported
on demand).
"""

from glaciermap.inference.confidence import entropy_confidence
from glaciermap.inference.mapping import map_scene, map_scenes, shard_scenes
from glaciermap.inference.options import MapOptions
from glaciermap.inference.outputs import MapResult
from glaciermap.inference.predictor import ScenePredictor
from glaciermap.inference.windows import blend_weights, window_grid
from glaciermap.models.pretrained import Calibrator, PretrainedModel, load_pretrained, register_calibrator

__all__ = [
    "Calibrator",
    "MapOptions",
    "MapResult",
    "PretrainedModel",
    "ScenePredictor",
    "blend_weights",
    "entropy_confidence",
    "load_pretrained",
    "map_scene",
    "map_scenes",
    "register_calibrator",
    "shard_scenes",
    "window_grid",
]
