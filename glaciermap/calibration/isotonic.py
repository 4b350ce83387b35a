"""Isotonic regression of accuracy on raw confidence, fitted on binned data and stored as breakpoints.

The fit is the weighted pool-adjacent-violators algorithm on the non-empty bins of a
:class:`~glaciermap.calibration.histogram.ConfidenceHistogram` (x = mean confidence of the bin, y = its
accuracy, weight = its count): the non-decreasing step function closest to the bin accuracies in weighted
least squares. As in scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``, each pooled block keeps its
first and last point, the calibrator interpolates linearly between those breakpoints and is constant beyond
them. Unlike kernel ridge (:mod:`~glaciermap.calibration.kernel_ridge`) it is monotonic by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from glaciermap.calibration.base import Calibrator, FloatArray, array_field
from glaciermap.calibration.histogram import DEFAULT_BINS, ConfidenceHistogram
from glaciermap.calibration.iou_estimate import IoUCorrection
from glaciermap.errors import ConfigError, InputError


class IsotonicCalibrator(Calibrator):
    """Piecewise-linear non-decreasing map through breakpoints ``(x_j, y_j)``, constant outside them.

    Args:
        x: Breakpoint confidences, non-decreasing, in ``[0, 1]``, ``(n,)``.
        y: Calibrated values at the breakpoints, non-decreasing, in ``[0, 1]``, ``(n,)``.
        num_classes: The ``C`` of GlaViTU paper Eq. 3.
        class_names: Classes of the model it was fitted for.
        iou_correction: Optional correction of the IoU estimate.

    Raises:
        ConfigError: If the breakpoints are not non-decreasing, out of ``[0, 1]`` or of different lengths.
    """

    kind: ClassVar[str] = "isotonic"

    def __init__(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        num_classes: int = 2,
        class_names: Sequence[str] | None = None,
        iou_correction: IoUCorrection | None = None,
    ) -> None:
        super().__init__(num_classes, class_names, iou_correction)
        xs = np.asarray(x, np.float64).reshape(-1)
        ys = np.asarray(y, np.float64).reshape(-1)
        if xs.size == 0 or xs.size != ys.size:
            raise ConfigError(
                f"calibrator: {xs.size} breakpoints x and {ys.size} values y; expected the same positive number"
            )
        if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            raise ConfigError("calibrator: isotonic breakpoints must be finite")
        if (np.diff(xs) < 0).any() or (np.diff(ys) < 0).any():
            raise ConfigError("calibrator: isotonic breakpoints x and y must be non-decreasing")
        if xs.min() < 0 or xs.max() > 1 or ys.min() < 0 or ys.max() > 1:
            raise ConfigError("calibrator: isotonic breakpoints must lie in [0, 1]")
        self.x = xs
        self.y = ys

    def _calibrate(self, confidence: FloatArray) -> FloatArray:
        return np.interp(confidence, self.x, self.y)

    def _params(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def param_fields(cls) -> tuple[frozenset[str], frozenset[str]]:
        """Required: ``x``, ``y``."""
        return frozenset({"x", "y"}), frozenset()

    @classmethod
    def _from_params(cls, params: Mapping[str, Any], common: dict[str, Any], source: str) -> Calibrator:
        x = array_field(params, "x", source)
        y = array_field(params, "y", source, length=x.size)
        return cls(x, y, **common)

    @classmethod
    def fit(
        cls, confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = DEFAULT_BINS, **kwargs: Any
    ) -> IsotonicCalibrator:
        """Fit on raw arrays through their :class:`ConfidenceHistogram` (see :func:`fit_isotonic`)."""
        return fit_isotonic(ConfidenceHistogram.from_arrays(confidence, correct, n_bins), **kwargs)


def pool_adjacent_violators(
    y: npt.ArrayLike, weight: npt.ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Weighted pool-adjacent-violators: the non-decreasing fit of ``y`` (already sorted by x).

    Args:
        y: Values, ``(n,)``.
        weight: Positive weights, ``(n,)``.

    Returns:
        ``(values, starts, ends)``: the value of each pooled block and the index range
        ``[starts[j], ends[j]]`` (inclusive) of the points it pools.
    """
    values: list[float] = []
    weights: list[float] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, (v, w) in enumerate(zip(np.asarray(y, np.float64), np.asarray(weight, np.float64))):
        values.append(float(v))
        weights.append(float(w))
        starts.append(i)
        ends.append(i)
        while len(values) > 1 and values[-2] > values[-1]:
            w2 = weights[-2] + weights[-1]
            v2 = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w2
            end = ends[-1]
            del values[-1], weights[-1], starts[-1], ends[-1]
            values[-1], weights[-1], ends[-1] = v2, w2, end
    return np.asarray(values), np.asarray(starts, np.intp), np.asarray(ends, np.intp)


def fit_isotonic(
    histogram: ConfidenceHistogram,
    *,
    num_classes: int = 2,
    class_names: Sequence[str] | None = None,
) -> IsotonicCalibrator:
    """Fit isotonic regression on the non-empty bins of a histogram (weights: bin counts).

    Args:
        histogram: Validation (confidence, correct) histogram.
        num_classes: The ``C`` of Eq. 3 the confidence was computed with.
        class_names: Classes of the model, stored with the calibrator.

    Returns:
        The calibrator, with the first and last point of every pooled block as breakpoints.

    Raises:
        InputError: If the histogram is empty.
    """
    if histogram.total == 0:
        raise InputError("calibration data: no samples; expected validation pixels to fit the calibrator")
    m = histogram.count > 0
    x = histogram.mean_confidence[m]
    values, starts, ends = pool_adjacent_violators(histogram.accuracy[m], histogram.count[m])
    bx = np.stack([x[starts], x[ends]], axis=1).reshape(-1)
    by = np.repeat(values, 2)
    keep = np.ones(bx.size, bool)
    keep[1::2] = starts != ends  # a single-point block needs one breakpoint
    return IsotonicCalibrator(
        bx[keep], np.clip(by[keep], 0.0, 1.0), num_classes=num_classes, class_names=class_names
    )
