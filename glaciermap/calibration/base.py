"""The calibrator interface and its plain-JSON form (GlaViTU paper Eq. 4).

A calibrator is a map ``R: [0, 1] -> [0, 1]`` from the raw confidence of GlaViTU paper Eq. 3,
``conf(p) = 1 + sum_i p_i log_C(p_i)``, to the expected accuracy of the prediction (Eq. 4: among pixels with
calibrated confidence ``gamma``, a fraction ``gamma`` is predicted correctly).

Every calibrator is stored as plain numbers: :meth:`Calibrator.to_dict` returns a JSON-serialisable dict with

* ``"kind"``: ``"krr"`` (:class:`~glaciermap.calibration.kernel_ridge.KernelRidgeCalibrator`),
  ``"temperature"`` (:class:`~glaciermap.calibration.temperature.TemperatureCalibrator`) or ``"isotonic"``
  (:class:`~glaciermap.calibration.isotonic.IsotonicCalibrator`);
* ``"num_classes"``: the ``C`` of Eq. 3 the raw confidence was computed with;
* ``"class_names"``: the classes of the model it was fitted for (or ``null`` when unknown);
* the parameters of the kind, and optionally ``"iou_correction"`` (see
  :mod:`glaciermap.calibration.iou_estimate`).

:func:`calibrator_from_dict` reads such a dict back and checks every field; it is what checkpoints and
exported weights (``checkpoint["glaciermap"]["calibrator"]``) are read with. Nothing is ever pickled.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from glaciermap.calibration.iou_estimate import IoUCorrection
from glaciermap.errors import ConfigError, InputError

FloatArray = npt.NDArray[np.float64]
"""A float64 numpy array."""

CONFIDENCE_TOLERANCE: float = 1e-6
"""Raw confidence may exceed ``[0, 1]`` by this much (float32 round-off) and is clipped; beyond it is an error."""

KINDS: dict[str, str] = {
    "krr": "glaciermap.calibration.kernel_ridge:KernelRidgeCalibrator",
    "temperature": "glaciermap.calibration.temperature:TemperatureCalibrator",
    "isotonic": "glaciermap.calibration.isotonic:IsotonicCalibrator",
}
"""Calibrator kind (the ``"kind"`` field) -> ``"module:class"`` that reads it."""

_COMMON_FIELDS = frozenset({"kind", "num_classes", "class_names", "iou_correction"})


PROBABILITY_CLIP: float = 1e-6
"""Probabilities are clipped to ``[1e-6, 1 - 1e-6]`` before the logarithm (the authors' reference implementation)."""


def raw_confidence(probabilities: npt.ArrayLike, axis: int = 0) -> npt.NDArray[np.float32]:
    """Raw confidence of GlaViTU paper Eq. 3, ``1 + sum_i p_i log_C(p_i)``, with ``p`` clipped as the authors' reference implementation does.

    The one implementation of Eq. 3 in glaciermap: :func:`glaciermap.inference.confidence.entropy_confidence`
    and the calibration callback call it.

    Args:
        probabilities: Class probabilities with the ``C >= 2`` classes along ``axis``.
        axis: The class axis.

    Returns:
        float32 confidence with ``axis`` removed, in ``[0, 1]``.
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float32), PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    out = 1.0 + (p * np.log(p)).sum(axis=axis) / np.float32(np.log(p.shape[axis]))
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def check_confidence(confidence: npt.ArrayLike, name: str = "confidence") -> FloatArray:
    """Raw confidence as float64, checked to be finite and in ``[0, 1]`` (clipped within round-off).

    Args:
        confidence: Raw confidence (GlaViTU paper Eq. 3), any shape.
        name: Name of the input, for messages.

    Returns:
        float64 array of the same shape, in ``[0, 1]``.

    Raises:
        InputError: On NaN or infinite values, or values outside ``[0, 1]`` beyond round-off.
    """
    c = np.asarray(confidence, dtype=np.float64)
    finite = np.isfinite(c)
    if not finite.all():
        bad = int(c.size - np.count_nonzero(finite))
        raise InputError(
            f"{name}: {bad} NaN or infinite value(s); expected raw confidence in [0, 1] "
            "(mask nodata pixels before calibrating)"
        )
    if c.size and (c.min() < -CONFIDENCE_TOLERANCE or c.max() > 1.0 + CONFIDENCE_TOLERANCE):
        raise InputError(
            f"{name}: values span [{c.min():.6g}, {c.max():.6g}]; expected raw confidence in [0, 1] "
            "(GlaViTU paper Eq. 3)"
        )
    return np.clip(c, 0.0, 1.0)


class Calibrator(ABC):
    """Maps raw confidence (GlaViTU paper Eq. 3) to calibrated confidence, the expected accuracy (Eq. 4).

    Subclasses implement :meth:`_calibrate` and :meth:`_params` / :meth:`_from_params`; the base class
    validates inputs, clips outputs to ``[0, 1]`` and handles the fields every kind shares.

    Args:
        num_classes: The ``C`` of Eq. 3 that the raw confidence was computed with (2 for glacier / not).
        class_names: Classes of the model the calibrator was fitted for (``None``: unknown, not checked).
        iou_correction: Optional linear correction of the IoU estimated without reference data.

    Raises:
        ConfigError: If ``num_classes < 2`` or ``class_names`` has another length.
    """

    kind: ClassVar[str]
    """The ``"kind"`` field of the stored dict."""

    def __init__(
        self,
        num_classes: int = 2,
        class_names: Sequence[str] | None = None,
        iou_correction: IoUCorrection | None = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"calibrator: num_classes is {num_classes!r}; expected an integer >= 2")
        names = None if class_names is None else tuple(str(c) for c in class_names)
        if names is not None and len(names) != num_classes:
            raise ConfigError(
                f"calibrator: {len(names)} class_names {list(names)} for num_classes {num_classes}; "
                "expected one name per class"
            )
        self.num_classes = num_classes
        self.class_names = names
        self.iou_correction = iou_correction

    # ------------------------------------------------------------------------------------------------
    # Applying
    def __call__(self, confidence: npt.ArrayLike) -> npt.NDArray[np.floating[Any]]:
        """Calibrate raw confidence element-wise.

        Args:
            confidence: Raw confidence (GlaViTU paper Eq. 3) in ``[0, 1]``, any shape.

        Returns:
            Calibrated confidence in ``[0, 1]``, same shape; float32 for float32 input, else float64.

        Raises:
            InputError: On NaN, infinite or out-of-range confidence.
        """
        arr = np.asarray(confidence)
        c = check_confidence(arr)
        out = np.clip(self._calibrate(c.reshape(-1)), 0.0, 1.0).reshape(c.shape)
        return out.astype(np.float32) if arr.dtype == np.float32 else out

    def apply_to_probabilities(
        self, probabilities: npt.ArrayLike, axis: int = 0
    ) -> npt.NDArray[np.floating[Any]]:
        """Calibrated confidence of class probabilities: ``R(conf(p))`` (GlaViTU paper Eqs. 3-4).

        Args:
            probabilities: Class probabilities with the ``C`` classes along ``axis`` (e.g. ``(C, H, W)``).
            axis: The class axis.

        Returns:
            Calibrated confidence with ``axis`` removed (e.g. ``(H, W)``), float32, in ``[0, 1]``.

        Raises:
            InputError: If the number of classes differs from :attr:`num_classes` or values are NaN.
        """
        p = np.asarray(probabilities, dtype=np.float32)
        self._check_class_axis(p, axis)
        if np.isnan(p).any():
            raise InputError("probabilities: NaN values; expected class probabilities in [0, 1]")
        return np.asarray(self(raw_confidence(p, axis=axis)), dtype=np.float32)

    def _check_class_axis(self, p: npt.NDArray[Any], axis: int) -> None:
        classes = p.shape[axis] if p.ndim else 0
        if classes != self.num_classes:
            raise InputError(
                f"probabilities: {classes} classes along axis {axis}; expected {self.num_classes} "
                f"(the calibrator was fitted for {self._classes_text()})"
            )

    @abstractmethod
    def _calibrate(self, confidence: FloatArray) -> FloatArray:
        """Calibrate a flat, checked float64 array (output is clipped by the caller)."""

    # ------------------------------------------------------------------------------------------------
    # Classes
    def _classes_text(self) -> str:
        if self.class_names is not None:
            return f"classes {list(self.class_names)}"
        return f"{self.num_classes} classes"

    def check_classes(self, class_names: Sequence[str], source: str = "calibrator") -> None:
        """Check that the calibrator was fitted for a model with these classes.

        Args:
            class_names: The model's class names.
            source: Where the calibrator comes from, for messages.

        Raises:
            ConfigError: If the number of classes differs, or the names differ when both are known.
        """
        names = tuple(str(c) for c in class_names)
        if len(names) != self.num_classes or (self.class_names is not None and names != self.class_names):
            raise ConfigError(
                f"{source}: calibrator fitted for {self._classes_text()}; the model has classes {list(names)}"
            )

    # ------------------------------------------------------------------------------------------------
    # Plain-JSON form
    def to_dict(self) -> dict[str, Any]:
        """The calibrator as a JSON-serialisable dict of plain numbers (see the module docstring).

        Returns:
            ``{"kind", "num_classes", "class_names", <parameters>[, "iou_correction"]}``.
        """
        out: dict[str, Any] = {
            "kind": self.kind,
            "num_classes": self.num_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
        }
        out.update(self._params())
        if self.iou_correction is not None:
            out["iou_correction"] = self.iou_correction.to_dict()
        return out

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        """The kind's own fields, as plain JSON values."""

    @classmethod
    @abstractmethod
    def _from_params(cls, params: Mapping[str, Any], common: dict[str, Any], source: str) -> Calibrator:
        """Build from the kind's own (already type-checked) fields and the common keyword arguments."""

    @classmethod
    def param_fields(cls) -> tuple[frozenset[str], frozenset[str]]:
        """The kind's (required, optional) fields, besides the common ones."""
        return frozenset(), frozenset()

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], source: str = "calibrator") -> Calibrator:
        """Read a calibrator of this kind from its :meth:`to_dict` form, checking every field.

        Args:
            entry: The dict.
            source: Where it comes from (a file, a checkpoint), for messages.

        Returns:
            The calibrator.

        Raises:
            ConfigError: If the kind differs, a field is missing, unknown or of the wrong type or length.
        """
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: calibrator is a {type(entry).__name__}; expected a JSON object")
        if entry.get("kind") != cls.kind:
            raise ConfigError(f"{source}: calibrator kind is {entry.get('kind')!r}; expected {cls.kind!r}")
        required, optional = cls.param_fields()
        missing = sorted((required | {"num_classes"}) - set(entry))
        if missing:
            raise ConfigError(
                f"{source}: calibrator {cls.kind!r} lacks field(s) {missing}; expected "
                f"{sorted(required | _COMMON_FIELDS)}"
            )
        unknown = sorted(set(entry) - required - optional - _COMMON_FIELDS)
        if unknown:
            raise ConfigError(
                f"{source}: calibrator {cls.kind!r} has unknown field(s) {unknown}; expected only "
                f"{sorted(required | optional | _COMMON_FIELDS)}"
            )
        num_classes = entry["num_classes"]
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise ConfigError(
                f"{source}: calibrator num_classes is {num_classes!r}; expected an integer >= 2"
            )
        names = entry.get("class_names")
        if names is not None and (
            not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names)
        ):
            raise ConfigError(f"{source}: calibrator class_names is {names!r}; expected a list of strings")
        iou = entry.get("iou_correction")
        common: dict[str, Any] = {
            "num_classes": num_classes,
            "class_names": names,
            "iou_correction": None if iou is None else IoUCorrection.from_dict(iou, source),
        }
        try:
            return cls._from_params(entry, common, source)
        except ConfigError as err:
            if str(err).startswith(source):
                raise
            raise ConfigError(f"{source}: {err}") from None


def float_field(entry: Mapping[str, Any], name: str, source: str, *, positive: bool = False) -> float:
    """A finite float field of a calibrator dict.

    Raises:
        ConfigError: If it is not a finite number (or not positive when required).
    """
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{source}: calibrator field {name!r} is {value!r}; expected a finite number")
    if positive and value <= 0:
        raise ConfigError(f"{source}: calibrator field {name!r} is {value!r}; expected a positive number")
    return float(value)


def array_field(
    entry: Mapping[str, Any], name: str, source: str, *, length: int | None = None, min_length: int = 1
) -> FloatArray:
    """A 1-D list of finite numbers of a calibrator dict, as float64.

    Raises:
        ConfigError: If it is not a flat list of finite numbers of the expected length.
    """
    value = entry.get(name)
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"{source}: calibrator field {name!r} is not a list of numbers")
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ConfigError(f"{source}: calibrator field {name!r} holds NaN or infinite values")
    if length is not None and arr.size != length:
        raise ConfigError(
            f"{source}: calibrator field {name!r} has {arr.size} values; expected {length} (one per support point)"
        )
    if arr.size < min_length:
        raise ConfigError(
            f"{source}: calibrator field {name!r} has {arr.size} values; expected at least {min_length}"
        )
    return arr


def calibrator_from_dict(entry: Mapping[str, Any], source: str = "calibrator") -> Calibrator:
    """Read any calibrator from its plain-JSON form (:meth:`Calibrator.to_dict`).

    Args:
        entry: ``{"kind": "krr" | "temperature" | "isotonic", ...}``.
        source: Where it comes from (a file, a checkpoint), for messages.

    Returns:
        The calibrator.

    Raises:
        ConfigError: If the kind is unknown or a field is missing, unknown or malformed.
    """
    kind = entry.get("kind") if isinstance(entry, Mapping) else None
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(f"{source}: calibrator kind is {kind!r}; expected one of {sorted(KINDS)}")
    module, _, name = KINDS[kind].partition(":")
    cls: type[Calibrator] = getattr(importlib.import_module(module), name)
    return cls.from_dict(entry, source)
