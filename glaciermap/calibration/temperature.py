"""Temperature scaling (Guo et al. 2017, ref. 58 of the GlaViTU paper): ``softmax(z / T)``.

One scalar ``T > 0`` divides the logits ``z``; it is fitted by minimising the negative log-likelihood of the
validation labels, ``NLL(T) = mean_i [logsumexp(z_i / T) - z_{i,y_i} / T]`` (convex in ``1 / T``; solved by
bounded Brent search on ``log T``). The calibrated confidence is the scaled probability of the predicted
class, ``max_k softmax(z / T)_k``, i.e. the expected accuracy the scaled model claims.

As a :class:`~glaciermap.calibration.base.Calibrator` on raw confidence (GlaViTU paper Eq. 3) it needs
``C = 2``: then ``conf = 1 - H_2(p)`` with ``p`` the predicted class's probability determines
``p = H_2^{-1}(1 - conf)`` in ``[0.5, 1]`` and the logit margin ``z = log(p / (1 - p))``, so the calibrated
value is ``sigmoid(z / T)``. For more classes Eq. 3 does not determine the probabilities: use
:meth:`TemperatureCalibrator.apply_to_probabilities` or :meth:`TemperatureCalibrator.apply_to_logits`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.optimize
import scipy.special

from glaciermap.calibration.base import Calibrator, FloatArray, float_field
from glaciermap.calibration.iou_estimate import IoUCorrection
from glaciermap.constants import IGNORE_INDEX
from glaciermap.errors import ConfigError, InputError

LOG_T_BOUNDS: tuple[float, float] = (-6.0, 6.0)
"""Search interval of ``log T`` (``T`` from 0.0025 to 403)."""


def inverse_binary_confidence(confidence: FloatArray, iterations: int = 60) -> FloatArray:
    """The predicted class's probability ``p`` in ``[0.5, 1]`` with ``1 - H_2(p) = confidence``.

    Bisection (``H_2`` decreases on ``[0.5, 1]``); 60 halvings reach float64 resolution.

    Args:
        confidence: Raw confidence (GlaViTU paper Eq. 3 with ``C = 2``) in ``[0, 1]``.
        iterations: Bisection steps.

    Returns:
        ``p``, same shape.
    """
    target = 1.0 - np.asarray(confidence, np.float64)
    lo = np.full(target.shape, 0.5)
    hi = np.ones(target.shape)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        h = -(scipy.special.xlogy(mid, mid) + scipy.special.xlogy(1 - mid, 1 - mid)) / np.log(2.0)
        above = h > target  # entropy too high: p must grow
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return 0.5 * (lo + hi)


class TemperatureCalibrator(Calibrator):
    """Temperature scaling of the logits, ``softmax(z / T)``.

    Args:
        temperature: ``T > 0`` (``T > 1`` softens over-confident predictions).
        num_classes: Number of classes ``C``.
        class_names: Classes of the model it was fitted for.
        iou_correction: Optional correction of the IoU estimate.

    Raises:
        ConfigError: If ``temperature`` is not a positive finite number.
    """

    kind: ClassVar[str] = "temperature"

    def __init__(
        self,
        temperature: float,
        *,
        num_classes: int = 2,
        class_names: Sequence[str] | None = None,
        iou_correction: IoUCorrection | None = None,
    ) -> None:
        super().__init__(num_classes, class_names, iou_correction)
        if not (np.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"calibrator: temperature is {temperature!r}; expected a positive number")
        self.temperature = float(temperature)

    def apply_to_logits(self, logits: npt.ArrayLike, axis: int = 0) -> npt.NDArray[np.float32]:
        """Calibrated class probabilities ``softmax(z / T)`` along ``axis``.

        Raises:
            InputError: If the class axis has another size than :attr:`num_classes`, or on NaN.
        """
        z = np.asarray(logits, np.float64)
        self._check_class_axis(z, axis)
        if np.isnan(z).any():
            raise InputError("logits: NaN values; expected finite logits")
        return scipy.special.softmax(z / self.temperature, axis=axis).astype(np.float32)

    def apply_to_probabilities(
        self, probabilities: npt.ArrayLike, axis: int = 0
    ) -> npt.NDArray[np.floating[Any]]:
        """Calibrated confidence of probabilities: ``max_k softmax(log p / T)_k`` (float32).

        ``log p`` equals the logits up to a per-pixel constant, which softmax ignores.

        Raises:
            InputError: If the class axis has another size than :attr:`num_classes`, or on NaN.
        """
        p = np.asarray(probabilities, np.float64)
        self._check_class_axis(p, axis)
        if np.isnan(p).any():
            raise InputError("probabilities: NaN values; expected class probabilities in [0, 1]")
        scaled = scipy.special.softmax(np.log(np.clip(p, 1e-30, 1.0)) / self.temperature, axis=axis)
        return scaled.max(axis=axis).astype(np.float32)

    def _calibrate(self, confidence: FloatArray) -> FloatArray:
        if self.num_classes != 2:
            raise ConfigError(
                f"calibrator: temperature scaling of {self.num_classes} classes cannot be applied to raw "
                "confidence; expected apply_to_probabilities() or apply_to_logits()"
            )
        p = inverse_binary_confidence(confidence)
        with np.errstate(divide="ignore"):
            margin = np.log(p) - np.log1p(-p)
        return np.asarray(scipy.special.expit(margin / self.temperature), np.float64)

    def _params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    @classmethod
    def param_fields(cls) -> tuple[frozenset[str], frozenset[str]]:
        """Required: ``temperature``."""
        return frozenset({"temperature"}), frozenset()

    @classmethod
    def _from_params(cls, params: Mapping[str, Any], common: dict[str, Any], source: str) -> Calibrator:
        return cls(float_field(params, "temperature", source, positive=True), **common)

    @classmethod
    def fit(
        cls,
        logits: npt.ArrayLike,
        labels: npt.ArrayLike,
        *,
        ignore_index: int = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
    ) -> TemperatureCalibrator:
        """Fit ``T`` by minimising the validation NLL (see :func:`fit_temperature`)."""
        z = np.asarray(logits)
        t = fit_temperature(z, labels, ignore_index=ignore_index)
        return cls(t, num_classes=int(z.shape[-1]), class_names=class_names)


def temperature_nll(logits: FloatArray, labels: npt.NDArray[np.intp], temperature: float) -> float:
    """Mean negative log-likelihood of ``softmax(z / T)`` (nats)."""
    scaled = logits / temperature
    lse = scipy.special.logsumexp(scaled, axis=1)
    return float(np.mean(lse - scaled[np.arange(labels.size), labels]))


def fit_temperature(
    logits: npt.ArrayLike, labels: npt.ArrayLike, *, ignore_index: int = IGNORE_INDEX
) -> float:
    """The temperature minimising the NLL of validation labels.

    Args:
        logits: ``(N, C)`` logits.
        labels: ``(N,)`` class ids; ``ignore_index`` entries are left out.
        ignore_index: Label of pixels to leave out.

    Returns:
        ``T > 0``.

    Raises:
        InputError: On shapes that do not fit, NaN logits, labels out of range or no labelled sample.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.size or z.shape[1] < 2:
        raise InputError(
            f"logits: shape {z.shape} for {y.size} labels; expected (N, C) with C >= 2 and one label per row"
        )
    if np.isnan(z).any():
        raise InputError("logits: NaN values; expected finite logits")
    keep = y != ignore_index
    z, y = z[keep], y[keep].astype(np.intp)
    if y.size == 0:
        raise InputError("labels: no labelled sample; expected validation pixels to fit the temperature")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise InputError(
            f"labels: values span [{y.min()}, {y.max()}]; expected class ids in [0, {z.shape[1] - 1}]"
        )
    res = scipy.optimize.minimize_scalar(
        lambda log_t: temperature_nll(z, y, float(np.exp(log_t))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-8},
    )
    return float(np.exp(res.x))
