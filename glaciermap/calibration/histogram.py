"""A streaming, mergeable histogram of (raw confidence, correct) pairs.

Calibration data are millions of pixels; everything the calibrators and calibration metrics need is, per
equal-width confidence bin ``[i/B, (i+1)/B)`` (the last bin includes 1): the number of pixels, the number of
correctly classified pixels and the sum of their confidences. :class:`ConfidenceHistogram` keeps exactly
that (``3 B`` numbers), so validation predictions are collected with bounded memory, batch by batch and
process by process (:meth:`ConfidenceHistogram.merge`), and fitting from a histogram equals fitting from the
raw arrays it was built from (the GlaViTU authors' reference implementation: 100 bins, x = mean confidence of the bin,
y = accuracy of the bin).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from glaciermap.errors import ConfigError, InputError

DEFAULT_BINS: int = 100
"""Bins of the reference calibration fit and of the paper's ECE_100 (GlaViTU paper Eq. 5)."""


def bin_index(confidence: npt.NDArray[np.floating[Any]], n_bins: int) -> npt.NDArray[np.intp]:
    """Equal-width bin of each confidence: ``floor(c * B)``, with ``c = 1`` in the last bin.

    Args:
        confidence: Confidence in ``[0, 1]``.
        n_bins: Number of bins ``B``.

    Returns:
        Bin indices in ``[0, B - 1]``, same shape.
    """
    idx = np.floor(np.asarray(confidence, dtype=np.float64) * n_bins).astype(np.intp)
    return np.clip(idx, 0, n_bins - 1)


def _check_bins(n_bins: int, name: str = "n_bins") -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ConfigError(f"{name} is {n_bins!r}; expected a positive integer")
    return int(n_bins)


@dataclass
class ConfidenceHistogram:
    """Per-bin counts of samples and of correct samples, and the sum of confidence, over ``n_bins`` bins.

    Attributes:
        n_bins: Number of equal-width bins on ``[0, 1]``.
        count: Samples per bin, int64 ``(n_bins,)``.
        correct: Correctly classified samples per bin, int64 ``(n_bins,)``.
        confidence_sum: Sum of the samples' confidence per bin, float64 ``(n_bins,)``.
    """

    n_bins: int = DEFAULT_BINS
    count: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    correct: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    confidence_sum: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, np.float64))

    def __post_init__(self) -> None:
        """Allocate empty bins, or check the given arrays."""
        self.n_bins = _check_bins(self.n_bins)
        for name, dtype in (("count", np.int64), ("correct", np.int64), ("confidence_sum", np.float64)):
            arr = np.asarray(getattr(self, name), dtype=dtype)
            if arr.size == 0:
                arr = np.zeros(self.n_bins, dtype)
            if arr.shape != (self.n_bins,):
                raise ConfigError(f"histogram: {name} has shape {arr.shape}; expected ({self.n_bins},)")
            setattr(self, name, arr.copy())
        if (self.count < 0).any() or (self.correct < 0).any() or (self.correct > self.count).any():
            raise ConfigError("histogram: expected 0 <= correct <= count in every bin")

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls, confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = DEFAULT_BINS
    ) -> ConfidenceHistogram:
        """Histogram of raw arrays.

        Args:
            confidence: Confidence in ``[0, 1]``, any shape.
            correct: Whether each prediction is correct (bool or 0/1), same shape.
            n_bins: Number of bins.

        Returns:
            The histogram.

        Raises:
            InputError: On NaN or out-of-range confidence, or shapes that differ.
        """
        hist = cls(n_bins)
        hist.update(confidence, correct)
        return hist

    def update(self, confidence: npt.ArrayLike, correct: npt.ArrayLike) -> ConfidenceHistogram:
        """Add samples (in place).

        Args:
            confidence: Confidence in ``[0, 1]``, any shape.
            correct: Whether each prediction is correct (bool or 0/1), same shape.

        Returns:
            ``self``.

        Raises:
            InputError: On NaN or out-of-range confidence, non-binary ``correct`` or shapes that differ.
        """
        from glaciermap.calibration.base import check_confidence

        c = check_confidence(confidence).reshape(-1)
        k = np.asarray(correct)
        if k.size != c.size:
            raise InputError(
                f"correct: {k.size} values for {c.size} confidence values; expected one per sample"
            )
        k = k.reshape(-1)
        if k.dtype != np.bool_:
            if not np.isin(k, (0, 1)).all():
                raise InputError("correct: expected booleans or 0/1 values")
            k = k.astype(bool)
        idx = bin_index(c, self.n_bins)
        self.count += np.bincount(idx, minlength=self.n_bins).astype(np.int64)
        self.correct += np.bincount(idx[k], minlength=self.n_bins).astype(np.int64)
        self.confidence_sum += np.bincount(idx, weights=c, minlength=self.n_bins)
        return self

    def merge(self, other: ConfidenceHistogram) -> ConfidenceHistogram:
        """Add another histogram's samples (in place; e.g. from another batch or process).

        Raises:
            ConfigError: If the numbers of bins differ.
        """
        if other.n_bins != self.n_bins:
            raise ConfigError(f"histogram: cannot merge {other.n_bins} bins into {self.n_bins} bins")
        self.count += other.count
        self.correct += other.correct
        self.confidence_sum += other.confidence_sum
        return self

    def __add__(self, other: ConfidenceHistogram) -> ConfidenceHistogram:
        """A new histogram with the samples of both."""
        return self.copy().merge(other)

    def copy(self) -> ConfidenceHistogram:
        """An independent copy."""
        return ConfidenceHistogram(self.n_bins, self.count, self.correct, self.confidence_sum)

    def rebin(self, n_bins: int) -> ConfidenceHistogram:
        """Merge groups of adjacent bins into ``n_bins`` bins (e.g. 100 -> 10 for a reliability diagram).

        Exact because the bins are nested: bin ``i`` of ``B`` bins lies inside bin ``i // (B / n)``.

        Raises:
            ConfigError: If ``n_bins`` does not divide :attr:`n_bins`.
        """
        n = _check_bins(n_bins)
        if self.n_bins % n:
            raise ConfigError(f"n_bins is {n}; expected a divisor of the histogram's {self.n_bins} bins")
        f = self.n_bins // n
        return ConfidenceHistogram(
            n,
            self.count.reshape(n, f).sum(1),
            self.correct.reshape(n, f).sum(1),
            self.confidence_sum.reshape(n, f).sum(1),
        )

    # ------------------------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Number of samples."""
        return int(self.count.sum())

    @property
    def edges(self) -> npt.NDArray[np.float64]:
        """Bin edges, ``(n_bins + 1,)``."""
        return np.linspace(0.0, 1.0, self.n_bins + 1)

    @property
    def accuracy(self) -> npt.NDArray[np.float64]:
        """Fraction of correct samples per bin (NaN for empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.correct / np.maximum(self.count, 1), np.nan)

    @property
    def mean_confidence(self) -> npt.NDArray[np.float64]:
        """Mean confidence per bin (NaN for empty bins)."""
        return np.where(self.count > 0, self.confidence_sum / np.maximum(self.count, 1), np.nan)

    def expected_calibration_error(self) -> float:
        """ECE over the histogram's bins (GlaViTU paper Eq. 5): ``sum_b n_b / N * |acc_b - conf_b|``.

        Raises:
            InputError: If the histogram is empty.
        """
        if self.total == 0:
            raise InputError("histogram: no samples; expected at least one to compute the ECE")
        m = self.count > 0
        gap = np.abs(self.accuracy[m] - self.mean_confidence[m])
        return float((self.count[m] * gap).sum() / self.total)

    def calibrated(
        self, calibrator: Callable[[npt.NDArray[np.float64]], npt.ArrayLike], n_bins: int
    ) -> ConfidenceHistogram:
        """Histogram of calibrated confidence, treating each bin's samples as sitting at its mean confidence.

        Each non-empty bin moves, with its counts, to bin ``floor(R(mean) * n_bins)`` of the result, whose
        confidence sum grows by ``count * R(mean)``. Exact when ``R`` is constant on every bin, and accurate
        to ``R``'s variation within a bin otherwise: use a fine histogram (e.g. 10,000 bins) to measure the
        ECE after calibration from streamed data.

        Args:
            calibrator: ``R``, applied to the bins' mean confidence.
            n_bins: Bins of the result.

        Returns:
            The histogram of calibrated confidence.
        """
        m = self.count > 0
        values = np.clip(np.asarray(calibrator(self.mean_confidence[m]), np.float64), 0.0, 1.0)
        out = ConfidenceHistogram(n_bins)
        idx = bin_index(values, out.n_bins)
        np.add.at(out.count, idx, self.count[m])
        np.add.at(out.correct, idx, self.correct[m])
        np.add.at(out.confidence_sum, idx, self.count[m] * values)
        return out

    # ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: ``{"n_bins", "count", "correct", "confidence_sum"}``."""
        return {
            "n_bins": self.n_bins,
            "count": self.count.tolist(),
            "correct": self.correct.tolist(),
            "confidence_sum": self.confidence_sum.tolist(),
        }

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> ConfidenceHistogram:
        """Read :meth:`to_dict`'s form.

        Raises:
            ConfigError: If a field is missing or inconsistent.
        """
        try:
            return cls(
                int(entry["n_bins"]),
                np.asarray(entry["count"], np.int64),
                np.asarray(entry["correct"], np.int64),
                np.asarray(entry["confidence_sum"], np.float64),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(
                f"histogram: malformed ({type(err).__name__}: {err}); expected n_bins, count, correct, "
                "confidence_sum"
            ) from None
