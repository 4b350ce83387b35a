"""Confidence calibration (GlaViTU paper Eqs. 3-5): calibrators, their fitting data and the IoU estimate.

* :mod:`~glaciermap.calibration.base`: the :class:`Calibrator` interface (raw confidence -> expected accuracy)
  and its plain-JSON form, :func:`calibrator_from_dict`;
* :mod:`~glaciermap.calibration.histogram`: :class:`ConfidenceHistogram`, the streaming, mergeable per-bin
  counts every fit and calibration metric consumes;
* :mod:`~glaciermap.calibration.kernel_ridge`: the authors' Laplacian kernel ridge calibrator and its fit;
* :mod:`~glaciermap.calibration.temperature`: temperature scaling of the logits;
* :mod:`~glaciermap.calibration.isotonic`: isotonic regression on binned data;
* :mod:`~glaciermap.calibration.authors`: the three shipped calibrators, :func:`get_calibrator`;
* :mod:`~glaciermap.calibration.iou_estimate`: IoU estimated without reference data.

Only numpy and scipy are needed (no torch). See ``docs/calibration.md``.
"""

from glaciermap.calibration.authors import AUTHORS_CALIBRATORS, get_calibrator
from glaciermap.calibration.base import Calibrator, calibrator_from_dict, check_confidence, raw_confidence
from glaciermap.calibration.histogram import ConfidenceHistogram
from glaciermap.calibration.iou_estimate import ExpectedIoU, IoUCorrection, estimate_iou, fit_iou_correction
from glaciermap.calibration.isotonic import IsotonicCalibrator, fit_isotonic
from glaciermap.calibration.kernel_ridge import KernelRidgeCalibrator, fit_kernel_ridge
from glaciermap.calibration.temperature import TemperatureCalibrator, fit_temperature

__all__ = [
    "AUTHORS_CALIBRATORS",
    "Calibrator",
    "ConfidenceHistogram",
    "ExpectedIoU",
    "IoUCorrection",
    "IsotonicCalibrator",
    "KernelRidgeCalibrator",
    "TemperatureCalibrator",
    "calibrator_from_dict",
    "check_confidence",
    "estimate_iou",
    "fit_iou_correction",
    "fit_isotonic",
    "fit_kernel_ridge",
    "fit_temperature",
    "get_calibrator",
    "raw_confidence",
]
