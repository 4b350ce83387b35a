"""Bias optimisation inside ``glaciermap predict``: adapt the region vector to every scene before mapping it.

:class:`BiasOptimisation` runs :func:`~glaciermap.inference.bias_optimisation.optimise_region` (GlaViTU
paper Eqs. 1-2) on each scene just before the mapping task's ``predict_step`` and hands the optimised vector
to the task (its ``region_vectors``), so the scene is mapped with ``softmax(r)`` instead of the one-hot of
its region. The prediction writer writes the vector and its entropy trace to
``<output_dir>/<scene>/region_vector.json`` and under ``"bias_optimisation"`` in the scene's ``summary.json``
(:mod:`glaciermap.inference.region_mapping`). Without the callback's extra settings (procedure, learning
rate, window size), ``model.options.bias_optimisation: true`` does the same.

Example (a ``glaciermap predict`` config, next to ``ScenePredictionWriter``)::

    trainer:
      callbacks:
        - class_path: glaciermap.tasks.mapping.ScenePredictionWriter
          init_args: {output_dir: maps}
        - class_path: glaciermap.callbacks.BiasOptimisation
          init_args: {windows: 32, steps: 50, seed: 0}
    model:
      checkpoint: region.ckpt
    data:
      init_args: {scenes: [scenes/], batch_size: 1}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from glaciermap.errors import ConfigError
from glaciermap.inference.bias_optimisation import FAST_LR_FLOOR, Procedure, RegionVector, optimise_region
from glaciermap.inference.region_mapping import REGION_VECTOR_FILE, SUMMARY_KEY


class BiasOptimisation(Callback):
    """Optimise the region vector of every scene before the mapping task maps it.

    Works with the ``glaciermap predict`` mapping task (a module with ``mapping``, a
    :class:`~glaciermap.models.pretrained.PretrainedModel`, ``options`` and ``region_vectors``) and one scene
    per prediction step (``data.batch_size: 1``).

    Args:
        procedure: ``"fast"`` or ``"authors"`` (see :mod:`glaciermap.inference.bias_optimisation`).
        windows: Valid windows sampled per scene (fast).
        steps: Most Adam updates (fast).
        lr: Adam learning rate (default 1.0 fast, 1e-4 authors).
        seed: Seed of the window sample / crops.
        window_size: Window side (default: the mapping task's window size, else the model's training size).
        min_windows: Fewest valid windows a scene must have.
        lr_floor: Fast: stop when rejected steps have halved the learning rate below this (default
            :data:`~glaciermap.inference.bias_optimisation.FAST_LR_FLOOR`, 1e-3; 0: never).

    Attributes:
        vectors: ``{scene name: RegionVector}`` of the scenes optimised by this process.
    """

    def __init__(
        self,
        procedure: Procedure = "fast",
        windows: int = 32,
        steps: int = 50,
        lr: float | None = None,
        seed: int = 0,
        window_size: int | None = None,
        min_windows: int = 2,
        lr_floor: float = FAST_LR_FLOOR,
    ) -> None:
        super().__init__()
        self.procedure: Procedure = procedure
        self.windows = windows
        self.steps = steps
        self.lr = lr
        self.seed = seed
        self.window_size = window_size
        self.min_windows = min_windows
        self.lr_floor = lr_floor
        self.vectors: dict[str, RegionVector] = {}

    def on_predict_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Optimise the batch's scene and hand the vector to the mapping task.

        Raises:
            ConfigError: If the module is not the mapping task, the batch holds several scenes, or the model
                has no region encoding.
            InputError: If the scene has too few valid windows.
        """
        mapping = getattr(pl_module, "mapping", None)
        options = getattr(pl_module, "options", None)
        vectors = getattr(pl_module, "region_vectors", None)
        if mapping is None or options is None or not isinstance(vectors, dict):
            raise ConfigError(
                "BiasOptimisation needs the scene mapping task (a module with 'mapping', 'options' and "
                "'region_vectors')"
            )
        if not isinstance(batch, list) or len(batch) != 1:
            raise ConfigError(
                "BiasOptimisation optimises one region vector per scene: set data.batch_size to 1 "
                f"(this prediction step has {len(batch) if isinstance(batch, list) else '?'} scenes)"
            )
        scene = Path(batch[0]["scene"])
        vector = optimise_region(
            mapping,
            scene,
            procedure=self.procedure,
            windows=self.windows,
            steps=self.steps,
            lr=self.lr,
            seed=self.seed,
            window_size=self.window_size or getattr(options, "window_size", None),
            min_windows=self.min_windows,
            lr_floor=self.lr_floor,
            device=pl_module.device,
        )
        self.vectors[scene.name] = vector
        vectors[scene.name] = vector


__all__ = ["REGION_VECTOR_FILE", "SUMMARY_KEY", "BiasOptimisation"]
