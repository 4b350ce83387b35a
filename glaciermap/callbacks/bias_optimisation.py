"""Bias optimisation inside ``glaciermap predict``: adapt the region vector to every scene before mapping it.

:class:`BiasOptimisation` runs :func:`~glaciermap.inference.bias_optimisation.optimise_region` (GlaViTU
paper Eqs. 1-2) on each scene just before the mapping task's ``predict_step`` and hands the optimised vector
to the task through its mapping options (``options.region_vector``), so the scene is mapped with
``softmax(r)`` instead of the one-hot of its region. The vector and its entropy trace are written to
``<output_dir>/<scene>/region_vector.json`` and, once the prediction writer has written the scene's
``summary.json``, added to it under ``"bias_optimisation"``.

Example (a ``glaciermap predict`` config, next to ``ScenePredictionWriter``)::

    trainer:
      callbacks:
        - class_path: glaciermap.tasks.mapping.ScenePredictionWriter
          init_args: {output_dir: maps}
        - class_path: glaciermap.callbacks.BiasOptimisation
          init_args: {windows: 32, steps: 50, seed: 0}
    data:
      init_args: {scenes: [scenes/], batch_size: 1}
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from glaciermap.errors import ConfigError
from glaciermap.inference.bias_optimisation import Procedure, RegionVector, optimise_region
from glaciermap.io import atomic_output

REGION_VECTOR_FILE = "region_vector.json"
"""Name of the per-scene file holding the optimised vector."""

SUMMARY_KEY = "bias_optimisation"
"""Key of the optimisation's record in ``summary.json``."""


class BiasOptimisation(Callback):
    """Optimise the region vector of every scene before the mapping task maps it.

    Works with a module that has ``mapping`` (a :class:`~glaciermap.models.pretrained.PretrainedModel`) and
    ``options`` (:class:`~glaciermap.inference.options.MapOptions`), i.e. the ``glaciermap predict``
    mapping task, and one scene per prediction step (``data.batch_size: 1``).

    Args:
        procedure: ``"fast"`` or ``"authors"`` (see :mod:`glaciermap.inference.bias_optimisation`).
        windows: Valid windows sampled per scene (fast).
        steps: Most Adam updates (fast).
        lr: Adam learning rate (default 1.0 fast, 1e-4 authors).
        seed: Seed of the window sample / crops.
        window_size: Window side (default: the mapping task's window size, else the model's training size).
        min_windows: Fewest valid windows a scene must have.
        output_dir: Folder of the per-scene output folders (default: the ``output_dir`` of the trainer's
            prediction writer, if any).

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
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.procedure: Procedure = procedure
        self.windows = windows
        self.steps = steps
        self.lr = lr
        self.seed = seed
        self.window_size = window_size
        self.min_windows = min_windows
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.vectors: dict[str, RegionVector] = {}
        self._options: Any = None
        self._pending: list[tuple[Path, RegionVector]] = []

    def _out_dir(self, trainer: Trainer) -> Path | None:
        if self.output_dir is not None:
            return self.output_dir
        for cb in trainer.callbacks:  # type: ignore[attr-defined]
            folder = getattr(cb, "output_dir", None)
            if folder is not None and cb is not self:
                return Path(folder)
        return None

    def on_predict_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Optimise the batch's scene and set the vector on the module's mapping options.

        Raises:
            ConfigError: If the module is not the mapping task, the batch holds several scenes, or the model
                has no region encoding.
            InputError: If the scene has too few valid windows.
        """
        mapping = getattr(pl_module, "mapping", None)
        options = getattr(pl_module, "options", None)
        if mapping is None or options is None or not hasattr(options, "region_vector"):
            raise ConfigError(
                "BiasOptimisation needs the scene mapping task (a module with 'mapping' and 'options')"
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
            device=pl_module.device,
        )
        self.vectors[scene.name] = vector
        self._options = options
        pl_module.options = replace(options, region_vector=vector.probabilities)
        out = self._out_dir(trainer)
        if out is not None:
            vector.save(out / scene.name / REGION_VECTOR_FILE)
            self._pending.append((out / scene.name / "summary.json", vector))

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Restore the module's options; record the optimisation in summaries already written."""
        if self._options is not None:
            pl_module.options = self._options
            self._options = None
        self._flush()

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Record the optimisation in the summaries written after this callback's batch end."""
        self._flush()

    def _flush(self) -> None:
        waiting = []
        for path, vector in self._pending:
            if not path.is_file():
                waiting.append((path, vector))
                continue
            summary = json.loads(path.read_text())
            summary[SUMMARY_KEY] = {**vector.summary(), "file": REGION_VECTOR_FILE}
            with atomic_output(path) as tmp:
                tmp.write_text(json.dumps(summary, indent=2, allow_nan=False))
        self._pending = waiting


__all__ = ["REGION_VECTOR_FILE", "SUMMARY_KEY", "BiasOptimisation"]
