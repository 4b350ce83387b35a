"""Calibration metrics: ECE (GlaViTU Eq. 5) by netcal and by our histogram, reliability table, Brier, NLL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import glaciermap.metrics as metrics
from glaciermap.calibration import ConfidenceHistogram
from glaciermap.errors import InputError
from glaciermap.metrics.calibration import (
    brier_score,
    confidence_brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    plot_reliability_diagram,
    reliability_table,
)


def _data(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.random(n)
    return c, rng.random(n) < 0.4 + 0.5 * c


def _own_ece(c: np.ndarray, k: np.ndarray, bins: int) -> float:
    """Eq. 5 written out independently of the package."""
    idx = np.minimum((c * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / c.size * abs(k[m].mean() - c[m].mean())
    return total


@pytest.mark.parametrize("bins", [10, 15, 100])
def test_netcal_equals_our_implementation(bins: int) -> None:
    c, k = _data()
    hist = ConfidenceHistogram.from_arrays(c, k, bins)
    ece = expected_calibration_error(c, k, n_bins=bins)
    assert ece == pytest.approx(_own_ece(c, k, bins), abs=1e-12)
    assert ece == pytest.approx(hist.expected_calibration_error(), abs=1e-12)
    assert expected_calibration_error(hist, n_bins=bins) == pytest.approx(ece, abs=1e-12)
    # accuracy 0.4 + 0.5c vs confidence c: E|0.4 - 0.5c| = 0.16 + 0.01 over c ~ U(0, 1)
    assert ece == pytest.approx(0.17, abs=0.01)


def test_histogram_ece_rebins_and_perfect_calibration_is_near_zero() -> None:
    c, k = _data()
    hist = ConfidenceHistogram.from_arrays(c, k, 100)
    assert expected_calibration_error(hist, n_bins=10) == pytest.approx(expected_calibration_error(c, k, 10))
    rng = np.random.default_rng(1)
    c2 = rng.random(200_000)
    assert expected_calibration_error(c2, rng.random(c2.size) < c2, n_bins=10) < 0.01


def test_reliability_table_equals_netcal_bins() -> None:
    from netcal.metrics import ECE

    c, k = _data(5000, 2)
    table = reliability_table(c, k)
    metric = ECE(bins=10, detection=True)
    X, matched, unc, bounds, _ = metric.prepare(c, k.astype(int), False, None)
    histograms, num_samples, _, _ = metric.binning(bounds[0], X[0], matched[0], X[0][:, 0], unc[0][:, 0])
    acc_hist, conf_hist = histograms[0], histograms[1]
    np.testing.assert_allclose(table.count, num_samples.ravel())
    np.testing.assert_allclose(table.accuracy, np.asarray(acc_hist).ravel(), atol=1e-12)
    np.testing.assert_allclose(table.confidence, np.asarray(conf_hist).ravel(), atol=1e-12)
    assert table.ece == pytest.approx(expected_calibration_error(c, k, 10))
    rows = table.to_rows()
    assert len(rows) == 10 and rows[3]["lower"] == pytest.approx(0.3)
    assert rows[3]["gap"] == pytest.approx(table.accuracy[3] - table.confidence[3])


def test_reliability_diagram_png(tmp_path: Path) -> None:
    c, k = _data(2000, 3)
    out = tmp_path / "reliability.png"
    fig = plot_reliability_diagram(reliability_table(c, k), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ECE$_{10}$" in fig.axes[0].get_title()


def test_brier_and_nll_by_hand() -> None:
    p = np.array([[0.8, 0.2], [0.4, 0.6], [0.5, 0.5]])
    y = np.array([0, 0, 255])
    assert brier_score(p, y) == pytest.approx(((0.2**2 + 0.2**2) + (0.6**2 + 0.6**2)) / 2)
    assert negative_log_likelihood(p, y) == pytest.approx(-(np.log(0.8) + np.log(0.4)) / 2)
    assert brier_score(p.T, y, axis=0) == pytest.approx(brier_score(p, y))
    assert confidence_brier_score([0.9, 0.5], [1, 0]) == pytest.approx((0.01 + 0.25) / 2)
    with pytest.raises(InputError, match="class ids in"):
        negative_log_likelihood(p, np.array([0, 2, 1]))


def test_bad_input() -> None:
    with pytest.raises(InputError, match="NaN"):
        expected_calibration_error([0.5, np.nan], [1, 0])
    with pytest.raises(InputError, match="one per sample"):
        expected_calibration_error([0.5, 0.4], [1])
    with pytest.raises(InputError, match="missing"):
        expected_calibration_error([0.5])


def test_reexported_lazily_without_torch() -> None:
    assert metrics.expected_calibration_error is expected_calibration_error
    code = (
        "import sys\n"
        "import glaciermap.metrics\n"
        "from glaciermap.metrics import reliability_table\n"
        "import numpy as np\n"
        "from glaciermap.calibration import get_calibrator, IsotonicCalibrator\n"
        "get_calibrator('glavitu_global').apply_to_probabilities(np.full((2, 3, 3), 0.5))\n"
        "IsotonicCalibrator.fit(np.random.rand(100), np.random.rand(100) < 0.5)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
