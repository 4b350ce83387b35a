"""Temperature scaling: NLL fit recovers a known temperature; binary raw-confidence form; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.special

from glaciermap.calibration import TemperatureCalibrator, calibrator_from_dict, fit_temperature
from glaciermap.calibration.temperature import inverse_binary_confidence
from glaciermap.errors import ConfigError, InputError
from glaciermap.inference.confidence import entropy_confidence


def _logits(n: int, classes: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports z * temperature (over-confident for T > 1)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (n, classes))
    p = scipy.special.softmax(z, axis=1)
    labels = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return z * temperature, labels


@pytest.mark.parametrize("classes", [2, 3])
def test_recovers_the_temperature(classes: int) -> None:
    z, y = _logits(100_000, classes, 2.5, 0)
    y[:50] = 255  # ignored
    t = fit_temperature(z, y)
    assert t == pytest.approx(2.5, rel=0.04)
    cal = TemperatureCalibrator.fit(z, y)
    assert cal.num_classes == classes and cal.temperature == pytest.approx(t)
    np.testing.assert_allclose(
        cal.apply_to_logits(z[:10], axis=1), scipy.special.softmax(z[:10] / t, axis=1), rtol=1e-5
    )


def test_binary_raw_confidence_form_equals_probability_form() -> None:
    z, _ = _logits(2000, 2, 1.0, 1)
    p = scipy.special.softmax(z, axis=1).T  # (2, N)
    cal = TemperatureCalibrator(1.7)
    via_probs = cal.apply_to_probabilities(p, axis=0)
    np.testing.assert_allclose(via_probs, scipy.special.softmax(z / 1.7, axis=1).max(axis=1), rtol=1e-5)
    # the raw confidence (Eq. 3) clips p to [1e-6, 1 - 1e-6]; compare where that does not bite
    conf = entropy_confidence(p, axis=0).astype(np.float64)
    keep = p.max(axis=0) < 0.999
    np.testing.assert_allclose(cal(conf)[keep], via_probs[keep], atol=2e-4)
    np.testing.assert_allclose(inverse_binary_confidence(np.array([0.0, 1.0])), [0.5, 1.0], atol=1e-12)


def test_three_classes_need_probabilities_and_round_trip() -> None:
    cal = TemperatureCalibrator(2.0, num_classes=3)
    with pytest.raises(ConfigError, match="expected apply_to_probabilities"):
        cal(np.array([0.5]))
    with pytest.raises(InputError, match="2 classes along axis 0; expected 3"):
        cal.apply_to_probabilities(np.full((2, 4), 0.5))
    back = calibrator_from_dict(json.loads(json.dumps(cal.to_dict())))
    assert isinstance(back, TemperatureCalibrator) and back.temperature == 2.0 and back.num_classes == 3


def test_bad_input() -> None:
    with pytest.raises(InputError, match="NaN"):
        fit_temperature(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(InputError, match="class ids in"):
        fit_temperature(np.zeros((2, 2)), np.array([0, 3]))
    with pytest.raises(InputError, match="no labelled sample"):
        fit_temperature(np.zeros((2, 2)), np.array([255, 255]))
    with pytest.raises(ConfigError, match="expected a positive number"):
        calibrator_from_dict({"kind": "temperature", "num_classes": 2, "temperature": 0})
