"""Calibrating an existing model on labelled scenes: the library behind ``glaciermap calibrate``.

The calibration scenes are mapped exactly as ``glaciermap map`` maps them
(:class:`~glaciermap.inference.predictor.ScenePredictor`: same windows, blending, TTA and Monte-Carlo dropout),
and each blended strip is streamed, with the scene's ``labels.tif``, into per-scene sums
(:class:`SceneCalibrationData`); no pixel array of a scene is kept:

* a fine :class:`~glaciermap.calibration.histogram.ConfidenceHistogram` (:data:`FINE_BINS` bins) of the raw
  confidence of GlaViTU paper Eq. 3 against correctness, per predicted class, with the sums that the IoU
  estimate without reference data needs (:mod:`glaciermap.calibration.iou_estimate`);
* the confusion counts (true IoU per class);
* a uniform random subsample of at most :data:`SAMPLE_PIXELS` pixels' log-probabilities and labels, for
  temperature scaling (``log p`` equals the logits up to a per-pixel constant, which softmax ignores).

:func:`calibrate_model` then fits the calibrator (``"krr"``: the authors' kernel ridge on 100 bins,
``"temperature"``, ``"isotonic"``) and the linear IoU correction (:func:`~glaciermap.calibration.fit_iou_correction`,
estimated against actual IoU of the foreground classes of every calibration scene), measures ECE_100 (Eq. 5)
before and after on the calibration and held-out scenes, and :func:`write_calibrated_weights` writes the
model with the calibrator in its metadata as released weights (``.safetensors``).

ECE after calibration is computed from the fine histogram with every fine bin's pixels at the bin's mean
confidence (:meth:`ConfidenceHistogram.calibrated`); for temperature scaling of more than two classes, whose
calibrated confidence is not a function of the raw confidence, it comes from the subsample.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from glaciermap.calibration.base import Calibrator, raw_confidence
from glaciermap.calibration.histogram import DEFAULT_BINS, ConfidenceHistogram, bin_index
from glaciermap.calibration.iou_estimate import IoUCorrection, fit_iou_correction
from glaciermap.calibration.isotonic import fit_isotonic
from glaciermap.calibration.kernel_ridge import fit_kernel_ridge
from glaciermap.calibration.temperature import TemperatureCalibrator
from glaciermap.constants import IGNORE_INDEX, SCENE_FILES
from glaciermap.errors import ConfigError, InputError
from glaciermap.inference.predictor import ScenePredictor, Strip
from glaciermap.io import atomic_output, open_raster
from glaciermap.models.pretrained import PretrainedModel

__all__ = [
    "FINE_BINS",
    "SAMPLE_PIXELS",
    "CalibrationMethod",
    "CalibrationReport",
    "SceneCalibrationData",
    "calibrate_from_data",
    "calibrate_model",
    "collect_scene",
    "evaluate_calibrator",
    "fit_calibrator",
    "write_calibrated_weights",
]

CalibrationMethod = Literal["krr", "temperature", "isotonic"]
"""Calibration methods: the authors' kernel ridge, temperature scaling, isotonic regression."""

METHODS: tuple[str, ...] = ("krr", "temperature", "isotonic")
"""Every :data:`CalibrationMethod`."""

FINE_BINS = 10_000
"""Bins of the per-scene histograms (rebinned exactly to 100 for the fit and the ECE)."""

SAMPLE_PIXELS = 50_000
"""Pixels of each scene kept for temperature scaling (uniform random subsample)."""


@dataclass
class SceneCalibrationData:
    """Streaming sums of one labelled scene's predictions (see the module docstring).

    Attributes:
        scene: Scene name.
        num_classes: ``K``.
        count: ``(K, FINE_BINS)`` pixels predicted as class ``k`` per raw-confidence bin.
        correct: ``(K, FINE_BINS)`` of them predicted correctly.
        confidence_sum: ``(K, FINE_BINS)`` their raw-confidence sum.
        other_sum: ``(K, K, FINE_BINS)`` ``[j, k]``: sum of ``q_ik = p_ik / (1 - p_ij)`` over pixels predicted
            ``j`` (``k != j``), the probability that an error's true class is ``k``.
        confusion: ``(K, K)`` pixel counts ``[true, predicted]``.
        log_probs: ``(n, K)`` float32 log-probabilities of the subsample.
        labels: ``(n,)`` their labels.
        keys: ``(n,)`` their random keys (the subsample keeps the smallest).
    """

    scene: str
    num_classes: int
    count: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    correct: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    confidence_sum: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    other_sum: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    confusion: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    log_probs: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    labels: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    keys: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        """Allocate zero sums."""
        k = self.num_classes
        if self.count.size == 0:
            self.count = np.zeros((k, FINE_BINS), np.int64)
            self.correct = np.zeros((k, FINE_BINS), np.int64)
            self.confidence_sum = np.zeros((k, FINE_BINS))
            self.other_sum = np.zeros((k, k, FINE_BINS))
            self.confusion = np.zeros((k, k), np.int64)
            self.log_probs = np.zeros((0, k), np.float32)

    def update(
        self,
        probabilities: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        rng: np.random.Generator,
    ) -> None:
        """Add the labelled pixels of a strip (labels ``IGNORE_INDEX`` are left out).

        Args:
            probabilities: ``(K, h, W)`` class probabilities.
            labels: ``(h, W)`` target class ids or ``IGNORE_INDEX``.
            rng: Random generator of the subsample.
        """
        k, fine = self.num_classes, FINE_BINS
        valid = labels != IGNORE_INDEX
        p = probabilities[:, valid].astype(np.float64)
        y = labels[valid]
        if y.size == 0:
            return
        pred = p.argmax(axis=0)
        conf = raw_confidence(p, axis=0).astype(np.float64)
        idx = pred * fine + bin_index(conf, fine)
        right = pred == y
        self.count += np.bincount(idx, minlength=k * fine).reshape(k, fine)
        self.correct += np.bincount(idx[right], minlength=k * fine).reshape(k, fine)
        self.confidence_sum += np.bincount(idx, weights=conf, minlength=k * fine).reshape(k, fine)
        rest = np.clip(1.0 - p[pred, np.arange(pred.size)], 1e-12, None)
        for c in range(k):
            q = np.where(pred == c, 0.0, p[c] / rest) if k > 2 else (pred != c).astype(np.float64)
            self.other_sum[:, c] += np.bincount(idx, weights=q, minlength=k * fine).reshape(k, fine)
        self.confusion += np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
        self._sample(np.log(np.clip(p.T, 1e-30, 1.0)).astype(np.float32), y, rng)

    def _sample(
        self, log_p: npt.NDArray[np.float32], y: npt.NDArray[np.int64], rng: np.random.Generator
    ) -> None:
        keys = np.concatenate([self.keys, rng.random(y.size)])
        log_probs = np.concatenate([self.log_probs, log_p])
        labels = np.concatenate([self.labels, y])
        if keys.size > SAMPLE_PIXELS:
            keep = np.argpartition(keys, SAMPLE_PIXELS)[:SAMPLE_PIXELS]
            keys, log_probs, labels = keys[keep], log_probs[keep], labels[keep]
        self.keys, self.log_probs, self.labels = keys, log_probs, labels

    @property
    def total(self) -> int:
        """Labelled pixels."""
        return int(self.count.sum())

    def histogram(self) -> ConfidenceHistogram:
        """The fine raw-confidence histogram over all predicted classes."""
        return ConfidenceHistogram(
            FINE_BINS, self.count.sum(0), self.correct.sum(0), self.confidence_sum.sum(0)
        )

    def actual_iou(self) -> npt.NDArray[np.float64]:
        """IoU per class against the labels (NaN where a class is neither predicted nor present)."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def estimated_iou(
        self, calibrator: Calibrator, correction: IoUCorrection | None = None
    ) -> npt.NDArray[np.float64]:
        """IoU per class estimated without the labels (:mod:`glaciermap.calibration.iou_estimate`).

        Every fine bin's pixels are taken at the bin's mean raw confidence; for temperature scaling of more
        than two classes the estimate comes from the subsample.

        Args:
            calibrator: Maps raw to calibrated confidence.
            correction: Optional fitted correction.
        """
        if _needs_sample(calibrator):
            return _sample_iou(self, calibrator, correction)
        m = self.count > 0
        r = np.zeros(self.count.shape)
        r[m] = np.asarray(calibrator(self.confidence_sum[m] / self.count[m]), np.float64)
        tp = (r * self.count).sum(1)
        fn = ((1.0 - r)[:, None, :] * self.other_sum).sum(axis=(0, 2))
        denom = self.count.sum(1) + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            est = np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)
        return est if correction is None else correction(est)

    def actual_group_iou(self, group: Sequence[int]) -> float:
        """IoU of a group of classes merged into one (e.g. ``(1, 2)``: glacier = clean + debris-covered ice)."""
        g = np.zeros(self.num_classes, bool)
        g[list(group)] = True
        tp = float(self.confusion[np.ix_(g, g)].sum())
        union = float(self.confusion[g].sum() + self.confusion[:, g].sum()) - tp
        return tp / union if union > 0 else float("nan")

    def estimated_group_iou(
        self, calibrator: Calibrator, group: Sequence[int], correction: IoUCorrection | None = None
    ) -> float:
        """IoU of a merged group of classes estimated without labels.

        A pixel predicted ``j`` in the group is right for the group with probability ``r + (1 - r) *
        sum_{k in group, k != j} q_k``; a pixel predicted outside is a missed group pixel with probability
        ``(1 - r) * sum_{k in group} q_k`` (:mod:`glaciermap.calibration.iou_estimate`). Not available for
        temperature scaling of more than two classes (NaN).
        """
        if _needs_sample(calibrator):
            return float("nan")
        g = np.zeros(self.num_classes, bool)
        g[list(group)] = True
        m = self.count > 0
        r = np.zeros(self.count.shape)
        r[m] = np.asarray(calibrator(self.confidence_sum[m] / self.count[m]), np.float64)
        inside = self.other_sum[:, g].sum(axis=1)  # (K, FINE): q summed over the group (own class: q = 0)
        tp = float((r * self.count + (1.0 - r) * inside)[g].sum())
        fn = float(((1.0 - r) * inside)[~g].sum())
        denom = float(self.count[g].sum()) + fn
        est = tp / denom if denom > 0 else float("nan")
        return est if correction is None else float(correction(est))

    def merge(self, other: SceneCalibrationData) -> SceneCalibrationData:
        """Sums of two scenes (a new object; the subsamples are concatenated)."""
        out = SceneCalibrationData(f"{self.scene}+{other.scene}", self.num_classes)
        for name in ("count", "correct", "confidence_sum", "other_sum", "confusion"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.log_probs = np.concatenate([self.log_probs, other.log_probs])
        out.labels = np.concatenate([self.labels, other.labels])
        out.keys = np.concatenate([self.keys, other.keys])
        return out


def _needs_sample(calibrator: Calibrator) -> bool:
    return isinstance(calibrator, TemperatureCalibrator) and calibrator.num_classes > 2


def _sample_confidence(data: SceneCalibrationData, calibrator: Calibrator) -> npt.NDArray[np.float64]:
    probs = np.exp(data.log_probs.astype(np.float64))
    return np.asarray(calibrator.apply_to_probabilities(probs, axis=1), np.float64)


def _sample_iou(
    data: SceneCalibrationData, calibrator: Calibrator, correction: IoUCorrection | None
) -> npt.NDArray[np.float64]:
    from glaciermap.calibration.iou_estimate import estimate_iou

    probs = np.exp(data.log_probs.astype(np.float64))
    return estimate_iou(probs, _sample_confidence(data, calibrator), axis=1, correction=correction)


def scene_labels(labels: npt.NDArray[Any], num_classes: int, source: str) -> npt.NDArray[np.int64]:
    """Raw label values (0, 1, 2, 255) as the model's target: binary models see 1 and 2 as glacier.

    Raises:
        InputError: If a label value is not a class of the model (or 255).
    """
    y = labels.astype(np.int64)
    if num_classes == 2:
        y = np.where((y == 1) | (y == 2), 1, y)
    bad = (y != IGNORE_INDEX) & ((y < 0) | (y >= num_classes))
    if bad.any():
        raise InputError(
            f"{source}: label value {int(y[bad][0])} for a model with {num_classes} classes; expected 0.."
            f"{num_classes - 1} or {IGNORE_INDEX}"
        )
    return y


def collect_scene(
    predictor: ScenePredictor, scene_dir: str | os.PathLike[str], seed: int = 0
) -> SceneCalibrationData:
    """Map one labelled scene and stream its predictions and labels into :class:`SceneCalibrationData`.

    Args:
        predictor: The configured predictor (model, windows, TTA, MC dropout).
        scene_dir: A scene folder with ``labels.tif``.
        seed: Seed of the subsample.

    Returns:
        The scene's sums.

    Raises:
        InputError: If the scene has no ``labels.tif``, no labelled valid pixel, or is unreadable.
    """
    folder = Path(scene_dir)
    label_path = folder / SCENE_FILES["labels"]
    if not label_path.is_file():
        raise InputError(
            f"scene {folder} has no {label_path.name}; expected labelled scenes to calibrate on (0 background, "
            "1 clean ice, 2 debris-covered ice, 255 nodata)"
        )
    k = predictor.mapping.num_classes
    data = SceneCalibrationData(folder.name, k)
    rng = np.random.default_rng(seed)
    stream = predictor.stream(folder)
    try:
        with open_raster(label_path, "labels") as src:
            for strip in stream:
                data.update(strip.probabilities, _strip_labels(src, strip, k, label_path), rng)
    finally:
        stream.close()
    if data.total == 0:
        raise InputError(f"scene {folder}: no labelled valid pixel; expected some labels other than 255")
    return data


def _strip_labels(src: Any, strip: Strip, k: int, path: Path) -> npt.NDArray[np.int64]:
    from rasterio.windows import Window

    h, w = strip.invalid.shape
    raw = src.read(1, window=Window(0, strip.row, w, h))
    y = scene_labels(raw, k, str(path))
    y[strip.invalid] = IGNORE_INDEX
    return y


def fit_calibrator(
    data: SceneCalibrationData, method: CalibrationMethod, class_names: Sequence[str]
) -> Calibrator:
    """Fit a calibrator on merged calibration data.

    Args:
        data: Sums of the calibration scenes.
        method: ``"krr"`` (kernel ridge on 100 bins, as the authors), ``"temperature"`` or ``"isotonic"``.
        class_names: The model's classes.

    Returns:
        The calibrator (without IoU correction).

    Raises:
        ConfigError: On an unknown method.
    """
    k = data.num_classes
    if method == "krr":
        return fit_kernel_ridge(data.histogram().rebin(DEFAULT_BINS), num_classes=k, class_names=class_names)
    if method == "isotonic":
        return fit_isotonic(data.histogram().rebin(DEFAULT_BINS), num_classes=k, class_names=class_names)
    if method == "temperature":
        return TemperatureCalibrator.fit(data.log_probs, data.labels, class_names=class_names)
    raise ConfigError(f"method is {method!r}; expected one of {', '.join(METHODS)}")


def evaluate_calibrator(
    data: SceneCalibrationData, calibrator: Calibrator | None, n_bins: int = DEFAULT_BINS
) -> float:
    """ECE (GlaViTU paper Eq. 5, ``n_bins`` bins) of raw (``None``) or calibrated confidence on the data."""
    if calibrator is None:
        return data.histogram().rebin(n_bins).expected_calibration_error()
    if _needs_sample(calibrator):
        conf = _sample_confidence(data, calibrator)
        right = np.exp(data.log_probs).argmax(axis=1) == data.labels
        return ConfidenceHistogram.from_arrays(conf, right, n_bins).expected_calibration_error()
    return data.histogram().calibrated(calibrator, n_bins).expected_calibration_error()


@dataclass
class CalibrationReport:
    """What :func:`calibrate_model` measured.

    Attributes:
        method: The calibration method.
        calibrator: The fitted calibrator, with its IoU correction.
        ece: ``{"calibration" | "heldout": {"before": ECE, "after": ECE}}`` (ECE_100, Eq. 5).
        scenes: Per scene: ``{"scene", "set", "pixels", "actual_iou", "estimated_iou"}`` (lists per class;
            the estimate includes the correction).
        out: The written weights, or ``None``.
    """

    method: str
    calibrator: Calibrator
    ece: dict[str, dict[str, float]]
    scenes: list[dict[str, Any]]
    out: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "method": self.method,
            "calibrator": self.calibrator.to_dict(),
            "ece": self.ece,
            "scenes": self.scenes,
            "out": None if self.out is None else str(self.out),
        }


def _foreground_pairs(
    data: Sequence[SceneCalibrationData], calibrator: Calibrator
) -> tuple[list[float], list[float]]:
    est: list[float] = []
    act: list[float] = []
    for d in data:
        e, a = d.estimated_iou(calibrator), d.actual_iou()
        est.extend(float(v) for v in e[1:])
        act.extend(float(v) for v in a[1:])
    return est, act


def _scene_rows(
    data: Sequence[SceneCalibrationData], which: str, calibrator: Calibrator
) -> list[dict[str, Any]]:
    return [
        {
            "scene": d.scene,
            "set": which,
            "pixels": d.total,
            "ece_before": evaluate_calibrator(d, None),
            "ece_after": evaluate_calibrator(d, calibrator),
            "actual_iou": [_num(v) for v in d.actual_iou()],
            "estimated_iou": [_num(v) for v in d.estimated_iou(calibrator, calibrator.iou_correction)],
            **_glacier(d, calibrator),
        }
        for d in data
    ]


def _glacier(d: SceneCalibrationData, calibrator: Calibrator) -> dict[str, float | None]:
    """Glacier (clean + debris-covered ice) IoU of three-class models, actual and estimated (corrected)."""
    if d.num_classes != 3:
        return {}
    return {
        "actual_iou_glacier": _num(d.actual_group_iou((1, 2))),
        "estimated_iou_glacier": _num(d.estimated_group_iou(calibrator, (1, 2), calibrator.iou_correction)),
    }


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 6)


def _merged(data: Sequence[SceneCalibrationData]) -> SceneCalibrationData:
    out = data[0]
    for d in data[1:]:
        out = out.merge(d)
    return out


def calibrate_model(
    mapping: PretrainedModel,
    predictor: ScenePredictor,
    scenes: Sequence[str | os.PathLike[str]],
    method: CalibrationMethod,
    heldout: Sequence[str | os.PathLike[str]] = (),
) -> CalibrationReport:
    """Fit a calibrator and an IoU correction on labelled scenes, and measure ECE before and after.

    Args:
        mapping: The model (its classes are stored with the calibrator).
        predictor: How the scenes are mapped (as ``glaciermap map``).
        scenes: Calibration scenes (with ``labels.tif``).
        method: Calibration method.
        heldout: Held-out labelled scenes, only measured.

    Returns:
        The report; the calibrator carries the fitted :class:`~glaciermap.calibration.IoUCorrection`.

    Raises:
        InputError: If a scene is unusable.
        ConfigError: On an unknown method or no calibration scene.
    """
    if method not in METHODS:
        raise ConfigError(f"method is {method!r}; expected one of {', '.join(METHODS)}")
    if not scenes:
        raise ConfigError("no calibration scene; expected at least one labelled scene folder")
    cal = [collect_scene(predictor, s, seed=i) for i, s in enumerate(scenes)]
    held = [collect_scene(predictor, s, seed=1000 + i) for i, s in enumerate(heldout)]
    return calibrate_from_data(cal, held, method, mapping.class_names)


def calibrate_from_data(
    cal: Sequence[SceneCalibrationData],
    held: Sequence[SceneCalibrationData],
    method: CalibrationMethod,
    class_names: Sequence[str],
) -> CalibrationReport:
    """Fit and measure from collected scene data (:func:`calibrate_model` without the mapping).

    Several methods can be compared on the same mapped scenes this way.

    Args:
        cal: Calibration scenes' data.
        held: Held-out scenes' data.
        method: Calibration method.
        class_names: The model's classes.

    Returns:
        The report.

    Raises:
        ConfigError: On an unknown method or no calibration data.
    """
    if not cal:
        raise ConfigError("no calibration scene; expected at least one labelled scene folder")
    merged = _merged(cal)
    calibrator = fit_calibrator(merged, method, class_names)
    est, act = _foreground_pairs(cal, calibrator)
    try:
        with (
            warnings.catch_warnings()
        ):  # near-constant estimates (few scenes): the line is still the best fit
            warnings.simplefilter("ignore", np.exceptions.RankWarning)
            line = fit_iou_correction(est, act)
        calibrator.iou_correction = IoUCorrection(line.intercept, line.slope, len(cal))
    except InputError:
        calibrator.iou_correction = None  # no foreground class predicted or present anywhere
    ece = {
        "calibration": {
            "before": evaluate_calibrator(merged, None),
            "after": evaluate_calibrator(merged, calibrator),
        }
    }
    if held:
        m = _merged(held)
        ece["heldout"] = {"before": evaluate_calibrator(m, None), "after": evaluate_calibrator(m, calibrator)}
    rows = _scene_rows(cal, "calibration", calibrator) + _scene_rows(held, "heldout", calibrator)
    return CalibrationReport(method, calibrator, ece, rows)


def write_calibrated_weights(
    mapping: PretrainedModel,
    calibrator: Calibrator,
    out: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the model's weights with the calibrator in their metadata as a ``.safetensors`` file.

    The layout is that of :func:`glaciermap.models.hub.export_weights` (tensors, plus metadata
    ``{"format": ..., "glaciermap": <JSON>}``); the tensors are the model's own, unchanged.

    Args:
        mapping: A model loaded from a checkpoint or weights (its ``metadata`` is kept).
        calibrator: The calibrator to store as ``metadata["calibrator"]``.
        out: The ``.safetensors`` file (written atomically).
        extra: More metadata entries (e.g. ``"calibration"``: how it was fitted).

    Returns:
        The written path.

    Raises:
        ConfigError: If ``out`` does not end in ``.safetensors`` or the model has no metadata.
    """
    from safetensors.torch import save_file

    from glaciermap.models.hub import WEIGHTS_FORMAT

    path = Path(out)
    if path.suffix != ".safetensors":
        raise ConfigError(f"--out {path}: expected a .safetensors file for the calibrated weights")
    if not mapping.metadata:
        raise ConfigError(
            "the model has no checkpoint metadata; expected one loaded from a checkpoint or weights"
        )
    meta = dict(mapping.metadata)
    meta.setdefault("epoch", mapping.info.get("epoch"))
    meta.setdefault("global_step", mapping.info.get("global_step"))
    meta["calibrator"] = calibrator.to_dict()
    meta.update(extra or {})
    state = {k: v.detach().cpu().contiguous() for k, v in mapping.model.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata={"glaciermap": json.dumps(meta), "format": WEIGHTS_FORMAT})
    return path
