"""The authors' shipped kernel-ridge calibrators reproduce their parameters' formula (reference spec 5.6)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glaciermap.calibration import AUTHORS_CALIBRATORS, get_calibrator
from glaciermap.calibration.authors import DATA_FILE
from glaciermap.errors import ConfigError, GlaciermapError

# Reference spec 5.6: calibrated values, rounded to 3 decimals.
RAW = [0, 0.02, 0.05, 0.1, 0.15, 0.188, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]
TABLE = {
    "glavitu_global": [0.0, 0.725, 0.832, 0.926, 0.975, 0.999, 0.997, 0.974, 0.978, 0.977, 0.975, 0.977,
                       0.974, 0.977, 0.974, 0.984, 1.0],
    "glavitu_global_insar": [0.0, 0.741, 0.874, 0.978, 0.981] + [1.0] * 12,
    "glavitu_regionencoding": [0.0, 0.740, 0.846, 0.968, 0.998, 0.872, 0.828, 0.749, 0.759, 0.737, 0.661,
                               0.561, 0.459, 0.213, 0.191, 0.074, 1.0],
}  # fmt: skip


def _formula(name: str, c: np.ndarray) -> np.ndarray:
    entry = json.loads(DATA_FILE.read_text())[name.removeprefix("glavitu_")]
    x, a = np.array(entry["X_fit"]), np.array(entry["dual_coef"])
    return np.clip(np.exp(-np.abs(c[:, None] - x[None, :])) @ a, 0.0, 1.0)


@pytest.mark.parametrize("name", AUTHORS_CALIBRATORS)
def test_reproduces_the_formula_to_1e6(name: str) -> None:
    rng = np.random.default_rng(0)
    c = np.concatenate([np.linspace(0, 1, 20001), rng.random(20000), [0.0, 1.0, 1e-9, 1 - 1e-9]])
    out = get_calibrator(name)(c)
    assert out.dtype == np.float64 and out.shape == c.shape
    np.testing.assert_allclose(out, _formula(name, c), rtol=0, atol=1e-6)
    # float32 input: float32 output, same values within float32 resolution
    out32 = get_calibrator(name)(c.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, _formula(name, c.astype(np.float32).astype(np.float64)), atol=1e-6)


@pytest.mark.parametrize("name", AUTHORS_CALIBRATORS)
def test_reproduces_the_reference_table(name: str) -> None:
    np.testing.assert_allclose(get_calibrator(name)(np.array(RAW)), TABLE[name], atol=5.001e-4)


def test_shape_and_classes_are_kept() -> None:
    cal = get_calibrator("glavitu_global")
    assert cal(np.full((3, 4), 0.5)).shape == (3, 4)
    assert cal.num_classes == 2 and cal.class_names == ("background", "glacier")
    cal.check_classes(["background", "glacier"])
    with pytest.raises(ConfigError, match="fitted for classes"):
        cal.check_classes(["background", "clean_ice", "debris_ice"])


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(GlaciermapError, match="'glavitu_alps' is unknown; expected one of glavitu_global"):
        get_calibrator("glavitu_alps")


def test_nan_confidence_is_an_input_error() -> None:
    with pytest.raises(GlaciermapError, match="confidence: 1 NaN or infinite"):
        get_calibrator("glavitu_global")(np.array([0.2, np.nan]))
    with pytest.raises(GlaciermapError, match=r"expected raw confidence in \[0, 1\]"):
        get_calibrator("glavitu_global")(np.array([0.2, 1.5]))
