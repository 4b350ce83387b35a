"""The band-ratio baseline: the rule, threshold fitting, the model wrapper and scene streaming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from glaciermap.baselines import (
    BandRatio,
    BandRatioFit,
    BandRatioHistogram,
    band_ratio_classes,
    band_ratio_mask,
    fit_band_ratio,
)
from glaciermap.constants import RASTER_NODATA
from glaciermap.errors import InputError
from glaciermap.metrics import pixel_metrics

TRANSFORM = Affine(10, 0, 400000, 0, -10, 8000000)


def reflectance(ratio: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Six bands with the given red / swir1 ratio and blue reflectance."""
    swir1 = np.full(ratio.shape, 0.05, np.float32)
    optical = np.full((6, *ratio.shape), 0.1, np.float32)
    optical[0] = blue
    optical[2] = ratio * swir1
    optical[4] = swir1
    return optical


def dense_scene() -> np.ndarray:
    # Every (ratio, blue) combination on a fine lattice between the candidate thresholds.
    ratio, blue = np.meshgrid(np.arange(0.51, 6.0, 0.02), np.arange(0.001, 0.6, 0.002), indexing="ij")
    return reflectance(ratio.astype(np.float32), blue.astype(np.float32))


def test_mask_hand_computed() -> None:
    optical = reflectance(np.array([[4.0, 4.0, 2.0, 3.2]]), np.array([[0.3, 0.1, 0.3, 0.3]]))
    assert band_ratio_mask(optical).tolist() == [[True, False, False, False]]  # 3.2 is not > 3.2
    assert band_ratio_mask(optical, 1.5, 0.05).tolist() == [[True, True, True, True]]
    optical[4, 0, 0] = 0.0  # red / 0 -> inf: not glacier
    assert not band_ratio_mask(optical)[0, 0]
    with pytest.raises(InputError, match=r"shape \(6, H, W\)"):
        band_ratio_mask(np.zeros((4, 2, 2)))


def test_fit_recovers_the_thresholds_of_a_synthetic_labelling() -> None:
    optical = dense_scene()
    for th1, th2 in [(2.5, 0.3), (3.2, 0.17), (1.35, 0.055)]:
        labels = band_ratio_mask(optical, th1, th2).astype(np.uint8)
        labels[labels == 1] = np.where(np.arange(int(labels.sum())) % 3 == 0, 2, 1)  # some as debris
        fit = fit_band_ratio([(optical, labels)])
        assert (fit.ratio_threshold, fit.blue_threshold) == (th1, th2)
        assert fit.iou == 1.0
        assert fit.n_pixels == labels.size and fit.n_glacier_pixels == int((labels > 0).sum())


def test_histogram_iou_equals_direct_iou() -> None:
    rng = np.random.default_rng(0)
    ratio = rng.uniform(0.5, 8.0, (120, 90)).astype(np.float32)
    blue = rng.uniform(0.0, 0.7, (120, 90)).astype(np.float32)
    optical = reflectance(ratio, blue)
    labels = band_ratio_mask(optical, 2.0, 0.25).astype(np.uint8)
    flip = rng.random(labels.shape) < 0.15
    labels[flip] = 1 - labels[flip]
    labels[:5] = 255  # ignored
    hist = BandRatioHistogram()
    hist.update(optical[:, :60], labels[:60])
    hist.update(optical[:, 60:], labels[60:])
    table = hist.iou_table()
    fit = hist.best()
    assert fit.iou == pytest.approx(np.nanmax(table))
    for i, j in [(0, 0), (40, 50), (hist.ratio_grid.tolist().index(fit.ratio_threshold), 33), (150, 190)]:
        th1, th2 = hist.ratio_grid[i], hist.blue_grid[j]
        direct = pixel_metrics(band_ratio_mask(optical, th1, th2).astype(np.uint8), labels, num_classes=2)
        assert table[i, j] == pytest.approx(direct.iou[1], abs=1e-12)
    best = pixel_metrics(
        band_ratio_mask(optical, fit.ratio_threshold, fit.blue_threshold).astype(np.uint8), labels
    )
    assert best.iou[1] == pytest.approx(fit.iou)
    assert abs(fit.ratio_threshold - 2.0) <= 0.1 and abs(fit.blue_threshold - 0.25) <= 0.02


def write_scene(folder: Path, optical: np.ndarray, labels: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    h, w = labels.shape
    common = {"driver": "GTiff", "height": h, "width": w, "crs": "EPSG:32633", "transform": TRANSFORM}
    with rasterio.open(
        folder / "optical.tif", "w", count=6, dtype="float32", nodata=RASTER_NODATA, **common
    ) as dst:
        dst.write(optical)
    with rasterio.open(folder / "labels.tif", "w", count=1, dtype="uint8", nodata=255, **common) as dst:
        dst.write(labels, 1)
    return folder


def test_fit_streams_scene_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import glaciermap.baselines.band_ratio as br

    monkeypatch.setattr(br, "_STRIP_PIXELS", 1000)  # several strips per scene
    optical = dense_scene()
    labels = band_ratio_mask(optical, 3.0, 0.2).astype(np.uint8)
    half = labels.shape[0] // 2
    nodata_optical = optical[:, half:].copy()
    nodata_optical[:, :3] = RASTER_NODATA  # nodata pixels are left out, whatever their label
    a = write_scene(tmp_path / "a", optical[:, :half], labels[:half])
    b = write_scene(tmp_path / "b", nodata_optical, 1 - labels[half:])  # wrong labels under the nodata rows
    b_labels = labels[half:].copy()
    with rasterio.open(b / "labels.tif", "r+") as dst:
        dst.write(
            np.where(np.arange(b_labels.shape[0])[:, None] < 3, 1 - b_labels, b_labels).astype(np.uint8), 1
        )
    fit = fit_band_ratio([a, b])
    assert (fit.ratio_threshold, fit.blue_threshold, fit.iou) == (3.0, 0.2, 1.0)
    assert fit.n_pixels == labels.size - 3 * labels.shape[1]
    assert fit.scenes == (str(a), str(b))
    classes = band_ratio_classes(b, 3.0, 0.2)
    assert (classes[:3] == 255).all()
    np.testing.assert_array_equal(classes[3:], labels[half + 3 :])


def test_fit_errors(tmp_path: Path) -> None:
    optical = dense_scene()
    with pytest.raises(InputError, match=r"none of the .* labelled pixels is glacier"):
        fit_band_ratio([(optical, np.zeros(optical.shape[1:], np.uint8))])
    with pytest.raises(InputError, match="labels must be 0, 1, 2 or 255"):
        fit_band_ratio([(optical, np.full(optical.shape[1:], 3, np.uint8))])
    with pytest.raises(InputError, match="no labelled pixel"):
        fit_band_ratio([])
    with pytest.raises(InputError, match="strictly increasing"):
        BandRatioHistogram(ratio_grid=[1.0, 1.0])
    with pytest.raises(InputError, match="not found"):
        fit_band_ratio([tmp_path / "missing"])


def test_fit_json_round_trip(tmp_path: Path) -> None:
    fit = BandRatioFit(2.5, 0.3, 0.9, 100, 40, ("a",))
    path = tmp_path / "t.json"
    path.write_text(json.dumps(fit.to_dict()))
    assert BandRatioFit.from_json(path) == fit
    path.write_text("{}")
    with pytest.raises(InputError, match="ratio_threshold"):
        BandRatioFit.from_json(path)


def test_model_wrapper_matches_the_rule(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    optical = reflectance(
        rng.uniform(0.5, 6, (7, 5)).astype(np.float32), rng.uniform(0, 0.5, (7, 5)).astype(np.float32)
    )
    optical[:, 0, 0] = np.nan
    model = BandRatio(2.5, 0.2)
    assert model.num_classes == 2 and model.modalities == {"optical": 6} and model.arch == "band_ratio"
    x = torch.from_numpy(optical)[None]
    dem = torch.zeros(1, 2, 7, 5)
    out = model({"optical": x, "dem": dem})["out"]  # other modalities are ignored; any size works
    assert out.shape == (1, 2, 7, 5) and out.dtype == torch.float32
    expected = band_ratio_mask(optical, 2.5, 0.2)
    np.testing.assert_array_equal(out.argmax(1)[0].numpy(), expected.astype(np.int64))
    proba = model.predict_proba(x)["out"]
    np.testing.assert_allclose(proba[0, 1].numpy(), expected.astype(np.float32), rtol=0, atol=1e-12)
    assert proba[0, 0, 0, 0] == 1.0  # NaN pixel: background
    path = tmp_path / "t.json"
    path.write_text(json.dumps(BandRatioFit(2.5, 0.2, 1.0, 1, 1).to_dict()))
    assert BandRatio.from_fit(path).hparams == {"ratio_threshold": 2.5, "blue_threshold": 0.2}
    with pytest.raises(InputError, match="missing modality optical"):
        model({"dem": dem})
