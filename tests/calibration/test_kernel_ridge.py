"""Kernel ridge calibrator: the authors' fit, exact reproduction of their solve, ECE, JSON, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glaciermap.calibration import (
    ConfidenceHistogram,
    KernelRidgeCalibrator,
    calibrator_from_dict,
    fit_kernel_ridge,
    get_calibrator,
)
from glaciermap.calibration.authors import AUTHORS_CALIBRATORS
from glaciermap.calibration.kernel_ridge import fit_kernel_ridge_points, laplacian_kernel
from glaciermap.errors import ConfigError, InputError
from glaciermap.metrics.calibration import expected_calibration_error


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Under-confident raw confidence (as in the paper): accuracy 0.55 + 0.45 * sqrt(c)."""
    rng = np.random.default_rng(seed)
    c = rng.beta(1.2, 2.0, n)
    return c, rng.random(n) < 0.55 + 0.45 * np.sqrt(c)


@pytest.mark.parametrize("name", AUTHORS_CALIBRATORS)
def test_shipped_calibrators_are_exact_interpolants_and_we_refit_them(name: str) -> None:
    cal = get_calibrator(name)
    x, a = cal.support, cal.dual_coef
    y = laplacian_kernel(x, x) @ a
    # sklearn used only alpha[0] = 0: K a = y are the bin accuracies, in [0, 1], anchors exact
    assert y.min() > -1e-9 and y.max() < 1 + 1e-9
    assert y[0] == pytest.approx(0, abs=1e-9) and y[-1] == pytest.approx(1, abs=1e-9)
    # the notebook's intended system would put "accuracies" far outside [0, 1]
    assert np.ptp(y + cal.penalty * a) > 1.5
    refit = fit_kernel_ridge_points(x[1:-1], y[1:-1], np.ones(x.size - 2), penalty="authors")
    np.testing.assert_allclose(refit.support, x, atol=0)
    np.testing.assert_allclose(refit.dual_coef, a, rtol=1e-6, atol=1e-6)
    c = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(refit(c), cal(c), atol=1e-8)


def test_authors_mode_equals_sklearn_with_an_alpha_array() -> None:
    sklearn_kr = pytest.importorskip("sklearn.kernel_ridge")
    c, k = _miscalibrated(20000, 1)
    hist = ConfidenceHistogram.from_arrays(c, k)
    ours = fit_kernel_ridge(hist)
    model = sklearn_kr.KernelRidge(kernel="laplacian", alpha=ours.penalty)
    model.fit(ours.support[:, None], laplacian_kernel(ours.support, ours.support) @ ours.dual_coef)
    np.testing.assert_allclose(model.dual_coef_.ravel(), ours.dual_coef, rtol=1e-6, atol=1e-6)
    grid = np.linspace(0, 1, 501)
    np.testing.assert_allclose(np.clip(model.predict(grid[:, None]), 0, 1), ours(grid), atol=1e-8)


def test_tiny_case_by_hand() -> None:
    # Two bins of 2: bin 0 holds 1 sample (c=0.2, right), bin 1 holds 1024 (c=0.7, 3/4 right).
    c = np.array([0.2] + [0.7] * 1024)
    k = np.array([True] + [True] * 768 + [False] * 256)
    hist = ConfidenceHistogram.from_arrays(c, k, n_bins=2)
    x = np.array([0.0, 0.2, 0.7, 1.0])
    y = np.array([0.0, 1.0, 0.75, 1.0])
    w = (1 / 1024) ** 0.1  # = 0.5
    lam = np.array([0.0, (1 - w) * 0.1, 0.0, 0.0])  # = [0, 0.05, 0, 0]
    assert w == pytest.approx(0.5)
    K = np.exp(-np.abs(x[:, None] - x[None, :]))
    per_sample = fit_kernel_ridge(hist, penalty="per_sample")
    np.testing.assert_allclose(per_sample.support, x)
    np.testing.assert_allclose(per_sample.penalty, lam, atol=1e-15)
    np.testing.assert_allclose(per_sample.dual_coef, np.linalg.solve(K + np.diag(lam), y), rtol=1e-10)
    # the penalised point is not interpolated; the others are
    f = per_sample(x)
    assert f[1] < 1.0 - 1e-3
    np.testing.assert_allclose(f[[0, 2, 3]], y[[0, 2, 3]], atol=1e-12)
    assert f[1] == pytest.approx(1.0 - 0.05 * per_sample.dual_coef[1], abs=1e-12)
    authors = fit_kernel_ridge(hist)  # alpha[0] = 0 for all: exact interpolation
    np.testing.assert_allclose(authors(x), y, atol=1e-12)


def test_fit_lowers_ece_on_held_out_pixels() -> None:
    c_fit, k_fit = _miscalibrated(200_000, 2)
    c_test, k_test = _miscalibrated(200_000, 3)
    before = expected_calibration_error(c_test, k_test)
    for penalty in ("authors", "per_sample"):
        cal = KernelRidgeCalibrator.fit(c_fit, k_fit, penalty=penalty)
        after = expected_calibration_error(cal(c_test), k_test)
        assert before > 0.3
        assert after < 0.02, (penalty, after)


def test_histogram_fit_equals_raw_fit() -> None:
    c, k = _miscalibrated(30000, 4)
    raw = KernelRidgeCalibrator.fit(c, k)
    hist = ConfidenceHistogram(100)
    for i in range(0, c.size, 4096):
        hist.update(c[i : i + 4096], k[i : i + 4096])
    streamed = fit_kernel_ridge(hist)
    np.testing.assert_allclose(streamed.support, raw.support, rtol=1e-12)
    np.testing.assert_allclose(streamed.dual_coef, raw.dual_coef, rtol=1e-8, atol=1e-8)


def test_fast_evaluation_equals_the_direct_sum() -> None:
    rng = np.random.default_rng(5)
    x = np.sort(rng.random(50))
    a = rng.normal(0, 30, 50)
    c = rng.random(10000)
    direct = laplacian_kernel(c, x) @ a
    np.testing.assert_allclose(KernelRidgeCalibrator(x, a).raw(c), direct, atol=1e-9)
    # a wide kernel falls back to the chunked direct sum
    np.testing.assert_allclose(
        KernelRidgeCalibrator(x, a, gamma=40.0).raw(c), laplacian_kernel(c, x, 40.0) @ a
    )


def test_json_round_trip() -> None:
    c, k = _miscalibrated(5000, 6)
    cal = KernelRidgeCalibrator.fit(c, k, class_names=["background", "glacier"])
    entry = json.loads(json.dumps(cal.to_dict()))
    assert entry["kind"] == "krr" and entry["num_classes"] == 2
    assert set(entry) == {"kind", "num_classes", "class_names", "gamma", "support", "dual_coef", "penalty"}
    back = calibrator_from_dict(entry)
    assert isinstance(back, KernelRidgeCalibrator) and back.class_names == ("background", "glacier")
    grid = np.linspace(0, 1, 257)
    assert back(grid).tolist() == cal(grid).tolist()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dual_coef": None}, r"lacks field\(s\) \['dual_coef'\]"),
        ({"extra": 1}, r"unknown field\(s\) \['extra'\]"),
        ({"dual_coef": [1.0, 2.0]}, "has 2 values; expected 3"),
        ({"support": [0.0, "a", 1.0]}, "'support' is not a list of numbers"),
        ({"support": [0.0, float("nan"), 1.0]}, "NaN or infinite"),
        ({"support": [0.0, 0.5, 2.0]}, r"expected \[0, 1\]"),
        ({"gamma": -1}, "expected a positive number"),
        ({"kind": "svm"}, "kind is 'svm'; expected one of"),
        ({"num_classes": "2"}, "expected an integer >= 2"),
        ({"class_names": ["a", "b", "c"]}, "3 class_names"),
    ],
)
def test_bad_fields_are_clear_config_errors(change: dict[str, object], message: str) -> None:
    entry = KernelRidgeCalibrator([0.0, 0.5, 1.0], [0.1, 0.2, 0.3]).to_dict()
    for key, value in change.items():
        if value is None:
            entry.pop(key)
        else:
            entry[key] = value
    with pytest.raises(ConfigError, match=message):
        calibrator_from_dict(entry, source="weights.json")


def test_bad_fit_input() -> None:
    with pytest.raises(InputError, match="no samples"):
        fit_kernel_ridge(ConfidenceHistogram(100))
    with pytest.raises(ConfigError, match="expected 'authors' or 'per_sample'"):
        fit_kernel_ridge(ConfidenceHistogram.from_arrays([0.5], [1]), penalty="ridge")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="NaN"):
        KernelRidgeCalibrator.fit([0.5, np.nan], [1, 0])


def test_apply_to_probabilities_is_calibrator_of_eq3_confidence() -> None:
    from glaciermap.inference.confidence import entropy_confidence

    cal = get_calibrator("glavitu_global")
    rng = np.random.default_rng(7)
    p1 = rng.random((5, 6)).astype(np.float32)
    p = np.stack([1 - p1, p1])
    out = cal.apply_to_probabilities(p, axis=0)
    assert out.shape == (5, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, cal(entropy_confidence(p, axis=0)), atol=1e-7)
    with pytest.raises(InputError, match="3 classes along axis 0; expected 2"):
        cal.apply_to_probabilities(np.full((3, 2, 2), 1 / 3))


@pytest.mark.parametrize("classes", [2, 3])
def test_raw_confidence_equals_the_inference_confidence(classes: int) -> None:
    from glaciermap.calibration import raw_confidence
    from glaciermap.inference.confidence import entropy_confidence

    rng = np.random.default_rng(classes)
    p = rng.dirichlet(np.ones(classes) * 0.3, size=(7, 9)).transpose(2, 0, 1)  # (C, 7, 9), some near one-hot
    assert raw_confidence(p, axis=0).tolist() == entropy_confidence(p, axis=0).tolist()
    assert raw_confidence(p.transpose(1, 2, 0), axis=-1).tolist() == entropy_confidence(p, axis=0).tolist()


def test_low_anchor() -> None:
    hist = ConfidenceHistogram.from_arrays([0.3, 0.3, 0.6], [1, 0, 1], n_bins=10)
    cal = fit_kernel_ridge(hist, low_anchor=0.5)
    np.testing.assert_allclose(cal(np.array([0.0, 0.3, 0.6, 1.0])), [0.5, 0.5, 1.0, 1.0], atol=1e-12)
    assert fit_kernel_ridge(hist)(np.array([0.0]))[0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match=r"low_anchor is 2; expected an accuracy in \[0, 1\]"):
        fit_kernel_ridge(hist, low_anchor=2)
