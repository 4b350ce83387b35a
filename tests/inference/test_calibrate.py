"""Calibrating an existing model on labelled scenes (:mod:`glaciermap.inference.calibrate`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glaciermap.calibration import KernelRidgeCalibrator, TemperatureCalibrator
from glaciermap.constants import IGNORE_INDEX
from glaciermap.errors import ConfigError, InputError
from glaciermap.inference import MapOptions, ScenePredictor, load_pretrained
from glaciermap.inference.calibrate import (
    FINE_BINS,
    SceneCalibrationData,
    calibrate_model,
    collect_scene,
    evaluate_calibrator,
    scene_labels,
    write_calibrated_weights,
)
from tests.data.checkpoints import save_tiny_checkpoint, scene_stats
from tests.data.scenes import write_scene


class Identity(KernelRidgeCalibrator):
    """Calibrated = raw confidence (a stand-in to check the sums)."""

    def __init__(self) -> None:
        super().__init__(np.array([0.0, 1.0]), np.array([0.0, 0.0]), num_classes=2)

    def _calibrate(self, confidence: np.ndarray) -> np.ndarray:
        return confidence


def test_scene_sums_of_known_pixels() -> None:
    """Counts, correct counts, IoU and the IoU estimate of four hand-made pixels."""
    data = SceneCalibrationData("s", 2)
    probs = np.array([[[0.9, 0.9, 0.2, 0.5]], [[0.1, 0.1, 0.8, 0.5]]], np.float32)  # (2, 1, 4)
    labels = np.array([[0, 1, 1, IGNORE_INDEX]])
    data.update(probs, labels, np.random.default_rng(0))
    assert data.total == 3
    assert data.confusion.tolist() == [[1, 0], [1, 1]]
    np.testing.assert_allclose(data.actual_iou(), [0.5, 0.5])
    hist = data.histogram()
    assert hist.total == 3 and int(hist.correct.sum()) == 2
    # raw confidence 1 + 0.9 log2 0.9 + 0.1 log2 0.1 = 0.531; 1 + 0.8 log2 0.8 + 0.2 log2 0.2 = 0.278
    c9, c8 = 1 - 0.4689956, 1 - 0.7219281
    np.testing.assert_allclose(hist.confidence_sum.sum(), 2 * c9 + c8, atol=1e-5)
    # identity calibrator: E[TP_0] = 2 c9, E[FN_0] = 1 - c8, |P_0| = 2
    est = data.estimated_iou(Identity())
    np.testing.assert_allclose(est[0], 2 * c9 / (2 + 1 - c8), atol=1e-4)
    np.testing.assert_allclose(est[1], c8 / (1 + 2 * (1 - c9)), atol=1e-4)
    assert data.log_probs.shape == (3, 2) and sorted(data.labels.tolist()) == [0, 1, 1]
    assert FINE_BINS == 10_000


def test_scene_labels_binary_and_bad_values() -> None:
    """Binary models see clean and debris ice as glacier; a label beyond the classes is an error."""
    raw = np.array([[0, 1, 2, 255]], np.uint8)
    assert scene_labels(raw, 2, "l").tolist() == [[0, 1, 1, 255]]
    assert scene_labels(raw, 3, "l").tolist() == [[0, 1, 2, 255]]
    with pytest.raises(InputError, match="label value 7"):
        scene_labels(np.array([[7]], np.uint8), 3, "labels.tif")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny untrained checkpoint and three labelled scenes."""
    root = tmp_path_factory.mktemp("calib")
    stats_scene = write_scene(root / "stats", size=(16, 16), modalities=("optical", "dem"), labels=False)
    ckpt = save_tiny_checkpoint(root / "tiny.ckpt", scene_stats(stats_scene))
    scenes = {
        f"s{i}": write_scene(root / f"s{i}", size=(48 + 8 * i, 48), modalities=("optical", "dem"))
        for i in range(3)
    }
    return {"root": root, "ckpt": ckpt, **scenes}


def _predictor(ckpt: Path) -> ScenePredictor:
    return ScenePredictor(load_pretrained(ckpt), MapOptions(window_size=32, device="cpu"))


@pytest.mark.parametrize("method", ["krr", "isotonic", "temperature"])
def test_calibration_lowers_ece_and_writes_weights(setup: dict[str, Path], method: str) -> None:
    """ECE after < before on the calibration scenes; the weights load with their calibrator."""
    mapping = load_pretrained(setup["ckpt"])
    predictor = ScenePredictor(mapping, MapOptions(window_size=32, device="cpu"))
    report = calibrate_model(mapping, predictor, [setup["s0"], setup["s1"]], method, [setup["s2"]])  # type: ignore[arg-type]
    cal = report.ece["calibration"]
    assert cal["before"] > 0.3  # untrained model: confidence near 0 or 1, accuracy near 2/3
    assert cal["after"] < 0.5 * cal["before"]
    assert set(report.ece) == {"calibration", "heldout"}
    assert [r["set"] for r in report.scenes] == ["calibration", "calibration", "heldout"]
    assert report.calibrator.iou_correction is not None and report.calibrator.iou_correction.n_scenes == 2
    out = write_calibrated_weights(mapping, report.calibrator, setup["root"] / f"{method}.safetensors")
    loaded = load_pretrained(out)
    assert loaded.calibrator is not None
    assert loaded.calibrator.to_dict() == report.calibrator.to_dict()  # type: ignore[attr-defined]
    for (k, a), (k2, b) in zip(mapping.model.state_dict().items(), loaded.model.state_dict().items()):
        assert k == k2 and np.array_equal(a.numpy(), b.numpy())
    if method == "temperature":
        assert isinstance(loaded.calibrator, TemperatureCalibrator)


def test_collect_scene_counts_every_labelled_pixel(setup: dict[str, Path]) -> None:
    """All 48 x 48 pixels of the scene are labelled and valid; the held-out ECE before is the raw one."""
    data = collect_scene(_predictor(setup["ckpt"]), setup["s0"])
    assert data.total == 48 * 48
    assert data.confusion.sum(1).tolist() == [48 * 16, 48 * 32]  # binary: clean and debris are glacier
    assert evaluate_calibrator(data, None) == pytest.approx(
        data.histogram().rebin(100).expected_calibration_error()
    )


def test_scene_without_labels_is_an_error(setup: dict[str, Path]) -> None:
    """A scene without labels.tif cannot calibrate."""
    bare = write_scene(setup["root"] / "bare", size=(32, 32), modalities=("optical", "dem"), labels=False)
    with pytest.raises(InputError, match=r"has no labels\.tif"):
        collect_scene(_predictor(setup["ckpt"]), bare)


def test_bad_method_and_out(setup: dict[str, Path]) -> None:
    """Unknown method, no scene, and an output that is not .safetensors are one-line errors."""
    mapping = load_pretrained(setup["ckpt"])
    predictor = _predictor(setup["ckpt"])
    with pytest.raises(ConfigError, match="method is 'platt'"):
        calibrate_model(mapping, predictor, [setup["s0"]], "platt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no calibration scene"):
        calibrate_model(mapping, predictor, [], "krr")
    with pytest.raises(ConfigError, match=r"\.safetensors"):
        write_calibrated_weights(mapping, Identity(), setup["root"] / "x.ckpt")


def test_group_iou_of_three_classes() -> None:
    """Glacier = clean + debris: actual from the confusion, estimate by hand with calibrated = raw."""
    data = SceneCalibrationData("s", 3)
    probs = np.array([[[0.8, 0.1, 0.1]], [[0.1, 0.6, 0.3]], [[0.1, 0.3, 0.6]]], np.float32)  # (3, 1, 3)
    data.update(probs, np.array([[0, 2, 2]]), np.random.default_rng(0))
    assert data.actual_group_iou((1, 2)) == pytest.approx(1.0)  # both glacier pixels predicted glacier
    assert data.actual_iou()[1:].tolist() == pytest.approx([0.0, 0.5])
    c = float(1 + (probs[:, 0, 1] * np.log(probs[:, 0, 1])).sum() / np.log(3))  # same for pixels 1 and 2
    c0 = float(1 + (probs[:, 0, 0] * np.log(probs[:, 0, 0])).sum() / np.log(3))
    identity = KernelRidgeCalibrator(np.array([0.0, 1.0]), np.array([0.0, 0.0]), num_classes=3)
    identity._calibrate = lambda x: x  # type: ignore[method-assign]
    # pixels 1, 2: right for the group with c + (1 - c) * 0.3 / 0.4; pixel 0: missed glacier with 1 - c0
    tp = 2 * (c + (1 - c) * 0.75)
    assert data.estimated_group_iou(identity, (1, 2)) == pytest.approx(tp / (2 + 1 - c0), abs=1e-4)
    assert data.estimated_group_iou(identity, (1,)) == pytest.approx(
        data.estimated_iou(identity)[1], abs=1e-9
    )


def test_weights_with_a_bad_calibrator_are_refused(setup: dict[str, Path]) -> None:
    """A calibrator for other classes, or with a wrong field, in written weights: one-line InputError on load."""
    mapping = load_pretrained(setup["ckpt"])
    other = TemperatureCalibrator(1.5, num_classes=3, class_names=("background", "clean_ice", "debris_ice"))
    out = write_calibrated_weights(mapping, other, setup["root"] / "other.safetensors")
    with pytest.raises(InputError, match="calibrator fitted for classes") as err:
        load_pretrained(out)
    assert "\n" not in str(err.value)
    bad = TemperatureCalibrator(1.5, num_classes=2)
    out = write_calibrated_weights(
        mapping, bad, setup["root"] / "bad.safetensors", {"calibrator": {"kind": "krr"}}
    )
    with pytest.raises((InputError, ConfigError), match="krr"):
        load_pretrained(out)
