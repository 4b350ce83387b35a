"""Kernel ridge regression with the Laplacian kernel: the GlaViTU authors' confidence calibrator.

Prediction (the GlaViTU authors' reference implementation)::

    R(c) = clip( sum_i a_i exp(-gamma |c - x_i|), 0, 1 )

with support points ``x_i``, dual coefficients ``a_i`` and ``gamma = 1`` (sklearn's default ``1 / n_features``).

Fitting (the authors' reference implementation, ``confidence_calibration.ipynb``), on validation predictions:

1. 100 equal-width bins of raw confidence (GlaViTU paper Eq. 3); per non-empty bin the mean confidence
   ``x_b`` (not the bin centre), the accuracy ``y_b`` and the count ``n_b``;
2. bin weights ``w_b = (n_b / max_b n_b) ** 0.1``;
3. anchors ``(0, 0)`` first and ``(1, 1)`` last, weight 1 (``low_anchor`` changes the 0 accuracy at
   confidence 0, e.g. to the chance level ``1 / C``);
4. ridge penalties ``lambda_i = (1 - w_i) * scale`` (the shipped calibrators: ``scale = 0.1``);
5. the dual coefficients solve ``(K + Lambda) a = y`` with ``K_ij = exp(-gamma |x_i - x_j|)``.

**What the authors' code actually solved.** They passed the per-sample penalties as
``sklearn.kernel_ridge.KernelRidge(alpha=<array>)``, but sklearn reads an ``alpha`` array as *one penalty per
target*, and with one target it uses only ``alpha[0]``, the penalty of the ``(0, 0)`` anchor, which is 0.
So the shipped calibrators are exact kernel interpolants of the ``(x_b, y_b)`` points: ``K a = y`` holds to
1e-12 for all three (checked in ``tests/calibration/test_kernel_ridge.py``), while ``(K + Lambda) a`` is far
outside ``[0, 1]``. ``penalty="authors"`` (the default) reproduces that and hence the shipped numbers;
``penalty="per_sample"`` solves the system the notebook describes, ``(K + diag(lambda)) a = y``, which
smooths sparsely populated bins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import scipy.linalg

from glaciermap.calibration.base import Calibrator, FloatArray, array_field, float_field
from glaciermap.calibration.histogram import DEFAULT_BINS, ConfidenceHistogram
from glaciermap.calibration.iou_estimate import IoUCorrection
from glaciermap.errors import ConfigError, InputError

PenaltyMode = Literal["authors", "per_sample"]
"""How the per-sample ridge penalties enter the solve (see the module docstring)."""

DEFAULT_WEIGHT_EXPONENT: float = 0.1
"""Bin weights are ``(count / max count) ** 0.1`` (the authors' reference implementation)."""

DEFAULT_PENALTY_SCALE: float = 0.1
"""Penalty scale of the shipped ``glavitu_global`` calibrator (the notebook shows 0.01; as in the authors' notebook)."""

_CHUNK = 65536
_FAST_RANGE = 20.0  # gamma * (max x - min x) up to which the prefix-sum evaluation is exact to ~1e-12


def laplacian_kernel(a: npt.ArrayLike, b: npt.ArrayLike, gamma: float = 1.0) -> FloatArray:
    """Laplacian kernel matrix ``exp(-gamma |a_i - b_j|)`` of two 1-D arrays, ``(len(a), len(b))``."""
    u = np.asarray(a, np.float64).reshape(-1, 1)
    v = np.asarray(b, np.float64).reshape(1, -1)
    return np.exp(-gamma * np.abs(u - v))


class KernelRidgeCalibrator(Calibrator):
    """``R(c) = clip(sum_i a_i exp(-gamma |c - x_i|), 0, 1)`` (the GlaViTU authors' reference implementation).

    Args:
        support: Support points ``x_i`` in ``[0, 1]`` (bin means and the two anchors), ``(n,)``.
        dual_coef: Dual coefficients ``a_i``, ``(n,)``.
        gamma: Kernel scale (1 for the authors' calibrators).
        penalty: Ridge penalty of each support point used when fitting (informative only), ``(n,)``.
        num_classes: The ``C`` of GlaViTU paper Eq. 3.
        class_names: Classes of the model it was fitted for.
        iou_correction: Optional correction of the IoU estimate.

    Raises:
        ConfigError: On arrays of different lengths, support points outside ``[0, 1]`` or ``gamma <= 0``.
    """

    kind: ClassVar[str] = "krr"

    def __init__(
        self,
        support: npt.ArrayLike,
        dual_coef: npt.ArrayLike,
        gamma: float = 1.0,
        penalty: npt.ArrayLike | None = None,
        *,
        num_classes: int = 2,
        class_names: Sequence[str] | None = None,
        iou_correction: IoUCorrection | None = None,
    ) -> None:
        super().__init__(num_classes, class_names, iou_correction)
        x = np.asarray(support, np.float64).reshape(-1)
        a = np.asarray(dual_coef, np.float64).reshape(-1)
        if x.size == 0 or x.size != a.size:
            raise ConfigError(
                f"calibrator: {x.size} support points and {a.size} dual coefficients; expected the same "
                "positive number"
            )
        if not (np.isfinite(x).all() and np.isfinite(a).all()):
            raise ConfigError("calibrator: support points and dual coefficients must be finite")
        if x.min() < 0.0 or x.max() > 1.0:
            raise ConfigError(f"calibrator: support points span [{x.min()}, {x.max()}]; expected [0, 1]")
        if not (np.isfinite(gamma) and gamma > 0):
            raise ConfigError(f"calibrator: gamma is {gamma!r}; expected a positive number")
        self.support = x
        self.dual_coef = a
        self.gamma = float(gamma)
        self.penalty = None if penalty is None else np.asarray(penalty, np.float64).reshape(-1)
        if self.penalty is not None and self.penalty.size != x.size:
            raise ConfigError(
                f"calibrator: {self.penalty.size} penalties for {x.size} support points; expected one each"
            )
        order = np.argsort(x, kind="stable")
        xs, as_ = x[order], a[order]
        self._sorted = xs
        lo, hi = xs[0], xs[-1]
        self._fast = self.gamma * (hi - lo) <= _FAST_RANGE
        if self._fast:
            # prefix sums for sum_{x_i <= c} a_i e^{-g(c - x_i)} and suffix sums for x_i > c
            left = as_ * np.exp(self.gamma * (xs - lo))
            right = as_ * np.exp(self.gamma * (hi - xs))
            self._left = np.concatenate([[0.0], np.cumsum(left)])
            self._right = np.concatenate([np.cumsum(right[::-1])[::-1], [0.0]])

    def raw(self, confidence: npt.ArrayLike) -> FloatArray:
        """The kernel expansion ``sum_i a_i exp(-gamma |c - x_i|)`` before clipping (float64)."""
        c = np.asarray(confidence, np.float64)
        flat = c.reshape(-1)
        if self._fast:
            lo, hi = self._sorted[0], self._sorted[-1]
            k = np.searchsorted(self._sorted, flat, side="right")
            out = np.exp(-self.gamma * (flat - lo)) * self._left[k]
            out += np.exp(-self.gamma * (hi - flat)) * self._right[k]
        else:
            out = np.empty(flat.size, np.float64)
            for s in range(0, flat.size, _CHUNK):
                out[s : s + _CHUNK] = laplacian_kernel(flat[s : s + _CHUNK], self.support, self.gamma) @ (
                    self.dual_coef
                )
        return out.reshape(c.shape)

    def _calibrate(self, confidence: FloatArray) -> FloatArray:
        return self.raw(confidence)

    # ------------------------------------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gamma": self.gamma,
            "support": self.support.tolist(),
            "dual_coef": self.dual_coef.tolist(),
        }
        if self.penalty is not None:
            out["penalty"] = self.penalty.tolist()
        return out

    @classmethod
    def param_fields(cls) -> tuple[frozenset[str], frozenset[str]]:
        """Required: ``support``, ``dual_coef``; optional: ``gamma`` (default 1), ``penalty``."""
        return frozenset({"support", "dual_coef"}), frozenset({"gamma", "penalty"})

    @classmethod
    def _from_params(cls, params: Mapping[str, Any], common: dict[str, Any], source: str) -> Calibrator:
        support = array_field(params, "support", source)
        dual = array_field(params, "dual_coef", source, length=support.size)
        penalty = array_field(params, "penalty", source, length=support.size) if "penalty" in params else None
        gamma = float_field(params, "gamma", source, positive=True) if "gamma" in params else 1.0
        return cls(support, dual, gamma, penalty, **common)

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        confidence: npt.ArrayLike,
        correct: npt.ArrayLike,
        n_bins: int = DEFAULT_BINS,
        **kwargs: Any,
    ) -> KernelRidgeCalibrator:
        """Fit on raw arrays: :func:`fit_kernel_ridge` of their :class:`ConfidenceHistogram`.

        Args:
            confidence: Raw confidence (GlaViTU paper Eq. 3) of validation pixels.
            correct: Whether each pixel's predicted class is right.
            n_bins: Number of bins (100 in the reference).
            **kwargs: Passed to :func:`fit_kernel_ridge`.

        Returns:
            The fitted calibrator.
        """
        return fit_kernel_ridge(ConfidenceHistogram.from_arrays(confidence, correct, n_bins), **kwargs)


def fit_kernel_ridge(
    histogram: ConfidenceHistogram,
    *,
    weight_exponent: float = DEFAULT_WEIGHT_EXPONENT,
    penalty_scale: float = DEFAULT_PENALTY_SCALE,
    penalty: PenaltyMode = "authors",
    gamma: float = 1.0,
    low_anchor: float = 0.0,
    num_classes: int = 2,
    class_names: Sequence[str] | None = None,
) -> KernelRidgeCalibrator:
    """Fit the Laplacian kernel ridge calibrator exactly as the GlaViTU authors did (the authors' reference implementation).

    Args:
        histogram: Validation (confidence, correct) histogram; the reference uses 100 bins.
        weight_exponent: Bin weights are ``(count / max count) ** weight_exponent``.
        penalty_scale: Penalties are ``(1 - weight) * penalty_scale``.
        penalty: ``"authors"``: the system sklearn solved for the authors, ``(K + lambda_0 I) a = y`` with
            ``lambda_0 = 0`` the first anchor's penalty (exact interpolation); ``"per_sample"``:
            ``(K + diag(lambda)) a = y`` as the notebook intends. See the module docstring.
        gamma: Laplacian kernel scale (1 in the reference).
        low_anchor: Accuracy of the anchor at confidence 0: 0 as the authors. Confidence 0 means uniform
            probabilities, whose argmax is right with probability ``1 / C``; ``1 / num_classes`` avoids the
            steep drop to 0 below the first bin's mean when many pixels have confidence near 0.
        num_classes: The ``C`` of Eq. 3 the confidence was computed with.
        class_names: Classes of the model, stored with the calibrator.

    Returns:
        The fitted calibrator, with support ``[0, x_1 .. x_m, 1]`` (non-empty bins' mean confidence).

    Raises:
        InputError: If the histogram is empty.
        ConfigError: On a bad option.
    """
    if penalty not in ("authors", "per_sample"):
        raise ConfigError(f"penalty is {penalty!r}; expected 'authors' or 'per_sample'")
    if not (np.isfinite(weight_exponent) and weight_exponent >= 0):
        raise ConfigError(f"weight_exponent is {weight_exponent!r}; expected a number >= 0")
    if not (np.isfinite(penalty_scale) and penalty_scale >= 0):
        raise ConfigError(f"penalty_scale is {penalty_scale!r}; expected a number >= 0")
    if histogram.total == 0:
        raise InputError("calibration data: no samples; expected validation pixels to fit the calibrator")
    m = histogram.count > 0
    return fit_kernel_ridge_points(
        histogram.mean_confidence[m],
        histogram.accuracy[m],
        histogram.count[m],
        weight_exponent=weight_exponent,
        penalty_scale=penalty_scale,
        penalty=penalty,
        gamma=gamma,
        low_anchor=low_anchor,
        num_classes=num_classes,
        class_names=class_names,
    )


def fit_kernel_ridge_points(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    count: npt.ArrayLike,
    *,
    weight_exponent: float = DEFAULT_WEIGHT_EXPONENT,
    penalty_scale: float = DEFAULT_PENALTY_SCALE,
    penalty: PenaltyMode = "authors",
    gamma: float = 1.0,
    low_anchor: float = 0.0,
    num_classes: int = 2,
    class_names: Sequence[str] | None = None,
) -> KernelRidgeCalibrator:
    """Steps 2-5 of :func:`fit_kernel_ridge` on given bin points (mean confidence, accuracy, count).

    Args:
        x: Mean confidence of each non-empty bin, ``(m,)``.
        y: Accuracy of each bin, ``(m,)``.
        count: Samples per bin (for the weights), ``(m,)``.
        weight_exponent: See :func:`fit_kernel_ridge`.
        penalty_scale: See :func:`fit_kernel_ridge`.
        penalty: See :func:`fit_kernel_ridge`.
        gamma: See :func:`fit_kernel_ridge`.
        low_anchor: See :func:`fit_kernel_ridge`.
        num_classes: See :func:`fit_kernel_ridge`.
        class_names: See :func:`fit_kernel_ridge`.

    Returns:
        The calibrator with support ``[0, x, 1]``.

    Raises:
        ConfigError: On arrays of different lengths or counts that are not positive.
    """
    if penalty not in ("authors", "per_sample"):
        raise ConfigError(f"penalty is {penalty!r}; expected 'authors' or 'per_sample'")
    xb = np.asarray(x, np.float64).reshape(-1)
    yb = np.asarray(y, np.float64).reshape(-1)
    counts = np.asarray(count, np.float64).reshape(-1)
    if not xb.size == yb.size == counts.size or xb.size == 0:
        raise ConfigError(
            f"bins: {xb.size} x, {yb.size} y and {counts.size} counts; expected the same number > 0"
        )
    if (counts <= 0).any() or not (np.isfinite(xb).all() and np.isfinite(yb).all()):
        raise ConfigError("bins: expected positive counts and finite x and y (drop empty bins)")
    w = (counts / counts.max()) ** weight_exponent
    xs = np.concatenate([[0.0], xb, [1.0]])
    if not 0.0 <= low_anchor <= 1.0:
        raise ConfigError(f"low_anchor is {low_anchor!r}; expected an accuracy in [0, 1]")
    ys = np.concatenate([[float(low_anchor)], yb, [1.0]])
    lam = (1.0 - np.concatenate([[1.0], w, [1.0]])) * penalty_scale
    K = laplacian_kernel(xs, xs, gamma)
    # sklearn's KernelRidge reads an alpha array per target: with one target only alpha[0] (the (0, 0)
    # anchor's penalty) is used; see the module docstring.
    K[np.diag_indices_from(K)] += lam[0] if penalty == "authors" else lam
    dual = _solve(K, ys)
    return KernelRidgeCalibrator(xs, dual, gamma, lam, num_classes=num_classes, class_names=class_names)


def _solve(K: FloatArray, y: FloatArray) -> FloatArray:
    """Solve the symmetric positive (semi-)definite system as sklearn does (least squares if singular)."""
    try:
        return np.asarray(scipy.linalg.solve(K, y, assume_a="pos"), np.float64)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        return np.asarray(scipy.linalg.lstsq(K, y)[0], np.float64)
