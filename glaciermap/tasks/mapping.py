"""Mapping many scenes with Lightning: the prediction-only task and the prediction writer.

* :class:`SceneMappingTask` holds the model (a checkpoint, released weights or the band ratio) and the
  :class:`~glaciermap.inference.options.MapOptions`; its ``predict_step`` returns, for each scene of the
  batch, a lazy :class:`~glaciermap.inference.predictor.SceneStream` on the module's device.
* :class:`ScenePredictionWriter` (a ``BasePredictionWriter``) consumes each stream, streaming the scene
  through the model into its output folder ``output_dir/<scene name>`` (COGs, quick-look, summary; see
  :mod:`glaciermap.inference.outputs`), and at the end writes ``output_dir/index.json`` listing every
  scene's summary, gathered from all ranks.

The scenes come from :class:`glaciermap.datamodules.mapping.SceneMappingDataModule`
(``examples/predict_scenes.yaml``)::

    LightningCLI(SceneMappingTask, SceneMappingDataModule, args=["predict", "--config", "predict_scenes.yaml"])

With ``trainer.devices=4 trainer.strategy=ddp`` four processes map disjoint quarters of the scene list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from glaciermap.baselines.band_ratio import BAND_RATIO, band_ratio_model
from glaciermap.errors import ConfigError
from glaciermap.inference.bias_optimisation import RegionVector
from glaciermap.inference.mapping import resolve_model
from glaciermap.inference.options import MapOptions
from glaciermap.inference.outputs import write_outputs
from glaciermap.inference.predictor import ScenePredictor, SceneStream
from glaciermap.inference.region_mapping import scene_stream, stream_with_vector
from glaciermap.io import atomic_output, json_text
from glaciermap.models.pretrained import PretrainedModel

__all__ = ["SceneMappingTask", "ScenePredictionWriter", "resolve_mapping_model"]


def resolve_mapping_model(
    source: PretrainedModel | str | os.PathLike[str],
    band_ratio_thresholds: str | os.PathLike[str] | None = None,
) -> PretrainedModel:
    """A mapping model from a model, a checkpoint or weights path, or ``"band-ratio"``.

    Args:
        source: A :class:`PretrainedModel`, a ``.ckpt``/``.safetensors`` path, or ``"band-ratio"`` (also
            ``"band_ratio"``).
        band_ratio_thresholds: Thresholds JSON for the band ratio (``glaciermap fit-band-ratio``).

    Returns:
        The mapping model.

    Raises:
        ConfigError: If thresholds are given for something other than the band ratio.
        InputError: If the checkpoint cannot be loaded.
    """
    if not isinstance(source, PretrainedModel) and str(source) in (BAND_RATIO, "band_ratio"):
        return band_ratio_model(band_ratio_thresholds)
    if band_ratio_thresholds is not None:
        raise ConfigError("band-ratio thresholds were given but the model is not the band ratio")
    return resolve_model(source)


class SceneMappingTask(LightningModule):
    """Prediction-only module: maps whole scenes with a checkpoint or the band ratio.

    Args:
        checkpoint: A ``.ckpt`` of :class:`~glaciermap.tasks.segmentation.SegmentationTask`, released weights
            (``.safetensors``), or ``"band-ratio"``.
        options: How to map (:class:`~glaciermap.inference.options.MapOptions`; its ``device`` is replaced
            by the module's). ``bias_optimisation: true`` optimises each scene's region vector first
            (:mod:`glaciermap.inference.region_mapping`).

    Attributes:
        region_vectors: Scene name -> region vector to map that scene with in the next prediction step
            (set by :class:`glaciermap.callbacks.BiasOptimisation`; taken out when used).
    """

    def __init__(self, checkpoint: str, options: MapOptions | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.mapping = resolve_mapping_model(checkpoint)
        self.model = self.mapping.model
        self.options = options or MapOptions()
        self.options.validate()
        self.region_vectors: dict[str, RegionVector] = {}

    def predict_step(self, batch: list[dict[str, str]], batch_idx: int) -> list[SceneStream]:
        """Lazy streams of the batch's scenes on this module's device (consumed by the writer).

        Args:
            batch: ``[{"scene": folder}, ...]``.
            batch_idx: Index of the batch.

        Returns:
            One validated :class:`SceneStream` per scene.
        """
        options = dataclasses.replace(self.options, device=str(self.device))
        predictor = ScenePredictor(self.mapping, options)
        streams = []
        for item in batch:
            vector = self.region_vectors.pop(Path(item["scene"]).name, None)
            if vector is None:
                streams.append(scene_stream(predictor, item["scene"]))
            else:
                streams.append(stream_with_vector(predictor, item["scene"], vector))
        return streams


class ScenePredictionWriter(BasePredictionWriter):
    """Writes every scene predicted by :class:`SceneMappingTask` into ``output_dir/<scene name>``.

    Args:
        output_dir: Folder of the per-scene output folders and of ``index.json``.
        write_probabilities: Also write ``probabilities.tif``.
        quicklook: Also write ``quicklook.png``.
    """

    def __init__(self, output_dir: str, write_probabilities: bool = False, quicklook: bool = True) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.write_probabilities = write_probabilities
        self.quicklook = quicklook
        self.summaries: list[dict[str, Any]] = []

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Stream each scene of the batch into its output folder."""
        mapping = getattr(pl_module, "mapping", None)
        if mapping is None:
            raise ConfigError("ScenePredictionWriter needs the SceneMappingTask module (it has no 'mapping')")
        for stream in prediction:
            result = write_outputs(
                stream,
                mapping,
                self.output_dir / stream.scene.name,
                write_probabilities=self.write_probabilities,
                quicklook=self.quicklook,
                extra_summary={"rank": trainer.global_rank},
            )
            self.summaries.append(result.summary)

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write ``index.json``: every rank writes its part, then rank 0 merges them."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        part = self.output_dir / f".index-rank{trainer.global_rank}.json"
        with atomic_output(part) as tmp:
            tmp.write_text(json_text(self.summaries, indent=None))
        trainer.strategy.barrier("glaciermap-index")
        if trainer.is_global_zero:
            summaries: list[dict[str, Any]] = []
            parts = sorted(self.output_dir.glob(".index-rank*.json"))
            for path in parts:
                summaries.extend(json.loads(path.read_text()))
            summaries.sort(key=lambda s: str(s["scene"]))
            index = {
                "scenes": len(summaries),
                "glacier_area_km2": round(sum(s["glacier_area_km2"] for s in summaries), 6),
                "seconds": round(sum(s["seconds"] for s in summaries), 3),
                "summaries": summaries,
            }
            with atomic_output(self.output_dir / "index.json") as tmp:
                tmp.write_text(json_text(index))
            for path in parts:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        trainer.strategy.barrier("glaciermap-index-done")
        self.summaries = []
