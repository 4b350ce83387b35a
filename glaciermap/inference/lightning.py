"""Mapping many scenes with Lightning: one whole scene per prediction step, sharded across devices and nodes.

* :class:`SceneMappingDataModule` lists the scenes and hands each rank its share through
  :class:`SceneShardSampler` (a ``DistributedSampler`` without padding, so Lightning keeps it and no scene is
  repeated to even out the ranks): every scene is mapped by exactly one process.
* :class:`SceneMappingTask` holds the model (a checkpoint or the band ratio); its ``predict_step`` returns,
  for each scene of the batch, a lazy :class:`~glaciermap.inference.predictor.SceneStream` on the module's
  device.
* :class:`ScenePredictionWriter` (a ``BasePredictionWriter``) consumes each stream, streaming the scene
  through the model into its output folder ``output_dir/<scene name>`` (COGs, quick-look, summary; see
  :mod:`glaciermap.inference.outputs`), and at the end writes ``output_dir/index.json`` listing every
  scene's summary, gathered from all ranks.

Example (``examples/predict_scenes.yaml``)::

    LightningCLI(SceneMappingTask, SceneMappingDataModule, args=["predict", "--config", "predict_scenes.yaml"])

With ``trainer.devices=4 trainer.strategy=ddp`` four processes map disjoint quarters of the scene list.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from glaciermap.errors import ConfigError
from glaciermap.inference.mapping import expand_scene_dirs, resolve_model, scene_pixels, shard_scenes
from glaciermap.inference.outputs import write_outputs
from glaciermap.inference.predictor import MapOptions, Precision, ScenePredictor, SceneStream
from glaciermap.inference.windows import BlendWindow, GridLayout
from glaciermap.io import atomic_output


class SceneList(Dataset[dict[str, str]]):
    """Scene folders as a dataset: item ``i`` is ``{"scene": path}``.

    Args:
        scenes: The scene folders.
    """

    def __init__(self, scenes: Sequence[str | os.PathLike[str]]) -> None:
        self.scenes = [str(s) for s in scenes]

    def __len__(self) -> int:
        """Number of scenes."""
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict[str, str]:
        """The scene folder of item ``index``."""
        return {"scene": self.scenes[index]}


class SceneShardSampler(DistributedSampler[int]):
    """This rank's scenes (:func:`~glaciermap.inference.mapping.shard_scenes`, balanced by pixel count).

    Unlike ``DistributedSampler`` it never pads, so each scene is yielded by exactly one rank and ranks may
    get different numbers of scenes.

    Args:
        dataset: The scene list.
        rank: This process's rank (default: from ``torch.distributed``, else 0).
        world_size: Number of processes (default: from ``torch.distributed``, else 1).
    """

    def __init__(self, dataset: SceneList, rank: int | None = None, world_size: int | None = None) -> None:
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        rank = rank if rank is not None else (dist.get_rank() if initialised else 0)
        world_size = world_size if world_size is not None else (dist.get_world_size() if initialised else 1)
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=False, drop_last=False)
        indices = list(range(len(dataset)))
        weights = [scene_pixels(s) for s in dataset.scenes]
        self.indices: list[int] = shard_scenes(indices, rank, world_size, weights)

    def __iter__(self) -> Iterator[int]:
        """This rank's scene indices."""
        return iter(self.indices)

    def __len__(self) -> int:
        """Number of scenes of this rank."""
        return len(self.indices)


def _collate(items: list[dict[str, str]]) -> list[dict[str, str]]:
    return items


class SceneMappingDataModule(LightningDataModule):
    """The scenes to map, for ``Trainer.predict``.

    Args:
        scenes: Scene folders and/or folders of scene folders.
        batch_size: Scenes per prediction step (each is still mapped window batch by window batch).
        num_workers: DataLoader workers (listing scenes is cheap: 0 is fine).

    Raises:
        ConfigError: If two scenes share a folder name (their outputs would collide).
        InputError: If a path is neither a scene folder nor a folder of them.
    """

    def __init__(self, scenes: Sequence[str], batch_size: int = 1, num_workers: int = 0) -> None:
        super().__init__()
        self.scene_paths = list(scenes)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._scenes: list[Path] | None = None

    @property
    def scenes(self) -> list[Path]:
        """The scene folders (expanded and checked for unique names)."""
        if self._scenes is None:
            scenes = expand_scene_dirs(self.scene_paths)
            names = [s.name for s in scenes]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ConfigError(f"several scenes are named {dupes[0]!r}; scene folder names must be unique")
            self._scenes = scenes
        return self._scenes

    def predict_dataloader(self) -> DataLoader[dict[str, str]]:
        """One item per scene, this rank's share only."""
        dataset = SceneList(self.scenes)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=SceneShardSampler(dataset),
            num_workers=self.num_workers,
            collate_fn=_collate,
        )


class SceneMappingTask(LightningModule):
    """Prediction-only module: maps whole scenes with a checkpoint or the band ratio.

    Args:
        checkpoint: A ``.ckpt`` of :class:`~glaciermap.tasks.segmentation.SegmentationTask`, or ``"band-ratio"``.
        overlap: Fraction of a window shared with its neighbour.
        window_size: Window side (default: the model's, else 384).
        window: Blending weight.
        layout: Padded grid layout.
        batch_size: Windows per forward pass.
        tta: Test-time augmentation.
        mc_passes: Monte-Carlo dropout passes (0: off).
        seed: Seed of Monte-Carlo dropout.
        precision: ``"auto"`` (bf16 autocast on CUDA), ``"32"`` or ``"bf16"``.
        channels_last: Channels-last tensors (default True).
        region: Region code for region-encoding models.
    """

    def __init__(
        self,
        checkpoint: str,
        overlap: float = 0.5,
        window_size: int | None = None,
        window: BlendWindow = "gaussian",
        layout: GridLayout = "compact",
        batch_size: int = 8,
        tta: bool = False,
        mc_passes: int = 0,
        seed: int | None = 0,
        precision: Precision = "auto",
        channels_last: bool = True,
        region: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.mapping = resolve_model(checkpoint)
        self.model = self.mapping.model
        self.options = MapOptions(
            window_size=window_size,
            overlap=overlap,
            window=window,
            layout=layout,
            batch_size=batch_size,
            tta=tta,
            mc_passes=mc_passes,
            seed=seed,
            precision=precision,
            channels_last=channels_last,
            region=region,
        )
        self.options.validate()

    def predict_step(self, batch: list[dict[str, str]], batch_idx: int) -> list[SceneStream]:
        """Lazy streams of the batch's scenes on this module's device (consumed by the writer).

        Args:
            batch: ``[{"scene": folder}, ...]``.
            batch_idx: Index of the batch.

        Returns:
            One validated :class:`SceneStream` per scene.
        """
        options = MapOptions(**{**self.options.__dict__, "device": str(self.device)})
        predictor = ScenePredictor(self.mapping, options)
        return [predictor.stream(item["scene"]) for item in batch]


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
            tmp.write_text(json.dumps(self.summaries))
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
                tmp.write_text(json.dumps(index, indent=2))
            for path in parts:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        trainer.strategy.barrier("glaciermap-index-done")
        self.summaries = []
