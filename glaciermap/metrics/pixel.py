"""Pixel metrics from a confusion matrix accumulated window by window.

The metrics of the GlaViTU paper ("Accuracy assessment") and of the Karakoram paper (section 3.3.3), all
derived from one confusion matrix ``C`` with rows = reference class and columns = predicted class. For a
class ``c`` with ``TP = C[c, c]``, ``FP = sum(C[:, c]) - TP`` and ``FN = sum(C[c, :]) - TP``:

* IoU = TP / (TP + FP + FN)                         -- GlaViTU Eq. 6 (|T ∩ P| / |T ∪ P|)
* precision = TP / (TP + FP)                        -- GlaViTU Eq. 7 (applied to pixels)
* recall = TP / (TP + FN)                           -- GlaViTU Eq. 8 (applied to pixels)
* F1 = 2 TP / (2 TP + FP + FN)                      -- GlaViTU Eq. 9, Karakoram Eq. 5
* overall accuracy = trace(C) / sum(C)              -- Karakoram Eq. 4
* mean IoU = mean of the per-class IoUs             -- Karakoram Eq. 6 (classes with an undefined IoU,
  absent from both reference and prediction, are left out of the mean)

A ratio whose denominator is zero is undefined and reported as NaN (never silently 0 or 1).

Pixels whose reference *or* prediction equals ``ignore_index`` (255: nodata, cloud, outside the scene) are
left out. Counting is done by torchmetrics' :class:`~torchmetrics.classification.MulticlassConfusionMatrix`;
:class:`ConfusionMatrix` adds value checks with clear errors, window-by-window accumulation over rasters
(:func:`pixel_metrics_from_rasters` never holds a whole scene in memory) and the metrics above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from glaciermap.constants import CLASS_NAMES, IGNORE_INDEX
from glaciermap.errors import InputError
from glaciermap.io import open_raster
from glaciermap.raster import RasterGrid, row_windows

_CHUNK_PIXELS = 1 << 22
"""Pixels handed to torchmetrics at once (bounds the int64 temporaries to ~100 MB)."""


def _ratio(num: npt.NDArray[np.int64], den: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Element-wise ``num / den`` with NaN where ``den == 0``."""
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def class_names(num_classes: int) -> tuple[str, ...]:
    """Names of the classes of a ``num_classes``-class target (``class_<i>`` where none is defined).

    Args:
        num_classes: Number of classes.

    Returns:
        One name per class id.
    """
    return CLASS_NAMES.get(num_classes, tuple(f"class_{i}" for i in range(num_classes)))


@dataclass(frozen=True)
class PixelMetrics:
    """Per-class and overall pixel metrics derived from a confusion matrix.

    Attributes:
        confusion: Confusion matrix, shape (K, K), rows = reference class, columns = predicted class
            (pixel counts).
        class_names: Name of each class.
        iou: Per-class IoU, shape (K,) (GlaViTU Eq. 6).
        precision: Per-class precision, shape (K,) (GlaViTU Eq. 7).
        recall: Per-class recall, shape (K,) (GlaViTU Eq. 8).
        f1: Per-class F1, shape (K,) (GlaViTU Eq. 9, Karakoram Eq. 5).
        overall_accuracy: Fraction of correctly classified valid pixels (Karakoram Eq. 4).
        mean_iou: Mean of the defined per-class IoUs (Karakoram Eq. 6).
    """

    confusion: npt.NDArray[np.int64]
    class_names: tuple[str, ...]
    iou: npt.NDArray[np.float64]
    precision: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]
    f1: npt.NDArray[np.float64]
    overall_accuracy: float
    mean_iou: float

    @classmethod
    def from_confusion(
        cls, confusion: npt.ArrayLike, class_names_: tuple[str, ...] | None = None
    ) -> PixelMetrics:
        """Derive every metric from a confusion matrix.

        Args:
            confusion: Pixel counts, shape (K, K), rows = reference, columns = prediction.
            class_names_: Name of each class; default :func:`class_names`.

        Returns:
            The metrics.

        Raises:
            InputError: If ``confusion`` is not a square matrix of non-negative counts.
        """
        cm = np.asarray(confusion)
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
            raise InputError(f"confusion matrix: expected a square (K, K) matrix, got shape {cm.shape}")
        if np.any(cm < 0):
            raise InputError("confusion matrix: expected non-negative pixel counts")
        cm = cm.astype(np.int64)
        k = cm.shape[0]
        names = class_names_ if class_names_ is not None else class_names(k)
        if len(names) != k:
            raise InputError(f"confusion matrix: {k} classes but {len(names)} class names")
        tp = np.diag(cm)
        fp = cm.sum(axis=0) - tp
        fn = cm.sum(axis=1) - tp
        iou = _ratio(tp, tp + fp + fn)
        total = int(cm.sum())
        defined = iou[~np.isnan(iou)]
        return cls(
            confusion=cm,
            class_names=tuple(names),
            iou=iou,
            precision=_ratio(tp, tp + fp),
            recall=_ratio(tp, tp + fn),
            f1=_ratio(2 * tp, 2 * tp + fp + fn),
            overall_accuracy=float(np.trace(cm) / total) if total else float("nan"),
            mean_iou=float(defined.mean()) if defined.size else float("nan"),
        )

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return int(self.confusion.shape[0])

    @property
    def n_pixels(self) -> int:
        """Number of valid (not ignored) pixels counted."""
        return int(self.confusion.sum())

    def glacier(self) -> PixelMetrics:
        """The binary glacier / not-glacier metrics: every class but 0 (background) merged into "glacier".

        Returns:
            Two-class metrics (``background``, ``glacier``); itself when already binary.
        """
        if self.num_classes == 2:
            return self
        cm = self.confusion
        merged = np.array(
            [[cm[0, 0], cm[0, 1:].sum()], [cm[1:, 0].sum(), cm[1:, 1:].sum()]],
            dtype=np.int64,
        )
        return PixelMetrics.from_confusion(merged, CLASS_NAMES[2])

    def rows(self) -> list[dict[str, Any]]:
        """One dict per class, ready for a table.

        Returns:
            Dicts with ``class``, ``iou``, ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, ``n_ref``
            (reference pixels of the class) and ``n_pred`` (predicted pixels of the class).
        """
        cm = self.confusion
        tp = np.diag(cm)
        out: list[dict[str, Any]] = []
        for c, name in enumerate(self.class_names):
            out.append(
                {
                    "class": name,
                    "iou": float(self.iou[c]),
                    "precision": float(self.precision[c]),
                    "recall": float(self.recall[c]),
                    "f1": float(self.f1[c]),
                    "tp": int(tp[c]),
                    "fp": int(cm[:, c].sum() - tp[c]),
                    "fn": int(cm[c, :].sum() - tp[c]),
                    "n_ref": int(cm[c, :].sum()),
                    "n_pred": int(cm[:, c].sum()),
                }
            )
        return out


class ConfusionMatrix:
    """Streaming confusion-matrix accumulator (torchmetrics-backed).

    Feed it windows of a scene (or whole scenes, or many scenes) with :meth:`update`; :meth:`compute`
    returns the :class:`PixelMetrics` of everything seen, i.e. counts are pooled before the ratios are
    taken (micro-average, as the GlaViTU reference's ``evaluate.py`` does per region).

    Args:
        num_classes: Number of classes K (valid values are 0..K-1).
        ignore_index: Value of pixels to leave out, in either array.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 2:
            raise InputError(f"confusion matrix: num_classes must be at least 2, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise InputError(f"confusion matrix: ignore_index {ignore_index} is a valid class id")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._metric = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)

    @classmethod
    def from_torchmetrics(cls, metric: MulticlassConfusionMatrix) -> ConfusionMatrix:
        """Wrap the counts of a torchmetrics confusion-matrix metric.

        Works with :class:`~torchmetrics.classification.MulticlassConfusionMatrix` and its subclasses such
        as :class:`~torchmetrics.classification.MulticlassJaccardIndex` (e.g. the one a training task logs),
        so the same metrics come out of a validation loop and of a scene evaluation.

        Args:
            metric: A torchmetrics metric with an un-normalised ``confmat`` state.

        Returns:
            An accumulator holding a copy of the metric's counts.
        """
        confmat = getattr(metric, "confmat", None)
        if not isinstance(confmat, torch.Tensor) or confmat.ndim != 2:
            raise InputError(f"confusion matrix: {type(metric).__name__} has no (K, K) 'confmat' state")
        ignore = getattr(metric, "ignore_index", None)
        out = cls(int(confmat.shape[0]), IGNORE_INDEX if ignore is None else int(ignore))
        out._metric.confmat += confmat.detach().to("cpu", torch.long)
        return out

    def _check(self, arr: npt.NDArray[Any], what: str) -> None:
        if arr.dtype.kind not in "iub":
            raise InputError(f"{what}: expected integer class ids, got dtype {arr.dtype}")
        bad = (arr != self.ignore_index) & ((arr < 0) | (arr >= self.num_classes))
        if bad.any():
            values = np.unique(arr[bad])[:5].tolist()
            raise InputError(
                f"{what}: class ids must be 0..{self.num_classes - 1} or {self.ignore_index} (ignored), "
                f"found {values}"
            )

    def update(self, pred: npt.ArrayLike, ref: npt.ArrayLike, what: str = "prediction") -> None:
        """Add the pixels of one window (any shape) to the counts.

        Args:
            pred: Predicted class ids.
            ref: Reference class ids, same shape as ``pred``.
            what: Name of the inputs used in error messages (e.g. the file names).

        Raises:
            InputError: If the shapes differ or a value is neither a class id nor ``ignore_index``.
        """
        p = np.asarray(pred)
        r = np.asarray(ref)
        if p.shape != r.shape:
            raise InputError(f"{what}: prediction shape {p.shape} differs from reference shape {r.shape}")
        self._check(p, f"{what} (prediction)")
        self._check(r, f"{what} (reference)")
        p = p.reshape(-1)
        r = r.reshape(-1)
        for start in range(0, p.size, _CHUNK_PIXELS):
            pc = torch.from_numpy(p[start : start + _CHUNK_PIXELS].astype(np.int64))
            rc = torch.from_numpy(r[start : start + _CHUNK_PIXELS].astype(np.int64))
            # A pixel with no prediction is left out too: mark it ignored in the reference torchmetrics filters.
            rc = torch.where(pc == self.ignore_index, self.ignore_index, rc)
            self._metric.update(pc, rc)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add the counts of another accumulator with the same classes.

        Args:
            other: Accumulator to add.
        """
        if other.num_classes != self.num_classes:
            raise InputError(
                f"confusion matrix: cannot merge {other.num_classes} classes into {self.num_classes}"
            )
        self._metric.confmat += other._metric.confmat

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        """The confusion matrix so far, shape (K, K), rows = reference, columns = prediction."""
        return self._metric.confmat.numpy().astype(np.int64)

    def compute(self) -> PixelMetrics:
        """Metrics of every pixel seen so far."""
        return PixelMetrics.from_confusion(self.counts)


def _num_classes_of(*arrays: npt.NDArray[Any], ignore_index: int) -> int:
    top = 1
    for arr in arrays:
        valid = arr[arr != ignore_index]
        if valid.size:
            top = max(top, int(valid.max()))
    return top + 1


def pixel_metrics(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    num_classes: int | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> PixelMetrics:
    """Pixel metrics of a class map against a reference class map.

    Args:
        pred: Predicted class ids, any shape (e.g. (H, W)).
        ref: Reference class ids, same shape.
        num_classes: Number of classes K; default the largest valid id in either array plus one (at least 2).
        ignore_index: Value of pixels to leave out (in either array).

    Returns:
        Per-class IoU, precision, recall and F1, overall accuracy and mean IoU (see the module docstring).

    Raises:
        InputError: If the shapes differ or a value is neither a class id nor ``ignore_index``.
    """
    p = np.asarray(pred)
    r = np.asarray(ref)
    if num_classes is None:
        if p.dtype.kind not in "iub" or r.dtype.kind not in "iub":
            raise InputError(f"pixel metrics: expected integer class ids, got dtypes {p.dtype} and {r.dtype}")
        num_classes = _num_classes_of(p, r, ignore_index=ignore_index)
    acc = ConfusionMatrix(num_classes, ignore_index)
    acc.update(p, r, what="pixel metrics")
    return acc.compute()


def pixel_metrics_from_rasters(
    pred_path: str | os.PathLike[str],
    ref_path: str | os.PathLike[str],
    num_classes: int = 3,
    ignore_index: int = IGNORE_INDEX,
) -> PixelMetrics:
    """Pixel metrics of two class rasters on the same grid, read block by block.

    Memory stays bounded by one block of each raster whatever the scene size.

    Args:
        pred_path: Predicted class raster (e.g. a mapping's ``classes.tif``), band 1.
        ref_path: Reference class raster (e.g. a scene's ``labels.tif``), band 1.
        num_classes: Number of classes K (3: background, clean ice, debris; 2: background, glacier).
        ignore_index: Value of pixels to leave out (in either raster).

    Returns:
        The metrics of every valid pixel.

    Raises:
        InputError: If a file is missing or unreadable, the grids differ (size, CRS or transform), or a
            value is neither a class id nor ``ignore_index``.
    """
    acc = ConfusionMatrix(num_classes, ignore_index)
    with (
        open_raster(pred_path, "predicted classes") as psrc,
        open_raster(ref_path, "reference classes") as rsrc,
    ):
        RasterGrid.of(psrc).check_same(RasterGrid.of(rsrc), f"{pred_path}", f"{ref_path}")
        what = f"{pred_path} vs {ref_path}"
        for window in row_windows(rsrc.height, rsrc.width):
            acc.update(psrc.read(1, window=window), rsrc.read(1, window=window), what=what)
    return acc.compute()
