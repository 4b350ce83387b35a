"""Isotonic calibrator: PAV on binned data equals scikit-learn, monotonic, lowers ECE, plain JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glaciermap.calibration import ConfidenceHistogram, IsotonicCalibrator, calibrator_from_dict, fit_isotonic
from glaciermap.calibration.isotonic import pool_adjacent_violators
from glaciermap.errors import ConfigError
from glaciermap.metrics.calibration import expected_calibration_error


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.random(n)
    return c, rng.random(n) < 0.2 + 0.7 * c**2


def test_pav_by_hand() -> None:
    values, starts, ends = pool_adjacent_violators([0.1, 0.5, 0.3, 0.9], [1, 1, 3, 1])
    np.testing.assert_allclose(values, [0.1, (0.5 + 0.9) / 4, 0.9])
    assert starts.tolist() == [0, 1, 3] and ends.tolist() == [0, 2, 3]


def test_equals_scikit_learn_on_the_bins() -> None:
    isotonic = pytest.importorskip("sklearn.isotonic")
    c, k = _data(3000, 0)  # small: noisy bins with violators
    hist = ConfidenceHistogram.from_arrays(c, k, 50)
    ours = fit_isotonic(hist)
    m = hist.count > 0
    ref = isotonic.IsotonicRegression(out_of_bounds="clip").fit(
        hist.mean_confidence[m], hist.accuracy[m], sample_weight=hist.count[m]
    )
    grid = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(ours(grid), ref.predict(grid), atol=1e-12)
    assert (np.diff(ours(grid)) >= 0).all()


def test_lowers_ece_and_round_trips() -> None:
    c, k = _data(100_000, 1)
    c2, k2 = _data(100_000, 2)
    cal = IsotonicCalibrator.fit(c, k)
    assert expected_calibration_error(c2, k2) > 0.1
    assert expected_calibration_error(cal(c2), k2) < 0.02
    back = calibrator_from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back(c2[:100]).tolist() == cal(c2[:100]).tolist()


def test_bad_breakpoints() -> None:
    with pytest.raises(ConfigError, match="non-decreasing"):
        IsotonicCalibrator([0.0, 0.5, 1.0], [0.0, 0.8, 0.6])
    with pytest.raises(ConfigError, match=r"lacks field\(s\) \['y'\]"):
        calibrator_from_dict({"kind": "isotonic", "num_classes": 2, "x": [0.0, 1.0]})
