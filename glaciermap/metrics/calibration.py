"""Calibration metrics: ECE (GlaViTU paper Eq. 5), reliability table and diagram, Brier score, NLL.

``ECE_B = sum_b n_b / N * |Accuracy_b - mean confidence_b|`` over ``B`` equal-width confidence bins (the paper
reports ``ECE_100``; its reliability diagrams (Fig. 3) use 10 bins). On arrays the ECE is computed by netcal
(``netcal.metrics.ECE`` in detection mode, where the input is the confidence of each prediction and the label
says whether it is right, which is exactly our (confidence, correct) pair); on a
:class:`~glaciermap.calibration.histogram.ConfidenceHistogram` (streaming, bounded memory) by our own
implementation, which the tests cross-check against netcal.

netcal and matplotlib are imported on first use, so ``import glaciermap.metrics`` stays light.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from glaciermap.calibration.base import check_confidence
from glaciermap.calibration.histogram import DEFAULT_BINS, ConfidenceHistogram
from glaciermap.constants import IGNORE_INDEX
from glaciermap.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RELIABILITY_BINS: int = 10
"""Bins of the reliability diagrams of GlaViTU paper Fig. 3 (the authors' reference implementation)."""


def _pairs(
    confidence: npt.ArrayLike, correct: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    c = check_confidence(confidence).reshape(-1)
    k = np.asarray(correct).reshape(-1)
    if k.size != c.size:
        raise InputError(f"correct: {k.size} values for {c.size} confidence values; expected one per sample")
    if k.dtype != np.bool_ and not np.isin(k, (0, 1)).all():
        raise InputError("correct: expected booleans or 0/1 values")
    if c.size == 0:
        raise InputError("confidence: no samples; expected at least one")
    return c, k.astype(np.int64)


def expected_calibration_error(
    confidence: npt.ArrayLike | ConfidenceHistogram,
    correct: npt.ArrayLike | None = None,
    n_bins: int = DEFAULT_BINS,
) -> float:
    """Expected calibration error over ``n_bins`` equal-width bins (GlaViTU paper Eq. 5).

    Args:
        confidence: Confidence (raw or calibrated) in ``[0, 1]``, any shape; or a histogram, whose own bins
            are merged to ``n_bins`` (``n_bins`` must divide them; pass ``n_bins=hist.n_bins`` to keep them).
        correct: Whether each prediction is right (bool or 0/1), like ``confidence``; not with a histogram.
        n_bins: Number of bins ``B`` (100 as in the paper).

    Returns:
        ``ECE_B`` in ``[0, 1]``.

    Raises:
        InputError: On NaN or out-of-range confidence, mismatched shapes or no sample.
    """
    if isinstance(confidence, ConfidenceHistogram):
        if correct is not None:
            raise InputError("correct: not expected together with a ConfidenceHistogram")
        hist = confidence if confidence.n_bins == n_bins else confidence.rebin(n_bins)
        return hist.expected_calibration_error()
    if correct is None:
        raise InputError("correct: missing; expected one boolean per confidence value")
    c, k = _pairs(confidence, correct)
    from netcal.metrics import ECE

    return float(ECE(bins=int(n_bins), detection=True).measure(c, k))


@dataclass(frozen=True)
class ReliabilityTable:
    """Per-bin reliability of confidence (the data of a reliability diagram, GlaViTU paper Fig. 3).

    Attributes:
        edges: Bin edges, ``(B + 1,)``.
        count: Samples per bin, ``(B,)``.
        confidence: Mean confidence per bin (NaN if empty), ``(B,)``.
        accuracy: Accuracy per bin (NaN if empty), ``(B,)``.
        ece: ``ECE_B`` over these bins.
    """

    edges: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]
    confidence: npt.NDArray[np.float64]
    accuracy: npt.NDArray[np.float64]
    ece: float

    @property
    def fraction(self) -> npt.NDArray[np.float64]:
        """Fraction of samples per bin (the ``b_i`` of Eq. 5)."""
        return self.count / max(int(self.count.sum()), 1)

    def to_rows(self) -> list[dict[str, float]]:
        """One dict per bin: ``lower, upper, count, confidence, accuracy, gap`` (for CSV / Markdown)."""
        return [
            {
                "lower": float(self.edges[i]),
                "upper": float(self.edges[i + 1]),
                "count": int(self.count[i]),
                "confidence": float(self.confidence[i]),
                "accuracy": float(self.accuracy[i]),
                "gap": float(self.accuracy[i] - self.confidence[i]),
            }
            for i in range(self.count.size)
        ]


def reliability_table(
    confidence: npt.ArrayLike | ConfidenceHistogram,
    correct: npt.ArrayLike | None = None,
    n_bins: int = RELIABILITY_BINS,
) -> ReliabilityTable:
    """Reliability table over ``n_bins`` equal-width bins (10 as in GlaViTU paper Fig. 3).

    Args:
        confidence: Confidence in ``[0, 1]``, or a histogram (``n_bins`` must divide its bins).
        correct: Whether each prediction is right; not with a histogram.
        n_bins: Number of bins.

    Returns:
        The table.

    Raises:
        InputError: On bad or empty input.
    """
    if isinstance(confidence, ConfidenceHistogram):
        if correct is not None:
            raise InputError("correct: not expected together with a ConfidenceHistogram")
        hist = confidence if confidence.n_bins == n_bins else confidence.rebin(n_bins)
    else:
        if correct is None:
            raise InputError("correct: missing; expected one boolean per confidence value")
        c, k = _pairs(confidence, correct)
        hist = ConfidenceHistogram.from_arrays(c, k, n_bins)
    return ReliabilityTable(
        edges=hist.edges,
        count=hist.count.copy(),
        confidence=hist.mean_confidence,
        accuracy=hist.accuracy,
        ece=hist.expected_calibration_error(),
    )


def plot_reliability_diagram(
    table: ReliabilityTable,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Reliability diagram like GlaViTU paper Fig. 3: accuracy per bin, the accuracy curve, the ideal line.

    Args:
        table: From :func:`reliability_table`.
        path: Optional PNG file to write.
        title: Optional title (default: ``ECE_B = ...``).

    Returns:
        The matplotlib figure.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    lower, width = table.edges[:-1], np.diff(table.edges)
    acc = np.nan_to_num(table.accuracy, nan=0.0)
    ax.bar(
        lower, acc, width=width, align="edge", color="#6baed6", edgecolor="#08519c", label="accuracy per bin"
    )
    m = table.count > 0
    ax.plot(table.confidence[m], table.accuracy[m], "o-", color="#fd8d3c", label="accuracy vs confidence")
    ax.plot([0, 1], [0, 1], "-", color="#31a354", label="ideal calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_title(title or f"ECE$_{{{table.count.size}}}$ = {table.ece:.5f}")
    ax.legend(loc="upper left", fontsize="small")
    if path is not None:
        out = Path(path)
        tmp = out.with_name(f".{out.name}.tmp.png")
        fig.savefig(tmp)
        os.replace(tmp, out)
    return fig


def _probabilities_labels(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, axis: int, ignore_index: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    p = np.moveaxis(np.asarray(probabilities, np.float64), axis, -1)
    y = np.asarray(labels)
    if p.shape[:-1] != y.shape:
        raise InputError(f"labels: shape {y.shape}; expected {p.shape[:-1]} (probabilities without classes)")
    p, y = p.reshape(-1, p.shape[-1]), y.reshape(-1)
    keep = y != ignore_index
    p, y = p[keep], y[keep].astype(np.intp)
    if y.size == 0:
        raise InputError("labels: no labelled sample; expected at least one")
    if np.isnan(p).any():
        raise InputError("probabilities: NaN values; expected class probabilities")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise InputError(
            f"labels: values span [{y.min()}, {y.max()}]; expected class ids in [0, {p.shape[1] - 1}]"
        )
    return p, y


def brier_score(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, axis: int = -1, ignore_index: int = IGNORE_INDEX
) -> float:
    """Multi-class Brier score ``mean_i sum_k (p_ik - 1{y_i = k})^2`` (0 best, 2 worst).

    Args:
        probabilities: Class probabilities with the classes along ``axis``.
        labels: Class ids, the other dims; ``ignore_index`` entries are left out.
        axis: The class axis.
        ignore_index: Label to leave out.

    Returns:
        The Brier score.
    """
    p, y = _probabilities_labels(probabilities, labels, axis, ignore_index)
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def negative_log_likelihood(
    probabilities: npt.ArrayLike,
    labels: npt.ArrayLike,
    axis: int = -1,
    ignore_index: int = IGNORE_INDEX,
    eps: float = 1e-12,
) -> float:
    """Mean negative log-likelihood ``-mean_i log p_{i, y_i}`` in nats (probabilities clipped to ``eps``).

    Args:
        probabilities: Class probabilities with the classes along ``axis``.
        labels: Class ids, the other dims; ``ignore_index`` entries are left out.
        axis: The class axis.
        ignore_index: Label to leave out.
        eps: Lower clip of the probabilities.

    Returns:
        The NLL.
    """
    p, y = _probabilities_labels(probabilities, labels, axis, ignore_index)
    return float(-np.log(np.clip(p[np.arange(y.size), y], eps, 1.0)).mean())


def confidence_brier_score(confidence: npt.ArrayLike, correct: npt.ArrayLike) -> float:
    """Brier score of confidence as a probability of being right, ``mean (c - correct)^2``."""
    c, k = _pairs(confidence, correct)
    return float(np.mean((c - k) ** 2))


__all__ = [
    "RELIABILITY_BINS",
    "ReliabilityTable",
    "brier_score",
    "confidence_brier_score",
    "expected_calibration_error",
    "negative_log_likelihood",
    "plot_reliability_diagram",
    "reliability_table",
]
