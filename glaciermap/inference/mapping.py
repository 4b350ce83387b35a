"""Mapping scenes: the Python API behind ``glaciermap map``.

* :func:`map_scene` maps one scene folder of any size with a checkpoint, the band-ratio baseline or an
  in-memory :class:`~glaciermap.inference.checkpoint.MappingModel`, streaming windows through the model
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

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from glaciermap.errors import ConfigError
from glaciermap.inference.checkpoint import MappingModel, load_checkpoint
from glaciermap.inference.outputs import MapResult, row_areas_km2, write_outputs
from glaciermap.inference.predictor import MapOptions, Precision, ScenePredictor
from glaciermap.inference.progress import MappingProgress
from glaciermap.inference.windows import BlendWindow, GridLayout

T = TypeVar("T")

BAND_RATIO = "band-ratio"
"""Name that selects the band-ratio baseline instead of a checkpoint."""

ModelSource = MappingModel | str | os.PathLike[str]
"""A :class:`MappingModel`, a checkpoint path, or :data:`BAND_RATIO`."""


def resolve_model(
    source: ModelSource, *, band_ratio_thresholds: str | os.PathLike[str] | None = None
) -> MappingModel:
    """Turn a model source into a :class:`MappingModel`.

    Args:
        source: A mapping model, a ``.ckpt`` path, or ``"band-ratio"`` (also ``"band_ratio"``).
        band_ratio_thresholds: Thresholds JSON for the band ratio (``glaciermap fit-band-ratio``).

    Returns:
        The mapping model.

    Raises:
        InputError: If the checkpoint cannot be loaded.
        ConfigError: If thresholds are given for something other than the band ratio.
    """
    if isinstance(source, MappingModel):
        mapping = source
    elif str(source) in (BAND_RATIO, "band_ratio"):
        return MappingModel.band_ratio(band_ratio_thresholds)
    else:
        mapping = load_checkpoint(source)
    if band_ratio_thresholds is not None:
        raise ConfigError("band-ratio thresholds were given but the model is not the band ratio")
    return mapping


def map_scene(
    model: ModelSource,
    scene_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overlap: float = 0.5,
    window_size: int | None = None,
    window: BlendWindow = "gaussian",
    layout: GridLayout = "compact",
    batch_size: int = 8,
    tta: bool = False,
    mc_passes: int = 0,
    seed: int | None = 0,
    write_probabilities: bool = False,
    quicklook: bool = True,
    device: str = "auto",
    precision: Precision = "auto",
    channels_last: bool = True,
    region: str | None = None,
    region_vector: Sequence[float] | None = None,
    progress: bool | MappingProgress = False,
) -> MapResult:
    """Map a scene folder of any size.

    Args:
        model: Checkpoint path, ``"band-ratio"``, or a :class:`MappingModel`.
        scene_dir: The scene folder (rasters of the model's modalities and ``scene.json``).
        out_dir: Output folder (created); see :mod:`glaciermap.inference.outputs` for the files.
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)``.
        window_size: Window side in pixels (default: the model's training size, else 384).
        window: Blending weight, ``"gaussian"`` or ``"cosine"`` (:mod:`glaciermap.inference.windows`).
        layout: Padded grid, ``"compact"`` or ``"reference"``.
        batch_size: Windows per forward pass.
        tta: Test-time augmentation (eight dihedral transforms, averaged).
        mc_passes: Monte-Carlo dropout passes (0/1: off); writes ``mc_std.tif``.
        seed: Seed of torch's global generator for Monte-Carlo dropout.
        write_probabilities: Also write ``probabilities.tif``.
        quicklook: Also write ``quicklook.png``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: ``"auto"`` (bf16 autocast on CUDA), ``"32"`` or ``"bf16"``.
        channels_last: Channels-last tensors (default True).
        region: Region code for region-encoding models (default: the scene's, if known to the model).
        region_vector: Soft region vector for region-encoding models (e.g. from bias optimisation).
        progress: Show a progress bar (or pass an open :class:`MappingProgress`).

    Returns:
        The written files and the summary.

    Raises:
        InputError: If the checkpoint or the scene is not what was expected.
        ConfigError: If an option is invalid.
    """
    start = time.perf_counter()
    mapping = resolve_model(model)
    options = MapOptions(
        window_size=window_size,
        overlap=overlap,
        window=window,
        layout=layout,
        batch_size=batch_size,
        tta=tta,
        mc_passes=mc_passes,
        seed=seed,
        device=device,
        precision=precision,
        channels_last=channels_last,
        region=region,
        region_vector=region_vector,
    )
    predictor = ScenePredictor(mapping, options)
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
    stream = predictor.stream(scene_dir)
    opts = predictor.options
    extra: dict[str, Any] = {
        "options": {
            "overlap": opts.overlap,
            "batch_size": opts.batch_size,
            "tta": opts.tta,
            "mc_passes": opts.mc_passes,
            "layout": opts.layout,
            "write_probabilities": write_probabilities,
        }
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


def scene_pixels(scene_dir: str | os.PathLike[str]) -> float:
    """Pixel count of a scene from its ``scene.json`` (``height * width``), 1 if unknown (for sharding).

    Args:
        scene_dir: The scene folder.

    Returns:
        The pixel count.
    """
    try:
        meta = json.loads((Path(scene_dir) / "scene.json").read_text())
        return float(int(meta["height"]) * int(meta["width"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 1.0


def distributed_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of ``torch.distributed``, else of the ``RANK``/``WORLD_SIZE`` variables, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def expand_scene_dirs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Scene folders from a list of scene folders and/or folders of scene folders.

    A path with a ``scene.json`` is a scene; otherwise its sub-folders that have one are taken, sorted by
    name.

    Args:
        paths: Scene folders or parents of scene folders.

    Returns:
        The scene folders, in the given order (sub-folders sorted).

    Raises:
        InputError: If a path does not exist or holds no scene folder.
    """
    from glaciermap.constants import SCENE_METADATA
    from glaciermap.errors import InputError

    scenes: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / SCENE_METADATA).is_file():
            scenes.append(path)
            continue
        if not path.is_dir():
            raise InputError(
                f"scene folder {path} not found; expected a folder with {SCENE_METADATA} and rasters"
            )
        found = sorted(p for p in path.iterdir() if (p / SCENE_METADATA).is_file())
        if not found:
            raise InputError(
                f"{path} is neither a scene folder nor a folder of scene folders (no {SCENE_METADATA} found)"
            )
        scenes.extend(found)
    return scenes


def map_scenes(
    model: ModelSource,
    scenes: Sequence[str | os.PathLike[str]],
    out_root: str | os.PathLike[str],
    *,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = False,
    write_probabilities: bool = False,
    quicklook: bool = True,
    **options: Any,
) -> list[MapResult]:
    """Map several scenes, each into ``out_root/<scene folder name>``; this rank's share only.

    Args:
        model: Checkpoint path, ``"band-ratio"``, or a :class:`MappingModel` (loaded once).
        scenes: Scene folders (the same list on every rank).
        out_root: Folder of the per-scene output folders.
        rank: This process's rank (default: :func:`distributed_rank`).
        world_size: Number of processes (default: :func:`distributed_rank`).
        progress: Show a progress bar.
        write_probabilities: Also write ``probabilities.tif``.
        quicklook: Also write ``quicklook.png``.
        **options: :class:`~glaciermap.inference.predictor.MapOptions` fields (overlap, tta, device, ...).

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
    default_rank, default_size = distributed_rank()
    rank = default_rank if rank is None else rank
    world_size = default_size if world_size is None else world_size
    mine = shard_scenes(scenes, rank, world_size, [scene_pixels(s) for s in scenes])
    predictor = ScenePredictor(resolve_model(model), MapOptions(**options))
    results = []
    with MappingProgress(enabled=progress) as bar:
        for scene in mine:
            out = Path(out_root) / Path(scene).name
            results.append(
                _map_one(predictor, scene, out, write_probabilities, quicklook, bar, time.perf_counter())
            )
    return results
