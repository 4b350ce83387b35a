"""IoU without reference data from calibrated confidence, and its fitted linear correction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glaciermap.calibration import (
    ExpectedIoU,
    IoUCorrection,
    KernelRidgeCalibrator,
    calibrator_from_dict,
    estimate_iou,
    fit_iou_correction,
)
from glaciermap.errors import ConfigError, InputError


def test_hand_computed_binary_case() -> None:
    # 4 pixels: predicted glacier with r = 0.9, 0.8; predicted background with r = 0.7, 1.0
    p = np.array([[0.1, 0.2, 0.7, 1.0], [0.9, 0.8, 0.3, 0.0]])
    r = np.array([0.9, 0.8, 0.7, 1.0])
    est = estimate_iou(p, r)
    # glacier: TP = 1.7, |P| = 2, FN = 0.3 + 0.0 -> 1.7 / 2.3; background: TP = 1.7, |P| = 2, FN = 0.1 + 0.2
    np.testing.assert_allclose(est, [1.7 / 2.3, 1.7 / 2.3])
    assert estimate_iou(p, r, valid=np.array([True, True, False, True]))[1] == pytest.approx(1.7 / 2.0)


def test_matches_actual_iou_when_calibrated() -> None:
    rng = np.random.default_rng(0)
    n = 400_000
    p1 = rng.beta(0.5, 0.5, n)  # glacier probability, calibrated by construction
    truth = rng.random(n) < p1
    p = np.stack([1 - p1, p1])
    pred = p1 > 0.5
    r = np.where(pred, p1, 1 - p1)
    acc = ExpectedIoU(2)
    for s in range(0, n, 100_000):  # streaming == whole
        acc.update(p[:, s : s + 100_000], r[s : s + 100_000])
    actual = (pred & truth).sum() / (pred | truth).sum()
    assert acc.iou()[1] == pytest.approx(actual, abs=0.005)
    np.testing.assert_allclose(acc.iou(), estimate_iou(p, r), rtol=1e-12)


def test_three_classes_split_errors_by_remaining_probability() -> None:
    p = np.array([[0.6], [0.3], [0.1]])  # predicted class 0 with r = 0.5
    est = ExpectedIoU(3).update(p, np.array([0.5]))
    np.testing.assert_allclose(est.expected_fn, [0.0, 0.5 * 0.75, 0.5 * 0.25])


def test_correction_fit_and_storage() -> None:
    est = np.array([0.5, 0.6, 0.7, 0.8])
    corr = fit_iou_correction(est, 0.1 + 0.9 * est)
    assert corr.intercept == pytest.approx(0.1) and corr.slope == pytest.approx(0.9) and corr.n_scenes == 4
    np.testing.assert_allclose(corr(np.array([1.2, 0.0])), [1.0, 0.1])
    cal = KernelRidgeCalibrator([0.0, 1.0], [0.0, 1.0], iou_correction=corr)
    back = calibrator_from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.iou_correction == corr
    with pytest.raises(ConfigError, match="iou_correction"):
        calibrator_from_dict({**cal.to_dict(), "iou_correction": {"slope": 1.0}})
    with pytest.raises(InputError, match="one per scene"):
        fit_iou_correction([0.5], [0.5, 0.6])
    flat = fit_iou_correction([0.5, 0.5], [0.6, 0.7])  # one distinct estimate: slope 1, mean offset
    assert (flat.intercept, flat.slope, flat.n_scenes) == (pytest.approx(0.15), 1.0, 2)
    assert isinstance(flat, IoUCorrection)
