"""Mapping scenes: the Python API behind ``glaciermap map``.

* :func:`map_scene` maps one scene folder of any size with a checkpoint, released weights or an
  in-memory :class:`~glaciermap.models.pretrained.PretrainedModel`, streaming windows through the model
  (:class:`~glaciermap.inference.predictor.ScenePredictor`) into Cloud-Optimised GeoTIFFs, a quick-look and
  a summary (:func:`~glaciermap.inference.outputs.write_outputs`).
* :func:`map_scenes` maps a list of scenes, each into ``out_root/<scene name>``; given a rank and a world size
  (or inside ``torch.distributed``) it maps only that rank's share (:func:`shard_scenes`), so several
  processes (``torchrun``, one per GPU) write every scene exactly once.

Example:
    >>> result = map_scene("model.ckpt", "scenes/hardanger", "maps/hardanger", overlap=0.5, tta=True)
    >>> result.summary["glacier_area_km2"], result.files["classes"]
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from glaciermap.datasets.scene_folder import scene_pixels
from glaciermap.distributed import rank_and_world_size
from glaciermap.errors import ConfigError
from glaciermap.inference.heap import retained_heap
from glaciermap.inference.options import MapOptions, with_overrides
from glaciermap.inference.outputs import MapResult, row_areas_km2, write_outputs
from glaciermap.inference.predictor import ScenePredictor
from glaciermap.inference.progress import MappingProgress
from glaciermap.inference.region_mapping import scene_stream
from glaciermap.models.pretrained import PretrainedModel, load_pretrained

T = TypeVar("T")

ModelSource = PretrainedModel | str | os.PathLike[str]
"""A :class:`PretrainedModel` or the path of a checkpoint (``.ckpt``) or released weights (``.safetensors``)."""


def resolve_model(source: ModelSource) -> PretrainedModel:
    """Turn a model source into a :class:`PretrainedModel`.

    Any model that follows the segmentation-model interface maps through the same path; the band-ratio rule
    is one of them (:func:`glaciermap.baselines.band_ratio_model`).

    Args:
        source: A mapping model, or the path of a checkpoint or of released weights.

    Returns:
        The mapping model.

    Raises:
        InputError: If the checkpoint cannot be loaded.
    """
    return source if isinstance(source, PretrainedModel) else load_pretrained(source)


def map_scene(
    model: ModelSource,
    scene_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: MapOptions | None = None,
    *,
    write_probabilities: bool = False,
    quicklook: bool = True,
    progress: bool | MappingProgress = False,
    **overrides: Any,
) -> MapResult:
    """Map a scene folder of any size.

    Args:
        model: Checkpoint or weights path, or a :class:`PretrainedModel`.
        scene_dir: The scene folder (rasters of the model's modalities and ``scene.json``).
        out_dir: Output folder (created); see :mod:`glaciermap.inference.outputs` for the files.
        options: How to map (:class:`~glaciermap.inference.options.MapOptions`; default: its defaults).
        write_probabilities: Also write ``probabilities.tif``.
        quicklook: Also write ``quicklook.png``.
        progress: Show a progress bar (or pass an open :class:`MappingProgress`).
        **overrides: :class:`~glaciermap.inference.options.MapOptions` fields replacing those of
            ``options`` (``overlap=0.25``, ``tta=True``, ...).

    Returns:
        The written files and the summary.

    Raises:
        InputError: If the checkpoint or the scene is not what was expected.
        ConfigError: If an option is invalid or unknown.
    """
    start = time.perf_counter()
    opts = with_overrides(options, overrides)
    predictor = ScenePredictor(resolve_model(model), opts)
    return _map_one(predictor, scene_dir, out_dir, write_probabilities, quicklook, progress, start)


def _map_one(
    predictor: ScenePredictor,
    scene_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    write_probabilities: bool,
    quicklook: bool,
    progress: bool | MappingProgress,
    start: float,
) -> MapResult:
    # on a CPU, freed activations stay in the heap for the next window (glaciermap.inference.heap)
    with retained_heap(predictor.device.type == "cpu"):
        stream = scene_stream(predictor, scene_dir)
        extra: dict[str, Any] = {
            "options": {**predictor.options.summary(), "write_probabilities": write_probabilities}
        }
        if isinstance(progress, MappingProgress):
            bar, own = progress, False
        else:
            bar, own = MappingProgress(enabled=bool(progress)), True
        try:
            if own:
                bar.__enter__()
            bar.start_scene(stream.scene.name, float(row_areas_km2(stream.scene).sum() * stream.scene.width))
            return write_outputs(
                stream,
                predictor.mapping,
                out_dir,
                write_probabilities=write_probabilities,
                quicklook=quicklook,
                progress=bar.advance,
                extra_summary=extra,
                start_time=start,
            )
        finally:
            stream.close()
            if own:
                bar.__exit__(None, None, None)


def shard_scenes(
    scenes: Sequence[T],
    rank: int,
    world_size: int,
    weights: Sequence[float] | None = None,
) -> list[T]:
    """This rank's share of a scene list: disjoint across ranks, together all scenes, each exactly once.

    Without weights, scene ``i`` goes to rank ``i mod world_size``. With weights (e.g. pixel counts) the
    scenes are dealt largest first to the least-loaded rank (ties: the lower rank), which balances the
    work; every rank computes the same assignment from the same list.

    Args:
        scenes: All scenes, in the same order on every rank.
        rank: This process's rank, ``0 <= rank < world_size``.
        world_size: Number of processes.
        weights: Optional cost of each scene.

    Returns:
        This rank's scenes, in their original order.

    Raises:
        ConfigError: If the rank or world size is invalid, or the weights do not match the scenes.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} with world_size {world_size}; expected 0 <= rank < world_size")
    if weights is None:
        return [s for i, s in enumerate(scenes) if i % world_size == rank]
    if len(weights) != len(scenes):
        raise ConfigError(f"{len(weights)} weights for {len(scenes)} scenes; expected one weight per scene")
    load = [0.0] * world_size
    owner = [0] * len(scenes)
    for i in sorted(range(len(scenes)), key=lambda i: (-float(weights[i]), i)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += float(weights[i])
    return [s for i, s in enumerate(scenes) if owner[i] == rank]


def map_scenes(
    model: ModelSource,
    scenes: Sequence[str | os.PathLike[str]],
    out_root: str | os.PathLike[str],
    *,
    rank: int | None = None,
    world_size: int | None = None,
    options: MapOptions | None = None,
    progress: bool = False,
    write_probabilities: bool = False,
    quicklook: bool = True,
    **overrides: Any,
) -> list[MapResult]:
    """Map several scenes, each into ``out_root/<scene folder name>``; this rank's share only.

    Args:
        model: Checkpoint or weights path, or a :class:`PretrainedModel` (loaded once).
        scenes: Scene folders (the same list on every rank).
        out_root: Folder of the per-scene output folders.
        rank: This process's rank (default: :func:`glaciermap.distributed.rank_and_world_size`).
        world_size: Number of processes (default: :func:`glaciermap.distributed.rank_and_world_size`).
        options: How to map (:class:`~glaciermap.inference.options.MapOptions`).
        progress: Show a progress bar.
        write_probabilities: Also write ``probabilities.tif``.
        quicklook: Also write ``quicklook.png``.
        **overrides: :class:`~glaciermap.inference.options.MapOptions` fields replacing those of ``options``.

    Returns:
        The results of this rank's scenes.

    Raises:
        ConfigError: If two scenes share a folder name (their outputs would collide) or an option is invalid.
        InputError: If the checkpoint or a scene is not what was expected.
    """
    names = [Path(s).name for s in scenes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"several scenes are named {dupes[0]!r}; scene folder names must be unique")
    default_rank, default_size = rank_and_world_size()
    rank = default_rank if rank is None else rank
    world_size = default_size if world_size is None else world_size
    mine = shard_scenes(scenes, rank, world_size, [scene_pixels(s) for s in scenes])
    predictor = ScenePredictor(resolve_model(model), with_overrides(options, overrides))
    results = []
    with MappingProgress(enabled=progress) as bar:
        for scene in mine:
            out = Path(out_root) / Path(scene).name
            results.append(
                _map_one(predictor, scene, out, write_probabilities, quicklook, bar, time.perf_counter())
            )
    return results
