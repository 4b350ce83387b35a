"""The glacier segmentation task: a LightningModule that owns loss, optimiser, schedule, augmentation and metrics.

Any registered model (:func:`glaciermap.models.get_model`) plugs in. The recipes are those of the papers:

* GlaViTU (paper, Methods, "GlaViTU" and strategy 3): focal loss (gamma 2) with label smoothing 0.1 on both
  heads; Adam (lr 5e-4); cosine annealing with warm restarts every 10/20/40/80 epochs; fine-tuning with
  lr 5e-5 and one 80-epoch cycle. As in the authors' reference implementation, the heads are weighted
  0.5 (deep supervision) + 1.0 (main), Adam's epsilon is Keras' 1e-7 and the schedule is stepped every batch;
* Karakoram paper 3.3.1: Dice loss (Eq. 3), Adam lr 1e-4, batch 4, 512-pixel tiles.

Targets are binary (background / glacier) or three classes (background, clean ice, debris-covered ice), both
derived from the same labels by the data module; ``ignore_index`` pixels are excluded from loss and metrics.

A checkpoint carries everything needed to use it (model name and arguments, modalities and band order,
normalisation statistics, class names, region codes): ``SegmentationTask.load_from_checkpoint(path)`` needs no
extra argument, and when it is tested or used for prediction its statistics and region codes reach the data module through
the trainer (:meth:`SegmentationTask.preprocessing`) and replace the data module's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryJaccardIndex,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)

from glaciermap import __version__
from glaciermap.callbacks.heap import RetainedHeap
from glaciermap.callbacks.throughput import Throughput
from glaciermap.constants import CLASS_NAMES, IGNORE_INDEX, Modality
from glaciermap.datasets.scene import resolve_bands
from glaciermap.errors import ConfigError
from glaciermap.io import load_error_detail
from glaciermap.models import get_model
from glaciermap.models.base import SegmentationModel
from glaciermap.tasks.cpu_precision import guard_trainer_bf16
from glaciermap.tasks.losses import DeepSupervisionLoss, LossName, build_loss
from glaciermap.tasks.schedules import PLATEAU_MONITOR, ScheduleName, build_plateau, build_schedule
from glaciermap.transforms.augmentation import GeometricAugmentation, PhotometricAugmentation

Target = Literal["binary", "classes"]
Stage = Literal["train", "val", "test"]

MONITOR = "val/iou_glacier"
"""Metric that selects the best checkpoint: validation glacier IoU.

The GlaViTU paper keeps the model that is best on the validation set; the authors' reference implementation
monitors the glacier IoU."""

CheckpointMonitor = Literal["val/iou_glacier", "val/loss"]
"""Metrics the best checkpoint can be selected on."""


class SegmentationTask(LightningModule):
    """Glacier segmentation with any registered model.

    Args:
        model: Registry name of the model (``glaciermap models`` lists them).
        model_kwargs: Extra constructor arguments of the model (e.g. ``{"location_encoding": "region"}``).
        modalities: Modalities the model reads, in channel order (linked to the data module's).
        bands: Optional band subsets by modality (default: all canonical bands).
        target: ``"binary"`` (2 classes) or ``"classes"`` (3 classes: background, clean ice, debris).
        region_codes: Region codes of the region one-hot, in slot order (the "unseen" slot comes last).
        loss: ``"focal"`` (GlaViTU), ``"dice"`` (Karakoram) or ``"ce"``.
        label_smoothing: Label smoothing of the training targets (0.1 in the GlaViTU recipe).
        focal_gamma: Focusing parameter of the focal loss.
        aux_weight: Weight of the deep-supervision head's loss (main head: 1.0).
        lr: Peak learning rate of Adam.
        adam_eps: Adam's epsilon (1e-7 as Keras).
        weight_decay: Adam's weight decay (0 in the references).
        schedule: ``"warm_restarts"``, ``"cosine"``, ``"constant"`` or ``"plateau"`` (Karakoram recipe: the
            learning rate is cut by 10x when ``val/loss`` has not improved for 10 epochs).
        cycle_epochs: First cycle (warm restarts) or decay length (cosine) in epochs.
        cycle_mult: Growth of successive warm-restart cycles.
        augment: Apply the geometric augmentation (flips, rotations, crop and rescale; GlaViTU paper, Methods,
            "GlaViTU") to training batches.
        photometric: Apply gamma, occlusion, shift and noise to training batches.
        region_dropout: Probability of replacing a training sample's region by "unseen" (region encoding).
        init_from: Checkpoint (``.ckpt`` of this task or ``.safetensors`` state dict) whose model weights
            initialise the model: the fine-tuning strategy.
        norm_stats: Normalisation statistics (``NormStats.to_dict()``); filled from the data module when
            fitting starts and stored in checkpoints.
        mc_dropout_training: Keep the model's dropout layers active in training, as Monte-Carlo dropout is
            defined in the GlaViTU paper ("dropout during both training and inference"); the reference code
            never trained with dropout (as in the authors' reference implementation), so the default ``False`` keeps parity. The rate
            is the model's ``dropout`` argument (``model_kwargs``). Validation and testing stay
            deterministic; MC inference switches dropout on with ``set_mc_dropout``.
        checkpoint_monitor: Metric that selects the best checkpoint: ``"val/iou_glacier"`` (maximised; the
            GlaViTU reference for training from scratch) or ``"val/loss"`` (minimised; the reference's
            fine-tuning; the authors' reference implementation).

    Raises:
        ConfigError: On an unknown model, target, loss or schedule, or inconsistent arguments.
    """

    def __init__(
        self,
        model: str = "glavitu",
        model_kwargs: dict[str, Any] | None = None,
        modalities: Sequence[Modality] = ("optical", "dem"),
        bands: Mapping[str, Sequence[str]] | None = None,
        target: Target = "binary",
        region_codes: Sequence[str] | None = None,
        loss: LossName = "focal",
        label_smoothing: float = 0.1,
        focal_gamma: float = 2.0,
        aux_weight: float = 0.5,
        lr: float = 5e-4,
        adam_eps: float = 1e-7,
        weight_decay: float = 0.0,
        schedule: ScheduleName = "warm_restarts",
        cycle_epochs: int = 10,
        cycle_mult: int = 2,
        augment: bool = True,
        photometric: bool = True,
        region_dropout: float = 0.1,
        init_from: str | None = None,
        norm_stats: dict[str, Any] | None = None,
        mc_dropout_training: bool = False,
        checkpoint_monitor: CheckpointMonitor = "val/iou_glacier",
    ) -> None:
        super().__init__()
        if target not in CLASS_NAMES_BY_TARGET:
            raise ConfigError(f"target is {target!r}; expected 'binary' or 'classes'")
        if not 0.0 <= region_dropout <= 1.0:
            raise ConfigError(f"region_dropout is {region_dropout}; expected a probability in [0, 1]")
        self.save_hyperparameters()
        self.bands_by_modality = resolve_bands(list(modalities), bands)
        self.class_names = CLASS_NAMES_BY_TARGET[target]
        num_classes = len(self.class_names)
        kwargs = dict(model_kwargs or {})
        if region_codes is not None and kwargs.get("location_encoding") == "region":
            kwargs.setdefault("region_codes", list(region_codes))
        channels = {m: len(b) for m, b in self.bands_by_modality.items()}
        self.model: SegmentationModel = get_model(
            model, modalities=channels, num_classes=num_classes, **kwargs
        )
        self.location_encoding: str = str(getattr(self.model, "location_encoding", "none"))
        self.region_codes: tuple[str, ...] = tuple(
            getattr(self.model, "region_codes", ()) if region_codes is None else region_codes
        )

        self.train_loss = DeepSupervisionLoss(
            build_loss(loss, label_smoothing=label_smoothing, gamma=focal_gamma), aux_weight=aux_weight
        )
        self.eval_loss = DeepSupervisionLoss(build_loss(loss, gamma=focal_gamma), aux_weight=aux_weight)
        self.geometric = GeometricAugmentation() if augment else None
        self.photometric_aug = PhotometricAugmentation() if photometric else None
        self.val_metrics = self._metric_collection(num_classes)
        self.test_metrics = self._metric_collection(num_classes)
        self.val_glacier_iou = BinaryJaccardIndex(ignore_index=IGNORE_INDEX)
        self.test_glacier_iou = BinaryJaccardIndex(ignore_index=IGNORE_INDEX)
        self.val_unseen_glacier_iou = BinaryJaccardIndex(ignore_index=IGNORE_INDEX)
        if init_from is not None:
            self._init_weights(init_from)
        if mc_dropout_training:
            from glaciermap.tasks.mc_dropout import enable_training_dropout

            enable_training_dropout(self.model, model)
        self.calibrator: dict[str, Any] | None = None
        """Plain-JSON confidence calibrator (set by ``CalibrationCallback``), saved in the metadata."""

    # ------------------------------------------------------------------------------------------------
    # Set-up
    @staticmethod
    def _metric_collection(num_classes: int) -> MetricCollection:
        """IoU per class, mean IoU, overall accuracy, precision, recall and F1 per class, glacier IoU."""
        common: dict[str, Any] = {"num_classes": num_classes, "ignore_index": IGNORE_INDEX}
        return MetricCollection(
            {
                "iou": MulticlassJaccardIndex(average="none", **common),
                "miou": MulticlassJaccardIndex(average="macro", **common),
                "accuracy": MulticlassAccuracy(average="micro", **common),
                "precision": MulticlassPrecision(average="none", **common),
                "recall": MulticlassRecall(average="none", **common),
                "f1": MulticlassF1Score(average="none", **common),
            }
        )

    def _stage_metrics(self, stage: Stage) -> tuple[MetricCollection, BinaryJaccardIndex]:
        """The class metrics and the glacier IoU of a stage."""
        if stage == "val":
            return self.val_metrics, self.val_glacier_iou
        return self.test_metrics, self.test_glacier_iou

    def _init_weights(self, path: str) -> None:
        """Load model weights from a task checkpoint or a safetensors state dict (fine-tuning)."""
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"init_from: {p} does not exist (expected a .ckpt or .safetensors file)")
        expected = "expected a .ckpt written by 'glaciermap fit' or released .safetensors weights"
        try:
            if p.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(p))
            else:
                ckpt = torch.load(p, map_location="cpu", weights_only=True)
                state = {
                    k.removeprefix("model."): v
                    for k, v in ckpt["state_dict"].items()
                    if k.startswith("model.")
                }
        except Exception as err:  # unpickling, zip, safetensors and key errors alike: not a usable checkpoint
            detail = load_error_detail(err)
            raise ConfigError(f"init_from: {p} is not a readable checkpoint ({detail}); {expected}") from None
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or missing:
            raise ConfigError(
                f"init_from: {p} does not fit model {self.hparams['model']!r} "
                f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
            )

    def configure_callbacks(self) -> list[Callback]:
        """Keep the best checkpoint (validation glacier IoU) and the last one; show throughput; retain the heap.

        On a CPU, freed memory stays in the process while a stage runs
        (:class:`~glaciermap.callbacks.heap.RetainedHeap`).
        """
        return [
            Throughput(),
            RetainedHeap(),
            ModelCheckpoint(
                monitor=self.hparams.get("checkpoint_monitor", MONITOR),
                mode="min" if self.hparams.get("checkpoint_monitor", MONITOR) == "val/loss" else "max",
                save_last=True,
                filename="best-{epoch:03d}-{step}",
                auto_insert_metric_name=False,
            ),
        ]

    def configure_optimizers(self) -> Any:
        """Adam with Keras' epsilon and a per-step schedule, as in the authors' reference implementation."""
        hp = self.hparams
        optimizer = torch.optim.Adam(
            self.parameters(), lr=hp["lr"], eps=hp["adam_eps"], weight_decay=hp["weight_decay"]
        )
        trainer = self.trainer
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        if hp["schedule"] == "plateau":
            plateau = build_plateau(optimizer)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": plateau, "interval": "epoch", "monitor": PLATEAU_MONITOR},
            }
        steps_per_epoch = max(1, int(trainer.estimated_stepping_batches) // max_epochs)
        scheduler = build_schedule(
            optimizer, hp["schedule"], steps_per_epoch, hp["cycle_epochs"], hp["cycle_mult"]
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def setup(self, stage: str) -> None:
        """Share the checkpoint's preprocessing with the data module, or record the data module's.

        When fitting from scratch the data module's statistics are stored in the hyper-parameters (and so in
        every checkpoint); when testing or predicting with a task that carries statistics, they replace the
        data module's so that results do not depend on which scenes the user has at hand.

        The data module reads the task's :meth:`preprocessing` through the trainer in its own ``setup``
        (which Lightning calls first); the task never calls into a data module's class. Under bf16 on a CPU,
        convolutions that the CPU computes wrongly in bf16 run in float32 (:func:`guard_trainer_bf16`).
        """
        guard_trainer_bf16(self._trainer, self.model)  # bf16 on a CPU: no convolution computed wrongly
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or self.hparams.get("norm_stats") is not None:
            return
        stats = getattr(dm, "norm_stats", None)
        self.hparams["norm_stats"] = stats.to_dict() if stats is not None else None

    def preprocessing(self) -> dict[str, Any] | None:
        """The preprocessing this task was trained with, for a data module to adopt (``None`` before fitting).

        Returns:
            ``{"norm_stats": ..., "region_codes": [...], "bands": {modality: [...]}}`` (the data module's
            ``state_dict`` format), or ``None`` when the task carries no statistics yet.
        """
        if self.hparams.get("norm_stats") is None:
            return None
        return {
            "norm_stats": self.hparams["norm_stats"],
            "region_codes": list(self.region_codes),
            "bands": {m: list(b) for m, b in self.bands_by_modality.items()},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add a self-describing metadata block (``checkpoint["glaciermap"]``)."""
        checkpoint["glaciermap"] = self.metadata()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the confidence calibrator stored in the metadata block, if any."""
        meta = checkpoint.get("glaciermap")
        self.calibrator = meta.get("calibrator") if isinstance(meta, Mapping) else None

    def metadata(self) -> dict[str, Any]:
        """What a user of the weights needs: model, inputs, preprocessing, classes, regions, version."""
        return {
            "version": __version__,
            "model": self.hparams["model"],
            "model_hparams": dict(self.model.hparams),
            "modalities": list(self.bands_by_modality),
            "bands": {m: list(b) for m, b in self.bands_by_modality.items()},
            "norm_stats": self.hparams.get("norm_stats"),
            "target": self.hparams["target"],
            "class_names": list(self.class_names),
            "region_codes": list(self.region_codes),
            "location_encoding": self.location_encoding,
            "calibrator": self.calibrator,
            "provenance": {"source": "training", "glaciermap_version": __version__},
        }

    # ------------------------------------------------------------------------------------------------
    # Forward and steps
    def _split(self, image: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The batch image as ``{modality: (B, C_m, H, W)}``."""
        if isinstance(image, Mapping):
            return {m: image[m] for m in self.bands_by_modality}
        sizes = [len(b) for b in self.bands_by_modality.values()]
        return dict(zip(self.bands_by_modality, torch.split(image, sizes, dim=1)))

    def _location(self, batch: Mapping[str, Any], train: bool) -> Tensor | None:
        """The location input of the batch for location-encoding models (GlaViTU paper, strategies 4-5)."""
        if self.location_encoding == "region":
            region = batch["region"].long()
            if train and self.hparams["region_dropout"] > 0:
                unseen = torch.full_like(region, len(self.region_codes))
                drop = torch.rand(region.shape, device=region.device) < self.hparams["region_dropout"]
                region = torch.where(drop, unseen, region)
            return region
        if self.location_encoding == "coordinates":
            return batch["location"].float()
        return None

    def forward(
        self, image: Tensor | Mapping[str, Tensor], location: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Logits of the model: ``{"out": (B, K, H, W)[, "aux": (B, K, H, W)]}``."""
        return self.model(self._split(image), location)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Augment on the device, then the (deep-supervision) loss."""
        images = self._split(batch["image"])
        mask = batch["mask"]
        if self.geometric is not None:
            images, mask = self.geometric(images, mask)
        if self.photometric_aug is not None:
            images = self.photometric_aug(images)
        out = self.model(images, self._location(batch, train=True))
        loss = self.train_loss(out["out"], mask, out.get("aux"))
        b = mask.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=b)
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: Stage) -> Tensor:
        out = self.model(self._split(batch["image"]), self._location(batch, train=False))
        mask = batch["mask"]
        loss = self.eval_loss(out["out"], mask, out.get("aux"))
        pred = out["out"].argmax(dim=1)
        metrics, glacier_iou = self._stage_metrics(stage)
        metrics.update(pred, mask)
        glacier = torch.where(mask == IGNORE_INDEX, mask, (mask > 0).long())
        glacier_iou.update((pred > 0).long(), glacier)
        self.log(f"{stage}/loss", loss, batch_size=mask.shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Loss and metrics on one validation batch (region encoding: also with the region "unseen")."""
        loss = self._eval_step(batch, "val")
        if self.location_encoding == "region":
            self._eval_unseen(batch)
        return loss

    def _eval_unseen(self, batch: dict[str, Any]) -> None:
        """Validate a region-encoding model as if every region were unseen (GlaViTU paper, region encoding).

        The reference validates region-encoding models twice, with the true region and with "unknown"
        (reference notes 1.4, 3.3); logged as ``val_unseen/loss`` and ``val_unseen/iou_glacier``.
        """
        region = torch.full_like(batch["region"].long(), len(self.region_codes))
        out = self.model(self._split(batch["image"]), region)
        mask = batch["mask"]
        loss = self.eval_loss(out["out"], mask, out.get("aux"))
        glacier = torch.where(mask == IGNORE_INDEX, mask, (mask > 0).long())
        self.val_unseen_glacier_iou.update((out["out"].argmax(dim=1) > 0).long(), glacier)
        self.log("val_unseen/loss", loss, batch_size=mask.shape[0], sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Loss and metrics on one test batch."""
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Class probabilities (B, K, H, W) with the batch's ``bounds`` and ``crs`` passed through."""
        out = self.model(self._split(batch["image"]), self._location(batch, train=False))
        result: dict[str, Any] = {"probabilities": torch.softmax(out["out"].float(), dim=1)}
        for key in ("bounds", "crs", "mask"):
            if key in batch:
                result[key] = batch[key]
        return result

    def _log_epoch(self, stage: Stage) -> None:
        metrics, glacier_iou = self._stage_metrics(stage)
        values = metrics.compute()
        logs: dict[str, Tensor] = {
            f"{stage}/miou": values["miou"],
            f"{stage}/accuracy": values["accuracy"],
        }
        for metric in ("iou", "precision", "recall", "f1"):
            for i, name in enumerate(self.class_names):
                logs[f"{stage}/{metric}_{name}"] = values[metric][i]
        # Glacier = any ice class; for the binary target this equals the IoU of class "glacier".
        logs[f"{stage}/iou_glacier"] = glacier_iou.compute()
        monitor = logs.pop(f"{stage}/iou_glacier")
        self.log_dict(logs)
        self.log(f"{stage}/iou_glacier", monitor, prog_bar=True)
        metrics.reset()
        glacier_iou.reset()

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics of the epoch (and those with the region "unseen")."""
        self._log_epoch("val")
        if self.location_encoding == "region":
            self.log("val_unseen/iou_glacier", self.val_unseen_glacier_iou.compute())
            self.val_unseen_glacier_iou.reset()

    def on_test_epoch_end(self) -> None:
        """Log the test metrics."""
        self._log_epoch("test")


CLASS_NAMES_BY_TARGET: dict[str, tuple[str, ...]] = {"binary": CLASS_NAMES[2], "classes": CLASS_NAMES[3]}
"""Class names of each target kind."""
