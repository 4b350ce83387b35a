"""Split-image classification (GEOCLASS-image v2.0): a LightningModule for VarioMLP, ResNet-18 and VarioNet.

The recipe is the paper's (GEOCLASS paper Sec. 3; reference notes sections 6.4 and 7): unweighted
cross-entropy, Adam with lr 5e-5, batch size 2 (set in the data module), 50 epochs. VarioNet trains in two
stages: for ``stage1_epochs`` epochs its pre-trained sub-networks are frozen (and kept in eval mode, unless
``legacy_train_mode``) and only the fusion weights and the head learn; then every parameter learns with a new
Adam optimiser at ``fine_lr`` (5e-6) for the remaining "fine" epochs.

Metrics (torchmetrics): overall accuracy, per-class accuracy (recall) and F1, and the confusion matrix, logged
as a figure when the logger can take one. Prediction confidence is the largest softmax probability of a
split-image. Checkpoints carry ``checkpoint["glaciermap"]``: classifier name and arguments, class scheme and
names, the ResNet input mode and the vario settings, so ``load_from_checkpoint`` needs no extra argument.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from glaciermap import __version__
from glaciermap.datasets.crevasse_classes import CrevasseClassV1, CrevasseClassV2
from glaciermap.errors import ConfigError
from glaciermap.io import load_error_detail
from glaciermap.models import get_classifier
from glaciermap.models.vario import VarioNet
from glaciermap.tasks.cpu_precision import guard_trainer_bf16

ClassScheme = Literal["v2", "v1"]
"""The 11-class v2 scheme or the 6-class v1 scheme (:mod:`glaciermap.datasets.crevasse_classes`)."""

SCHEMES: dict[str, type[CrevasseClassV2] | type[CrevasseClassV1]] = {
    "v2": CrevasseClassV2,
    "v1": CrevasseClassV1,
}
ClsStage = Literal["train", "val", "test"]


def load_submodel_weights(module: nn.Module, path: str, prefix: str = "model.") -> None:
    """Load a sub-network's weights from a ``glaciermap fit`` checkpoint of that classifier.

    Args:
        module: The sub-network (VarioMLP or ResNet-18).
        path: Checkpoint (.ckpt) of a :class:`SplitImageClassificationTask` trained with that classifier.
        prefix: Key prefix of the classifier in the checkpoint's state dict.

    Raises:
        ConfigError: If the file cannot be read or does not match the sub-network.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        module.load_state_dict(state)
    except Exception as err:  # file, unpickling and shape errors alike
        raise ConfigError(
            f"sub-network weights {path}: not a matching classifier checkpoint ({load_error_detail(err)})"
        ) from None


class SplitImageClassificationTask(LightningModule):
    """Cross-entropy training of a split-image classifier (module docstring).

    Args:
        model: Classifier registry name (``vario_mlp``, ``resnet18``, ``varionet``, ``varionet_eq6``,
            ``varionet_eq7``).
        model_kwargs: Classifier arguments (e.g. ``vario_features``, ``input_mode``, ``size``).
        class_scheme: ``"v2"`` (11 classes) or ``"v1"`` (6 classes).
        lr: Adam learning rate (stage 1 for VarioNet).
        fine_lr: Adam learning rate of VarioNet's stage 2.
        stage1_epochs: VarioNet epochs with frozen sub-networks (0: no freezing, everything learns at ``lr``).
        legacy_train_mode: Keep frozen sub-networks in training mode (the reference's behaviour).
        vario_mlp_ckpt: Checkpoint of a trained VarioMLP task to initialise VarioNet's VarioMLP.
        resnet_ckpt: Checkpoint of a trained ResNet-18 task to initialise VarioNet's ResNet-18.
        vario_settings: Vario settings recorded in the checkpoint (lag threshold, mode, intensity).

    Raises:
        ConfigError: For an unknown classifier or arguments.
    """

    def __init__(
        self,
        model: str = "vario_mlp",
        model_kwargs: dict[str, Any] | None = None,
        class_scheme: ClassScheme = "v2",
        lr: float = 5e-5,
        fine_lr: float = 5e-6,
        stage1_epochs: int = 0,
        legacy_train_mode: bool = False,
        vario_mlp_ckpt: str | None = None,
        resnet_ckpt: str | None = None,
        vario_settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.class_names = [c.name.lower() for c in SCHEMES[class_scheme]]
        kwargs = {"num_classes": len(self.class_names), **(model_kwargs or {})}
        self.model = get_classifier(model, **kwargs)
        self.model_kwargs = kwargs
        if isinstance(self.model, VarioNet):
            if vario_mlp_ckpt:
                load_submodel_weights(self.model.vario_mlp, vario_mlp_ckpt)
            if resnet_ckpt:
                load_submodel_weights(self.model.resnet, resnet_ckpt)
            if stage1_epochs > 0:
                self.model.freeze_subnetworks(True, train_mode=legacy_train_mode)
        elif stage1_epochs > 0:
            raise ConfigError(f"stage1_epochs {stage1_epochs}: two-stage training needs a VarioNet model")
        n = len(self.class_names)
        self.metrics = nn.ModuleDict(
            {
                s: nn.ModuleDict(
                    {
                        "acc": MulticlassAccuracy(n, average="micro"),
                        "class_acc": MulticlassAccuracy(n, average="none"),
                        "f1": MulticlassF1Score(n, average="none"),
                        "confusion": MulticlassConfusionMatrix(n),
                    }
                )
                for s in ("val_", "test_")
            }
        )

    def setup(self, stage: str) -> None:
        """Under bf16 on a CPU, run the convolutions that the CPU computes wrongly in bf16 in float32."""
        guard_trainer_bf16(self._trainer, self.model)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the trainable parameters (stage 1: fusion weights and head only for VarioNet)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.hparams["lr"])

    def on_train_epoch_start(self) -> None:
        """Switch VarioNet to stage 2 (all parameters, new Adam at ``fine_lr``) after ``stage1_epochs``."""
        model = self.model
        stage1 = int(self.hparams["stage1_epochs"])
        if isinstance(model, VarioNet) and model.frozen and stage1 > 0 and self.current_epoch >= stage1:
            model.freeze_subnetworks(False)
            self.trainer.optimizers = [torch.optim.Adam(self.model.parameters(), lr=self.hparams["fine_lr"])]

    def forward(self, image: Tensor, vario: Tensor) -> Tensor:
        """(B, C) logits of split-images ``image`` (B, 1, H, W) and vario vectors (B, 3 n)."""
        return self.model(image, vario)

    def predict_details(self, image: Tensor, vario: Tensor) -> dict[str, Tensor]:
        """Class, confidence (largest softmax probability) and, for VarioNet, the fusion weight beta.

        Args:
            image: (B, 1, H, W) split-images.
            vario: (B, 3 n) vario vectors.

        Returns:
            ``label`` int64 (B,), ``confidence`` float32 (B,) in [0, 1], and ``beta`` (B,) for VarioNet.
        """
        if isinstance(self.model, VarioNet):
            out = self.model.forward_details(image, vario)
            extra = {"beta": out["beta"].flatten()}
            logits = out["logits"]
        else:
            extra, logits = {}, self.model(image, vario)
        conf, label = logits.softmax(dim=1).max(dim=1)
        return {"label": label, "confidence": conf, **extra}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Cross-entropy on a training batch (unlabelled tiles, label -1, are ignored)."""
        logits = self(batch["image"], batch["vario"])
        loss = F.cross_entropy(logits, batch["label"], ignore_index=-1)
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: ClsStage) -> Tensor:
        logits = self(batch["image"], batch["vario"])
        label = batch["label"]
        loss = F.cross_entropy(logits, label, ignore_index=-1)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        keep = label >= 0
        for metric in self._metrics(stage).values():
            metric.update(logits[keep], label[keep])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Validation loss and metric updates."""
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Test loss and metric updates."""
        return self._eval_step(batch, "test")

    def _metrics(self, stage: ClsStage) -> dict[str, Metric]:
        group = self.metrics[f"{stage}_"]
        assert isinstance(group, nn.ModuleDict)
        return {k: cast(Metric, m) for k, m in group.items()}

    def _log_epoch(self, stage: ClsStage) -> None:
        metrics = self._metrics(stage)
        self.log(f"{stage}/accuracy", metrics["acc"].compute())
        for name, values in (("accuracy", metrics["class_acc"].compute()), ("f1", metrics["f1"].compute())):
            for cls, value in zip(self.class_names, values, strict=True):
                self.log(f"{stage}/{name}_{cls}", value)
        confusion = metrics["confusion"].compute()
        self._log_confusion_figure(stage, confusion)
        for metric in metrics.values():
            metric.reset()

    def _log_confusion_figure(self, stage: ClsStage, confusion: Tensor) -> None:
        """Log the confusion matrix as a figure when the logger takes figures (TensorBoard)."""
        experiment = getattr(self.logger, "experiment", None) if self.logger is not None else None
        if experiment is None or not hasattr(experiment, "add_figure"):
            return
        import matplotlib.pyplot as plt

        from glaciermap.visualisation import confusion_figure

        fig = confusion_figure(
            confusion.cpu().numpy(), self.class_names, f"{stage}, epoch {self.current_epoch}"
        )
        experiment.add_figure(f"{stage}/confusion_matrix", fig, self.current_epoch)
        plt.close(fig)

    def on_validation_epoch_end(self) -> None:
        """Log validation accuracy, per-class accuracy and F1, and the confusion matrix."""
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        """Log test accuracy, per-class accuracy and F1, and the confusion matrix."""
        self._log_epoch("test")

    def metadata(self) -> dict[str, Any]:
        """Self-describing checkpoint metadata (classifier, arguments, classes, input mode, vario settings)."""
        kwargs = self.model_kwargs
        return {
            "version": __version__,
            "task": "split_image_classification",
            "model": self.hparams["model"],
            "model_kwargs": kwargs,
            "class_scheme": self.hparams["class_scheme"],
            "class_names": self.class_names,
            "input_mode": kwargs.get("input_mode", "raw") if self.hparams["model"] != "vario_mlp" else None,
            "vario": dict(self.hparams["vario_settings"] or {}),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the metadata block ``checkpoint["glaciermap"]``."""
        checkpoint["glaciermap"] = self.metadata()
