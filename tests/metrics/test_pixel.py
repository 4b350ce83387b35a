"""Pixel metrics on hand-computed cases, against torchmetrics, and streamed over rasters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from torchmetrics.classification import MulticlassJaccardIndex

from glaciermap import raster as raster_module
from glaciermap.errors import InputError
from glaciermap.metrics import ConfusionMatrix, PixelMetrics, pixel_metrics, pixel_metrics_from_rasters

# Reference (rows) and prediction with one ignored reference pixel and one pixel without prediction.
REF = np.array([[0, 0, 1, 1], [0, 2, 2, 1], [255, 2, 0, 1]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 1], [0, 2, 1, 255], [1, 2, 0, 0]], dtype=np.uint8)
# Valid pixels (ref != 255 and pred != 255), as (ref, pred):
# (0,0) (0,1) (1,1) (1,1) | (0,0) (2,2) (2,1) [ignored: pred 255] | [ignored: ref 255] (2,2) (0,0) (1,0)
# confusion rows=ref: ref0 -> pred0 x3, pred1 x1; ref1 -> pred1 x2, pred0 x1; ref2 -> pred2 x2, pred1 x1.
CONFUSION = np.array([[3, 1, 0], [1, 2, 0], [0, 1, 2]])


def test_confusion_and_metrics_hand_computed() -> None:
    m = pixel_metrics(PRED, REF)
    np.testing.assert_array_equal(m.confusion, CONFUSION)
    assert m.class_names == ("background", "clean_ice", "debris_ice")
    # IoU = TP / (TP + FP + FN) (GlaViTU Eq. 6): bg 3/(3+1+1), clean 2/(2+2+1), debris 2/(2+0+1).
    np.testing.assert_allclose(m.iou, [3 / 5, 2 / 5, 2 / 3])
    np.testing.assert_allclose(m.precision, [3 / 4, 2 / 4, 2 / 2])
    np.testing.assert_allclose(m.recall, [3 / 4, 2 / 3, 2 / 3])
    np.testing.assert_allclose(m.f1, [6 / 8, 4 / 7, 4 / 5])
    assert m.overall_accuracy == pytest.approx(7 / 10)
    assert m.mean_iou == pytest.approx((3 / 5 + 2 / 5 + 2 / 3) / 3)
    assert m.n_pixels == 10


def test_glacier_merges_ice_classes() -> None:
    g = pixel_metrics(PRED, REF).glacier()
    # glacier = classes 1 and 2: ref glacier pixels 6, of which predicted glacier 5; bg predicted glacier 1.
    np.testing.assert_array_equal(g.confusion, [[3, 1], [1, 5]])
    assert g.class_names == ("background", "glacier")
    assert g.iou[1] == pytest.approx(5 / 7)
    assert g.f1[1] == pytest.approx(10 / 12)
    assert g.overall_accuracy == pytest.approx(8 / 10)


def test_rows_for_tables() -> None:
    rows = pixel_metrics(PRED, REF).rows()
    assert [r["class"] for r in rows] == ["background", "clean_ice", "debris_ice"]
    assert rows[1] == {
        "class": "clean_ice",
        "iou": pytest.approx(0.4),
        "precision": 0.5,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(4 / 7),
        "tp": 2,
        "fp": 2,
        "fn": 1,
        "n_ref": 3,
        "n_pred": 4,
    }


def test_empty_prediction_and_empty_reference() -> None:
    ref = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    none = np.zeros_like(ref)
    empty_pred = pixel_metrics(none, ref, num_classes=2)
    assert empty_pred.iou[1] == 0.0
    assert math.isnan(empty_pred.precision[1])  # nothing predicted: 0 / 0
    assert empty_pred.recall[1] == 0.0
    assert empty_pred.f1[1] == 0.0
    empty_ref = pixel_metrics(ref, none, num_classes=2)
    assert empty_ref.iou[1] == 0.0
    assert empty_ref.precision[1] == 0.0
    assert math.isnan(empty_ref.recall[1])
    both = pixel_metrics(none, none, num_classes=2)
    assert math.isnan(both.iou[1]) and both.iou[0] == 1.0
    assert both.mean_iou == 1.0  # the undefined glacier IoU is left out of the mean
    nothing = pixel_metrics(np.full((2, 2), 255, np.uint8), ref, num_classes=2)
    assert nothing.n_pixels == 0 and math.isnan(nothing.overall_accuracy) and math.isnan(nothing.mean_iou)


def test_matches_torchmetrics_and_from_torchmetrics() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 3, (64, 64)).astype(np.uint8)
    ref[rng.random((64, 64)) < 0.1] = 255
    pred = np.where(rng.random((64, 64)) < 0.7, ref, rng.integers(0, 3, (64, 64))).astype(np.uint8)
    pred[ref == 255] = rng.integers(0, 3, int((ref == 255).sum()))
    ours = pixel_metrics(pred, ref, num_classes=3)
    tm = MulticlassJaccardIndex(3, average=None, ignore_index=255)
    expected = tm(torch.from_numpy(pred).long(), torch.from_numpy(ref).long()).numpy()
    np.testing.assert_allclose(ours.iou, expected, rtol=1e-6)
    wrapped = ConfusionMatrix.from_torchmetrics(tm).compute()
    np.testing.assert_array_equal(wrapped.confusion, ours.confusion)


def test_streaming_equals_whole() -> None:
    acc = ConfusionMatrix(3)
    for rows in (slice(0, 1), slice(1, 3)):
        acc.update(PRED[rows], REF[rows])
    np.testing.assert_array_equal(acc.counts, CONFUSION)
    other = ConfusionMatrix(3)
    other.update(PRED, REF)
    acc.merge(other)
    np.testing.assert_array_equal(acc.compute().confusion, 2 * CONFUSION)


def test_bad_input_errors() -> None:
    with pytest.raises(InputError, match=r"class ids must be 0\.\.2 or 255.*\[7\]"):
        pixel_metrics(np.array([0, 7]), np.array([0, 1]), num_classes=3)
    with pytest.raises(InputError, match="shape"):
        pixel_metrics(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(InputError, match="integer class ids"):
        pixel_metrics(np.zeros(3, np.float32), np.zeros(3, np.uint8), num_classes=2)
    with pytest.raises(InputError, match="square"):
        PixelMetrics.from_confusion(np.zeros((2, 3)))


UTM_GRID = Affine(10, 0, 500000, 0, -10, 4000000)


def _write(path: Path, arr: np.ndarray, transform: Affine = UTM_GRID) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1, dtype=arr.dtype,
        crs="EPSG:32643", transform=transform, nodata=255,
    ) as dst:  # fmt: skip
        dst.write(arr, 1)
    return path


def test_from_rasters_streams_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    ref = rng.choice(np.array([0, 1, 2, 255], np.uint8), (37, 23))
    pred = rng.choice(np.array([0, 1, 2], np.uint8), (37, 23))
    monkeypatch.setattr(raster_module, "STRIP_PIXELS", 23 * 5)  # 8 strips of 5 rows
    assert len(raster_module.row_windows(37, 23)) == 8
    m = pixel_metrics_from_rasters(_write(tmp_path / "p.tif", pred), _write(tmp_path / "r.tif", ref))
    np.testing.assert_array_equal(m.confusion, pixel_metrics(pred, ref, num_classes=3).confusion)


def test_from_rasters_errors(tmp_path: Path) -> None:
    arr = np.zeros((4, 4), np.uint8)
    ref = _write(tmp_path / "r.tif", arr)
    shifted = _write(tmp_path / "s.tif", arr, Affine(10, 0, 500010, 0, -10, 4000000))
    with pytest.raises(InputError, match=r"s\.tif and .*r\.tif have different geotransforms"):
        pixel_metrics_from_rasters(shifted, ref)
    small = _write(tmp_path / "small.tif", np.zeros((3, 4), np.uint8))
    with pytest.raises(InputError, match="3 x 4 pixels"):
        pixel_metrics_from_rasters(small, ref)
    with pytest.raises(InputError, match=r"missing\.tif: file not found"):
        pixel_metrics_from_rasters(tmp_path / "missing.tif", ref)
