"""Fit a confidence calibrator on the validation predictions while training (GlaViTU paper Eqs. 3-5).

:class:`CalibrationCallback` watches every validation epoch (not the sanity check):

* it reads the logits of the model's forward pass in ``validation_step`` through a forward hook on
  ``pl_module.model`` (no extra forward pass) and the batch's ``mask``;
* it accumulates, on the device, a fine :class:`~glaciermap.calibration.histogram.ConfidenceHistogram` of the
  raw confidence of GlaViTU paper Eq. 3 (``100 * n_bins`` bins of counts, correct counts and confidence sums:
  bounded memory whatever the number of pixels) and, for temperature scaling, a uniform random subsample of
  at most ``max_samples`` pixels' logits and labels (reservoir by random keys);
* at the end of the epoch it sums these over processes, fits the calibrator (``"krr"``: the authors' kernel
  ridge on 100 bins; ``"isotonic"``; ``"temperature"``), logs ``val/ece_raw`` and ``val/ece_calibrated``
  (``ECE_n_bins``, Eq. 5), for two classes also ``val/iou_estimated_<class>`` (IoU estimated without the
  reference, :mod:`glaciermap.calibration.iou_estimate`, to compare with the measured ``val/iou_<class>``),
  and hands the calibrator's plain-JSON dict to the task.

A :class:`~glaciermap.tasks.segmentation.SegmentationTask` keeps it in its ``calibrator`` attribute and writes
it into every checkpoint as ``checkpoint["glaciermap"]["calibrator"]``, which exported safetensors weights
carry too and :func:`glaciermap.inference.load_pretrained` reads. So the calibrator in a checkpoint was
fitted on the validation predictions of that checkpoint's own weights.

``val/ece_calibrated`` is in-sample (same pixels as the fit). It is computed from the fine histogram, each
fine bin's pixels taken at the bin's mean confidence (:meth:`ConfidenceHistogram.calibrated`); for
temperature scaling with more than two classes it is the ECE of ``max softmax(z / T)`` on the subsample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from glaciermap.calibration.base import Calibrator, calibrator_from_dict
from glaciermap.calibration.histogram import DEFAULT_BINS, ConfidenceHistogram
from glaciermap.calibration.isotonic import fit_isotonic
from glaciermap.calibration.kernel_ridge import (
    DEFAULT_PENALTY_SCALE,
    DEFAULT_WEIGHT_EXPONENT,
    PenaltyMode,
    fit_kernel_ridge,
)
from glaciermap.calibration.temperature import TemperatureCalibrator
from glaciermap.constants import IGNORE_INDEX
from glaciermap.errors import ConfigError, InputError

Method = Literal["krr", "temperature", "isotonic"]
"""Calibration methods: kernel ridge (the authors'), temperature scaling, isotonic regression."""

FINE_FACTOR = 100
"""The collected histogram has ``FINE_FACTOR * n_bins`` bins (rebinned exactly for the fit)."""

PROBABILITY_CLIP = 1e-6
"""As :data:`glaciermap.inference.confidence.PROBABILITY_CLIP` (the authors' reference implementation)."""


def torch_confidence(logits: Tensor) -> Tensor:
    """GlaViTU paper Eq. 3 on ``(B, C, H, W)`` logits, as :func:`~glaciermap.inference.entropy_confidence`.

    Returns:
        ``(B, H, W)`` float32 confidence in ``[0, 1]``.
    """
    p = torch.softmax(logits.float(), dim=1).clamp(PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    c = 1.0 + (p * p.log()).sum(dim=1) / float(np.log(logits.shape[1]))
    return c.clamp(0.0, 1.0)


class CalibrationCallback(Callback):
    """Collect validation predictions (streaming), fit a calibrator each validation epoch, store it.

    Args:
        method: ``"krr"`` (Laplacian kernel ridge as the GlaViTU authors), ``"temperature"`` or ``"isotonic"``.
        n_bins: Bins of the fit and of the logged ECE (100 as in the paper).
        max_samples: Pixels kept (per process) for temperature scaling.
        penalty: Kernel ridge penalty mode (see :func:`~glaciermap.calibration.fit_kernel_ridge`).
        penalty_scale: Kernel ridge penalty scale.
        weight_exponent: Kernel ridge bin-weight exponent.
        low_anchor: Kernel ridge accuracy at confidence 0 (0 as the authors; ``1 / C`` is chance level).
        ignore_index: Mask value of pixels to leave out.

    Raises:
        ConfigError: On an unknown method or non-positive sizes.
    """

    def __init__(
        self,
        method: Method = "krr",
        n_bins: int = DEFAULT_BINS,
        max_samples: int = 200_000,
        penalty: PenaltyMode = "authors",
        penalty_scale: float = DEFAULT_PENALTY_SCALE,
        weight_exponent: float = DEFAULT_WEIGHT_EXPONENT,
        low_anchor: float = 0.0,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        if method not in ("krr", "temperature", "isotonic"):
            raise ConfigError(f"method is {method!r}; expected 'krr', 'temperature' or 'isotonic'")
        if n_bins < 1 or max_samples < 1:
            raise ConfigError(f"n_bins ({n_bins}) and max_samples ({max_samples}) must be positive")
        self.method = method
        self.n_bins = int(n_bins)
        self.max_samples = int(max_samples)
        self.penalty: PenaltyMode = penalty
        self.penalty_scale = penalty_scale
        self.weight_exponent = weight_exponent
        self.low_anchor = low_anchor
        self.ignore_index = ignore_index
        self.calibrator: Calibrator | None = None
        self.histogram: ConfidenceHistogram | None = None
        self.ece_raw: float | None = None
        self.ece_calibrated: float | None = None
        self.iou_estimate: np.ndarray[Any, Any] | None = None
        self._active = False
        self._hook: Any = None
        self._logits: Tensor | None = None
        self._acc: dict[str, Tensor] = {}

    # ------------------------------------------------------------------------------------------------
    # Collecting
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start collecting (skipped during the sanity check)."""
        self._active = not trainer.sanity_checking
        if not self._active:
            return
        fine = self.n_bins * FINE_FACTOR
        dev = pl_module.device
        k = self._num_classes(pl_module)
        # counts and confidence sums per (predicted class, fine bin); correct counts per fine bin
        self._acc = {
            "count": torch.zeros(k * fine, dtype=torch.int64, device=dev),
            "correct": torch.zeros(fine, dtype=torch.int64, device=dev),
            "sum": torch.zeros(k * fine, dtype=torch.float64, device=dev),
        }
        target = getattr(pl_module, "model", pl_module)
        self._hook = target.register_forward_hook(self._capture)

    def _capture(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        out = output.get("out") if isinstance(output, Mapping) else output
        if isinstance(out, Tensor):
            self._logits = out.detach()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Add the batch's valid pixels to the histogram (and the temperature subsample)."""
        if not self._active or self._logits is None:
            return
        logits, self._logits = self._logits, None
        mask = batch["mask"]
        if logits.ndim != 4 or logits.shape[0] != mask.shape[0] or logits.shape[2:] != mask.shape[1:]:
            raise InputError(
                f"calibration: logits of shape {tuple(logits.shape)} do not fit the mask {tuple(mask.shape)}; "
                "expected (B, C, H, W) logits for (B, H, W) masks"
            )
        valid = mask != self.ignore_index
        conf = torch_confidence(logits)[valid]
        correct = (logits.argmax(dim=1) == mask)[valid]
        fine = self._acc["correct"].numel()
        size = self._acc["count"].numel()
        if logits.shape[1] * fine != size:
            raise InputError(
                f"calibration: logits have {logits.shape[1]} classes; expected {size // fine} (the task's classes)"
            )
        idx = (conf.double() * fine).floor().long().clamp(0, fine - 1)
        by_class = logits.argmax(dim=1)[valid] * fine + idx
        self._acc["count"] += torch.bincount(by_class, minlength=size)
        self._acc["correct"] += torch.bincount(idx[correct], minlength=fine)
        self._acc["sum"] += torch.bincount(by_class, weights=conf.double(), minlength=size)
        if self.method == "temperature":
            z = logits.float().permute(0, 2, 3, 1)[valid]
            self._reservoir(z, mask[valid].long())

    def _reservoir(self, logits: Tensor, labels: Tensor) -> None:
        """Keep the ``max_samples`` pixels with the smallest random keys: a uniform subsample."""
        keys = torch.rand(labels.shape[0], device=labels.device)
        if "keys" in self._acc:
            keys = torch.cat([self._acc["keys"], keys])
            logits = torch.cat([self._acc["logits"], logits])
            labels = torch.cat([self._acc["labels"], labels])
        if keys.numel() > self.max_samples:
            keep = torch.topk(keys, self.max_samples, largest=False).indices
            keys, logits, labels = keys[keep], logits[keep], labels[keep]
        self._acc.update(keys=keys, logits=logits, labels=labels)

    # ------------------------------------------------------------------------------------------------
    # Fitting
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Sum over processes, fit, log the ECE before and after, and give the calibrator to the task."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if not self._active:
            return
        self._active = False
        strategy = trainer.strategy
        acc = {
            k: strategy.reduce(self._acc[k], reduce_op="sum").cpu().numpy()
            for k in ("count", "correct", "sum")
        }
        n_fine = self.n_bins * FINE_FACTOR
        count_by_class = acc["count"].reshape(-1, n_fine)
        sum_by_class = acc["sum"].reshape(-1, n_fine)
        fine = ConfidenceHistogram(n_fine, count_by_class.sum(0), acc["correct"], sum_by_class.sum(0))
        if fine.total == 0:
            return
        hist = fine.rebin(self.n_bins)
        class_names = getattr(pl_module, "class_names", None)
        num_classes = self._num_classes(pl_module)
        calibrator: Calibrator
        if self.method == "krr":
            calibrator = fit_kernel_ridge(
                hist,
                weight_exponent=self.weight_exponent,
                penalty_scale=self.penalty_scale,
                penalty=self.penalty,
                low_anchor=self.low_anchor,
                num_classes=num_classes,
                class_names=class_names,
            )
        elif self.method == "isotonic":
            calibrator = fit_isotonic(hist, num_classes=num_classes, class_names=class_names)
        else:
            logits, labels = self._gathered_sample(trainer, pl_module)
            calibrator = TemperatureCalibrator.fit(logits, labels, class_names=class_names)
        self.histogram = hist
        self.ece_raw = hist.expected_calibration_error()
        if self.method == "temperature" and num_classes != 2:
            assert isinstance(calibrator, TemperatureCalibrator)
            probs = calibrator.apply_to_logits(logits, axis=1)
            self.ece_calibrated = ConfidenceHistogram.from_arrays(
                probs.max(axis=1), probs.argmax(axis=1) == labels, self.n_bins
            ).expected_calibration_error()
        else:
            self.ece_calibrated = fine.calibrated(calibrator, self.n_bins).expected_calibration_error()
        self.calibrator = calibrator
        if num_classes == 2:
            self.iou_estimate = _binary_iou_estimate(calibrator, count_by_class, sum_by_class)
            names = class_names or [str(i) for i in range(num_classes)]
            for name, value in zip(names, self.iou_estimate):
                pl_module.log(f"val/iou_estimated_{name}", float(value))
        if hasattr(pl_module, "calibrator"):
            setattr(pl_module, "calibrator", calibrator.to_dict())  # noqa: B010 (any task with the attribute)
        pl_module.log("val/ece_raw", self.ece_raw)
        pl_module.log("val/ece_calibrated", self.ece_calibrated)
        self._acc = {}

    @staticmethod
    def _num_classes(pl_module: pl.LightningModule) -> int:
        names = getattr(pl_module, "class_names", None)
        if names is not None:
            return len(names)
        model = getattr(pl_module, "model", None)
        n = getattr(model, "num_classes", None)
        if not isinstance(n, int):
            raise ConfigError("calibration: the task has neither class_names nor model.num_classes")
        return n

    def _gathered_sample(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The temperature subsample of all processes (the same on every rank)."""
        if "keys" not in self._acc:
            raise InputError("calibration: no validation pixel was collected for temperature scaling")
        keys, logits, labels = self._acc["keys"], self._acc["logits"], self._acc["labels"]
        if trainer.world_size > 1:
            n = self.max_samples
            pad = n - keys.numel()
            keys = torch.cat([keys, keys.new_full((pad,), float("inf"))])
            logits = torch.cat([logits, logits.new_zeros((pad, logits.shape[1]))])
            labels = torch.cat([labels, labels.new_full((pad,), self.ignore_index)])
            gathered = [pl_module.all_gather(t) for t in (keys, logits, labels)]
            if not all(isinstance(g, Tensor) for g in gathered):
                raise InputError("calibration: all_gather did not return tensors")
            keys, logits, labels = (
                g.reshape(-1, *t.shape[1:])
                for g, t in zip(gathered, (keys, logits, labels))
                if isinstance(g, Tensor)
            )
            keep = torch.topk(keys, min(n, int(torch.isfinite(keys).sum())), largest=False).indices
            keys, logits, labels = keys[keep], logits[keep], labels[keep]
        return logits.double().cpu().numpy(), labels.cpu().numpy()

    # ------------------------------------------------------------------------------------------------
    # Checkpoints
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Also put the calibrator into ``checkpoint["glaciermap"]`` for modules that do not do it."""
        if self.calibrator is not None:
            meta = checkpoint.setdefault("glaciermap", {})
            if isinstance(meta, dict):
                meta["calibrator"] = self.calibrator.to_dict()

    def state_dict(self) -> dict[str, Any]:
        """The last fit: calibrator dict, 100-bin histogram, ECE before and after (plain JSON)."""
        return {
            "method": self.method,
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
            "histogram": None if self.histogram is None else self.histogram.to_dict(),
            "ece_raw": self.ece_raw,
            "ece_calibrated": self.ece_calibrated,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the last fit when resuming."""
        entry = state_dict.get("calibrator")
        self.calibrator = None if entry is None else calibrator_from_dict(entry, "callback state")
        hist = state_dict.get("histogram")
        self.histogram = None if hist is None else ConfidenceHistogram.from_dict(hist)
        self.ece_raw = state_dict.get("ece_raw")
        self.ece_calibrated = state_dict.get("ece_calibrated")


def _binary_iou_estimate(
    calibrator: Calibrator, count_by_class: np.ndarray[Any, Any], sum_by_class: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """IoU per class estimated from calibrated confidence (two classes; :mod:`glaciermap.calibration.iou_estimate`).

    Every fine bin's pixels are taken at the bin's mean raw confidence: ``E[TP_k] = sum_{pred k} R(c)``,
    ``E[FN_k] = sum_{pred not k} (1 - R(c))``, ``IoU_k = E[TP_k] / (|P_k| + E[FN_k])``.
    """
    tp, predicted, wrong = np.zeros(2), np.zeros(2), np.zeros(2)
    for k in range(2):
        m = count_by_class[k] > 0
        r = np.asarray(calibrator(sum_by_class[k][m] / count_by_class[k][m]), np.float64)
        n = count_by_class[k][m].astype(np.float64)
        tp[k], predicted[k], wrong[k] = (n * r).sum(), n.sum(), (n * (1.0 - r)).sum()
    fn = wrong[::-1]  # a wrong pixel predicted as the other class belongs to this one
    denom = predicted + fn
    return np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)
