"""ConfidenceHistogram: streaming, mergeable, exact binning and ECE."""

from __future__ import annotations

import numpy as np
import pytest

from glaciermap.calibration import ConfidenceHistogram
from glaciermap.errors import ConfigError, InputError


def _data(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.random(n)
    return c, rng.random(n) < 0.3 + 0.6 * c


def test_counts_and_means_by_hand() -> None:
    h = ConfidenceHistogram.from_arrays([0.05, 0.15, 0.12, 0.95, 1.0], [1, 0, 1, 1, 0], n_bins=10)
    assert h.count.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert h.correct.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    np.testing.assert_allclose(h.mean_confidence[[0, 1, 9]], [0.05, 0.135, 0.975])
    assert np.isnan(h.accuracy[2])
    # ECE_10 = (1*|1-0.05| + 2*|0.5-0.135| + 2*|0.5-0.975|) / 5
    assert h.expected_calibration_error() == pytest.approx((0.95 + 2 * 0.365 + 2 * 0.475) / 5)


def test_batches_and_processes_merge_to_the_whole() -> None:
    c, k = _data()
    whole = ConfidenceHistogram.from_arrays(c, k)
    parts = [ConfidenceHistogram.from_arrays(c[i::3], k[i::3]) for i in range(3)]
    merged = parts[0] + parts[1] + parts[2]
    assert (merged.count == whole.count).all() and (merged.correct == whole.correct).all()
    np.testing.assert_allclose(merged.confidence_sum, whole.confidence_sum, rtol=1e-12)
    streamed = ConfidenceHistogram(100)
    for i in range(0, c.size, 700):
        streamed.update(c[i : i + 700], k[i : i + 700])
    assert (streamed.count == whole.count).all()
    assert whole.total == c.size


def test_rebin_equals_direct_binning() -> None:
    c, k = _data()
    coarse = ConfidenceHistogram.from_arrays(c, k, 100).rebin(10)
    direct = ConfidenceHistogram.from_arrays(c, k, 10)
    assert (coarse.count == direct.count).all() and (coarse.correct == direct.correct).all()
    with pytest.raises(ConfigError, match="expected a divisor"):
        ConfidenceHistogram(100).rebin(7)


def test_round_trip_and_bad_input() -> None:
    c, k = _data(300)
    h = ConfidenceHistogram.from_arrays(c, k)
    back = ConfidenceHistogram.from_dict(h.to_dict())
    assert (back.count == h.count).all() and back.confidence_sum.tolist() == h.confidence_sum.tolist()
    with pytest.raises(ConfigError, match="expected n_bins, count"):
        ConfidenceHistogram.from_dict({"n_bins": 100})
    with pytest.raises(ConfigError, match="cannot merge 10 bins into 100"):
        h.merge(ConfidenceHistogram(10))
    with pytest.raises(InputError, match="NaN"):
        h.update([np.nan], [True])
    with pytest.raises(InputError, match="one per sample"):
        h.update([0.1, 0.2], [True])
    with pytest.raises(InputError, match="booleans or 0/1"):
        h.update([0.1], [2])
    with pytest.raises(InputError, match="no samples"):
        ConfidenceHistogram(10).expected_calibration_error()


def test_calibrated_histogram_moves_bins_through_the_calibrator() -> None:
    h = ConfidenceHistogram.from_arrays([0.05, 0.15, 0.12, 0.95], [1, 0, 1, 1], n_bins=10)
    moved = h.calibrated(lambda c: 1.0 - c, n_bins=10)  # bin means 0.05, 0.135, 0.95 -> 0.95, 0.865, 0.05
    assert moved.count.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 2, 1]
    assert moved.correct.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    np.testing.assert_allclose(moved.confidence_sum[[0, 8, 9]], [0.05, 2 * 0.865, 0.95])
    # identity with a fine histogram reproduces the ECE of the raw arrays
    c, k = _data()
    fine = ConfidenceHistogram.from_arrays(c, k, 10_000)
    assert fine.calibrated(lambda v: v, 100).expected_calibration_error() == pytest.approx(
        ConfidenceHistogram.from_arrays(c, k, 100).expected_calibration_error(), abs=1e-12
    )
