"""Bias optimisation in the mapping path: ``glaciermap map --bias-optimisation`` and the mapping task.

:func:`scene_stream` is what every mapping path (:func:`glaciermap.inference.map_scene`,
:func:`glaciermap.inference.map_scenes`, :class:`glaciermap.tasks.mapping.SceneMappingTask`) asks for a
scene's strips. With ``MapOptions(bias_optimisation=True)`` it first optimises the scene's region vector
(:func:`glaciermap.inference.bias_optimisation.optimise_region`, the fast procedure, GlaViTU paper
"Strategies", Eqs. 1-2) with ``bo_windows`` windows of the map's own window size, ``bo_steps`` steps and
``seed``, then maps the scene with ``softmax(r)``. The stream carries ``region_vector.json`` (written
atomically with the maps) and ``summary["bias_optimisation"] = {**vector.summary(), "file":
"region_vector.json"}``. A vector given with ``region_vector_record`` (``--region-vector FILE``) is recorded
in the summary as reused.
"""

from __future__ import annotations

import os
from dataclasses import replace

from glaciermap.inference.bias_optimisation import RegionVector, optimise_region
from glaciermap.inference.predictor import ScenePredictor, SceneStream

__all__ = ["REGION_VECTOR_FILE", "SUMMARY_KEY", "optimise_for_map", "scene_stream", "stream_with_vector"]

REGION_VECTOR_FILE = "region_vector.json"
"""Name of the per-scene file holding the optimised vector."""

SUMMARY_KEY = "bias_optimisation"
"""Key of the optimisation's record in ``summary.json``."""


def optimise_for_map(predictor: ScenePredictor, scene_dir: str | os.PathLike[str]) -> RegionVector:
    """Optimise a scene's region vector with the map's settings (GlaViTU paper Eqs. 1-2).

    Args:
        predictor: The scene predictor (its options give ``bo_windows``, ``bo_steps``, ``bo_lr_floor``, ``seed``, the window
            size, batch size, device and precision).
        scene_dir: The scene folder.

    Returns:
        The optimised vector.

    Raises:
        ConfigError: If the model has no region encoding.
        InputError: If the scene has too few valid windows of the map's window size.
    """
    o = predictor.options
    return optimise_region(
        predictor.mapping,
        scene_dir,
        procedure="fast",
        windows=o.bo_windows,
        steps=o.bo_steps,
        lr_floor=o.bo_lr_floor,
        seed=0 if o.seed is None else o.seed,
        window_size=o.window_size,
        batch_size=predictor.batch_size,
        device=predictor.device,
        precision=o.precision,
    )


def stream_with_vector(
    predictor: ScenePredictor, scene_dir: str | os.PathLike[str], vector: RegionVector
) -> SceneStream:
    """The scene's stream mapped with an optimised vector, carrying ``region_vector.json`` and its record.

    Args:
        predictor: The scene predictor (its other options are kept).
        scene_dir: The scene folder.
        vector: The optimised vector (its slots must be the model's).

    Returns:
        The stream, with ``attachments["region_vector.json"]`` and ``extra_summary["bias_optimisation"]``.

    Raises:
        ConfigError: If the vector's slots are not the model's.
    """
    vector.check_model(predictor.mapping.region_codes)
    options = replace(
        predictor.options,
        bias_optimisation=False,
        region=None,
        region_vector=vector.probabilities,
        region_vector_record=None,
    )
    successor = ScenePredictor(predictor.mapping, options)
    successor.adopt_backend(predictor)
    stream = successor.stream(scene_dir)
    stream.attachments[REGION_VECTOR_FILE] = vector.to_json()
    stream.extra_summary[SUMMARY_KEY] = {**vector.summary(), "file": REGION_VECTOR_FILE}
    return stream


def scene_stream(predictor: ScenePredictor, scene_dir: str | os.PathLike[str]) -> SceneStream:
    """A scene's stream, after bias optimisation when the options ask for it.

    Args:
        predictor: The scene predictor.
        scene_dir: The scene folder.

    Returns:
        The stream (see :func:`stream_with_vector` with ``bias_optimisation``; a given
        ``region_vector_record`` goes into ``summary["bias_optimisation"]``).

    Raises:
        ConfigError: If bias optimisation is asked for a model without region encoding.
        InputError: If the scene is not what the model needs or has too few valid windows.
    """
    if predictor.options.bias_optimisation:
        return stream_with_vector(predictor, scene_dir, optimise_for_map(predictor, scene_dir))
    stream = predictor.stream(scene_dir)
    if predictor.options.region_vector_record is not None:
        stream.extra_summary[SUMMARY_KEY] = dict(predictor.options.region_vector_record)
    return stream
