"""IoU estimated without reference data, from calibrated confidence.

The GlaViTU paper links predictive confidence with IoU "as a measure of the model performance in the absence of
reference data" (Discussion; the relation itself is in its Supplementary Notes, which we do not have). We
derive one from what calibration means (Eq. 4): a calibrated confidence ``r_i`` is the probability that the
predicted class of pixel ``i`` is right. For a class ``k``, with ``P_k`` the pixels predicted as ``k``:

* expected true positives ``E[TP_k] = sum_{i in P_k} r_i``;
* expected false positives ``E[FP_k] = sum_{i in P_k} (1 - r_i)``, so ``E[TP_k] + E[FP_k] = |P_k|``;
* expected false negatives ``E[FN_k] = sum_{i not in P_k} (1 - r_i) q_ik`` where ``q_ik`` is the probability
  that a wrongly classified pixel's true class is ``k``; we take the model's own remaining probabilities,
  ``q_ik = p_ik / (1 - p_i,pred)`` (for two classes ``q_ik = 1``);

and the estimate is the ratio of expectations::

    IoU_k ~= E[TP_k] / (|P_k| + E[FN_k])

Assumptions: the calibrator holds on the scene (no domain shift between validation and the scene), errors are
independent enough that the ratio of sums approximates the expected ratio (true for the many pixels of a
scene, poor for a handful), and for ``C > 2`` the class of an error follows the model's other probabilities.
When these fail, a linear correction ``IoU ~= intercept + slope * estimate`` fitted on validation scenes
(:func:`fit_iou_correction`) absorbs the systematic part; it is stored with the calibrator
(``"iou_correction"``) as two numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from glaciermap.errors import ConfigError, InputError


@dataclass(frozen=True)
class IoUCorrection:
    """Linear correction of the estimated IoU, ``clip(intercept + slope * estimate, 0, 1)``.

    Attributes:
        intercept: Intercept.
        slope: Slope.
        n_scenes: Number of validation scenes it was fitted on (informative).
    """

    intercept: float = 0.0
    slope: float = 1.0
    n_scenes: int = 0

    def __call__(self, estimate: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Corrected IoU, clipped to ``[0, 1]`` (NaN stays NaN)."""
        e = np.asarray(estimate, np.float64)
        return np.clip(self.intercept + self.slope * e, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """``{"intercept", "slope", "n_scenes"}``."""
        return {"intercept": self.intercept, "slope": self.slope, "n_scenes": self.n_scenes}

    @classmethod
    def from_dict(cls, entry: Any, source: str = "calibrator") -> IoUCorrection:
        """Read :meth:`to_dict`'s form.

        Raises:
            ConfigError: If a field is missing, unknown or not a finite number.
        """
        if not isinstance(entry, Mapping) or not {"intercept", "slope"} <= set(entry):
            raise ConfigError(
                f"{source}: iou_correction is {entry!r}; expected {{'intercept', 'slope', 'n_scenes'}}"
            )
        unknown = sorted(set(entry) - {"intercept", "slope", "n_scenes"})
        if unknown:
            raise ConfigError(f"{source}: iou_correction has unknown field(s) {unknown}")
        values = [entry["intercept"], entry["slope"]]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in values):
            raise ConfigError(f"{source}: iou_correction intercept and slope must be finite numbers")
        n = entry.get("n_scenes", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"{source}: iou_correction n_scenes is {n!r}; expected an integer >= 0")
        return cls(float(values[0]), float(values[1]), n)


def fit_iou_correction(estimated: npt.ArrayLike, actual: npt.ArrayLike) -> IoUCorrection:
    """Least-squares line ``actual ~= intercept + slope * estimated`` over validation scenes.

    Args:
        estimated: Estimated IoU per scene (e.g. :meth:`ExpectedIoU.iou` of one class).
        actual: IoU against the reference, per scene.

    Returns:
        The correction (slope 1 and the mean offset when fewer than two distinct estimates are given).

    Raises:
        InputError: On different lengths, no finite pair, or NaN only.
    """
    e = np.asarray(estimated, np.float64).reshape(-1)
    a = np.asarray(actual, np.float64).reshape(-1)
    if e.size != a.size:
        raise InputError(f"actual: {a.size} IoU values for {e.size} estimates; expected one per scene")
    m = np.isfinite(e) & np.isfinite(a)
    if not m.any():
        raise InputError("estimated/actual IoU: no finite pair; expected at least one validation scene")
    e, a = e[m], a[m]
    if np.ptp(e) == 0:
        return IoUCorrection(float(np.mean(a - e)), 1.0, int(e.size))
    slope, intercept = np.polyfit(e, a, 1)
    return IoUCorrection(float(intercept), float(slope), int(e.size))


@dataclass
class ExpectedIoU:
    """Streaming sums of the expected confusion per class (see the module docstring), mergeable.

    Attributes:
        num_classes: ``C``.
        expected_tp: ``sum_{i in P_k} r_i`` per class.
        predicted: ``|P_k|`` per class.
        expected_fn: ``sum_{i not in P_k} (1 - r_i) q_ik`` per class.
    """

    num_classes: int
    expected_tp: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    predicted: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    expected_fn: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        """Allocate zero sums."""
        if (
            isinstance(self.num_classes, bool)
            or not isinstance(self.num_classes, int)
            or self.num_classes < 2
        ):
            raise ConfigError(f"num_classes is {self.num_classes!r}; expected an integer >= 2")
        for name in ("expected_tp", "predicted", "expected_fn"):
            arr = np.asarray(getattr(self, name), np.float64)
            setattr(self, name, np.zeros(self.num_classes) if arr.size == 0 else arr.copy())

    def update(
        self,
        probabilities: npt.ArrayLike,
        calibrated: npt.ArrayLike,
        valid: npt.ArrayLike | None = None,
        axis: int = 0,
    ) -> ExpectedIoU:
        """Add pixels (in place).

        Args:
            probabilities: Class probabilities with the classes along ``axis`` (e.g. ``(C, H, W)``).
            calibrated: Calibrated confidence of the predicted class, the other dims (e.g. ``(H, W)``).
            valid: Optional mask of the pixels to count, like ``calibrated``.
            axis: The class axis.

        Returns:
            ``self``.

        Raises:
            InputError: On shapes that do not fit or NaN among the valid pixels.
        """
        p = np.moveaxis(np.asarray(probabilities, np.float64), axis, 0)
        if p.shape[0] != self.num_classes:
            raise InputError(f"probabilities: {p.shape[0]} classes; expected {self.num_classes}")
        r = np.asarray(calibrated, np.float64)
        if r.shape != p.shape[1:]:
            raise InputError(
                f"calibrated: shape {r.shape}; expected {p.shape[1:]} (probabilities without classes)"
            )
        p = p.reshape(self.num_classes, -1)
        r = r.reshape(-1)
        if valid is not None:
            v = np.asarray(valid, bool).reshape(-1)
            if v.size != r.size:
                raise InputError(f"valid: {v.size} values; expected {r.size}")
            p, r = p[:, v], r[v]
        if np.isnan(r).any() or np.isnan(p).any():
            raise InputError("calibrated/probabilities: NaN among valid pixels; expected nodata to be masked")
        pred = p.argmax(axis=0)
        p_pred = p[pred, np.arange(pred.size)]
        wrong = 1.0 - r
        rest = np.clip(1.0 - p_pred, 1e-12, None)
        for k in range(self.num_classes):
            mine = pred == k
            self.expected_tp[k] += r[mine].sum()
            self.predicted[k] += np.count_nonzero(mine)
            q = p[k, ~mine] / rest[~mine] if self.num_classes > 2 else 1.0
            self.expected_fn[k] += (wrong[~mine] * q).sum()
        return self

    def merge(self, other: ExpectedIoU) -> ExpectedIoU:
        """Add another accumulator's sums (in place).

        Raises:
            ConfigError: If the numbers of classes differ.
        """
        if other.num_classes != self.num_classes:
            raise ConfigError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.expected_tp += other.expected_tp
        self.predicted += other.predicted
        self.expected_fn += other.expected_fn
        return self

    def iou(self, correction: IoUCorrection | None = None) -> npt.NDArray[np.float64]:
        """Estimated IoU per class (NaN where a class is neither predicted nor expected).

        Args:
            correction: Optional fitted correction to apply.
        """
        denom = self.predicted + self.expected_fn
        with np.errstate(invalid="ignore", divide="ignore"):
            est = np.where(denom > 0, self.expected_tp / np.where(denom > 0, denom, 1.0), np.nan)
        return est if correction is None else correction(est)


def estimate_iou(
    probabilities: npt.ArrayLike,
    calibrated: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    axis: int = 0,
    correction: IoUCorrection | None = None,
) -> npt.NDArray[np.float64]:
    """Per-class IoU estimated without reference data (see the module docstring for the formula).

    Args:
        probabilities: Class probabilities with the classes along ``axis``.
        calibrated: Calibrated confidence of the predicted class (e.g. ``calibrator(confidence)``).
        valid: Optional mask of the pixels to count.
        axis: The class axis.
        correction: Optional fitted correction.

    Returns:
        ``(C,)`` estimated IoU per class.
    """
    p = np.asarray(probabilities)
    acc = ExpectedIoU(int(p.shape[axis]))
    return acc.update(p, calibrated, valid, axis).iou(correction)
