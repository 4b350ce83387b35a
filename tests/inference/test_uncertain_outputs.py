"""Map outputs of calibrated models: ``uncertain.tif`` and the confidence figures of ``summary.json``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch
from torch import Tensor

from glaciermap.calibration import IoUCorrection, IsotonicCalibrator, TemperatureCalibrator, estimate_iou
from glaciermap.errors import ConfigError
from glaciermap.inference.mapping import map_scene
from glaciermap.inference.options import MapOptions, add_arguments, from_arguments
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.pretrained import PretrainedModel
from tests.data.checkpoints import PointwiseModel, scene_stats
from tests.data.scenes import write_scene

FAST = {"device": "cpu", "quicklook": False, "progress": False, "window_size": 32}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40 x 50 scene with a -9999 box in optical."""
    return write_scene(
        tmp_path_factory.mktemp("unc") / "s",
        size=(40, 50),
        modalities=("optical", "dem"),
        labels=False,
        nodata_box=(5, 12, 30, 45),
    )


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1) if src.count == 1 else src.read()


def _calibrator() -> IsotonicCalibrator:
    """Calibrated = 0.5 + confidence / 2 (so some pixels are below 0.8 and some above)."""
    cal = IsotonicCalibrator(np.array([0.0, 1.0]), np.array([0.5, 1.0]), num_classes=2)
    cal.iou_correction = IoUCorrection(0.1, 0.8, 3)
    return cal


def test_uncertain_mask_histograms_and_estimated_iou(scene: Path, tmp_path: Path) -> None:
    """uncertain.tif is calibrated < threshold; summary histograms and estimated IoU match the rasters."""
    mapping = PretrainedModel.from_model(PointwiseModel(seed=1), scene_stats(scene), calibrator=_calibrator())
    result = map_scene(mapping, scene, tmp_path, uncertain_below=0.8, write_probabilities=True, **FAST)  # type: ignore[arg-type]
    unc, cal = _read(tmp_path / "uncertain.tif"), _read(tmp_path / "calibrated_confidence.tif")
    raw, probs = _read(tmp_path / "confidence.tif"), _read(tmp_path / "probabilities.tif")
    invalid = unc == 255
    assert invalid.sum() == 7 * 15 and invalid[5:12, 30:45].all()
    valid = ~invalid
    np.testing.assert_array_equal(unc[valid], (cal[valid] < 0.8).astype(np.uint8))
    assert 0 < unc[valid].sum() < valid.sum()  # a real mix
    s = result.summary
    assert s["uncertain_below"] == 0.8 and "uncertain.tif" in s["outputs"]
    assert s["uncertain_fraction"] == pytest.approx(unc[valid].mean(), abs=1e-6)
    hist = s["confidence_histogram"]
    assert len(hist["edges"]) == 11 and hist["edges"][0] == 0.0 and hist["edges"][-1] == 1.0
    expected_raw = np.bincount(np.clip((raw[valid] * 10).astype(int), 0, 9), minlength=10)
    expected_cal = np.bincount(np.clip((cal[valid] * 10).astype(int), 0, 9), minlength=10)
    assert hist["raw"] == expected_raw.tolist() and hist["calibrated"] == expected_cal.tolist()
    assert sum(hist["calibrated"][:5]) == 0  # calibrated >= 0.5 everywhere
    assert s["mean_calibrated_confidence"] == pytest.approx(0.5 + s["mean_confidence"] / 2, abs=1e-5)
    est = estimate_iou(probs, cal, valid, correction=IoUCorrection(0.1, 0.8, 3))
    assert s["estimated_iou_corrected"] is True
    assert [s["estimated_iou"][n] for n in ("background", "glacier")] == pytest.approx(est.tolist(), abs=1e-5)


def test_without_calibrator_uses_raw_confidence(scene: Path, tmp_path: Path) -> None:
    """No calibrator: uncertain.tif thresholds the raw confidence; no calibrated figures or IoU estimate."""
    mapping = PretrainedModel.from_model(PointwiseModel(seed=1), scene_stats(scene))
    result = map_scene(mapping, scene, tmp_path, uncertain_below=0.5, **FAST)  # type: ignore[arg-type]
    unc, raw = _read(tmp_path / "uncertain.tif"), _read(tmp_path / "confidence.tif")
    valid = unc != 255
    np.testing.assert_array_equal(unc[valid], (raw[valid] < 0.5).astype(np.uint8))
    s = result.summary
    assert s["confidence_histogram"]["calibrated"] is None and s["estimated_iou"] is None
    assert sum(s["confidence_histogram"]["raw"]) == int(valid.sum())


def test_no_uncertain_output_by_default(scene: Path, tmp_path: Path) -> None:
    """Without the option there is no uncertain.tif and the fraction is null."""
    mapping = PretrainedModel.from_model(PointwiseModel(seed=1), scene_stats(scene))
    result = map_scene(mapping, scene, tmp_path, **FAST)  # type: ignore[arg-type]
    assert not (tmp_path / "uncertain.tif").exists()
    assert result.summary["uncertain_fraction"] is None and result.summary["uncertain_below"] is None


def test_temperature_of_three_classes_is_applied_to_probabilities(scene: Path, tmp_path: Path) -> None:
    """A 3-class temperature calibrator gives max softmax(log p / T), not an error."""
    cal = TemperatureCalibrator(2.0, num_classes=3)
    mapping = PretrainedModel.from_model(PointwiseModel(num_classes=3), scene_stats(scene), calibrator=cal)
    map_scene(mapping, scene, tmp_path, write_probabilities=True, **FAST)  # type: ignore[arg-type]
    probs, out = _read(tmp_path / "probabilities.tif"), _read(tmp_path / "calibrated_confidence.tif")
    valid = out != -9999
    expected = cal.apply_to_probabilities(probs[:, valid], axis=0)
    np.testing.assert_allclose(out[valid], expected, atol=1e-6)


def test_option_is_validated_and_on_the_command_line() -> None:
    """uncertain_below must lie in (0, 1]; --uncertain-below sets it."""
    for bad in (0.0, 1.5, True):
        with pytest.raises(ConfigError, match="uncertain_below"):
            MapOptions(uncertain_below=bad).validate()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_arguments(parser.parse_args(["--uncertain-below", "0.95"])).uncertain_below == 0.95
    assert from_arguments(parser.parse_args([])).summary()["uncertain_below"] is None


def test_three_class_summary_estimates_glacier_iou(scene: Path, tmp_path: Path) -> None:
    """Three classes: estimated IoU per class and of glacier (clean + debris), from the rasters by hand."""
    cal = IsotonicCalibrator(np.array([0.0, 1.0]), np.array([0.4, 0.9]), num_classes=3)
    mapping = PretrainedModel.from_model(
        PointwiseModel(num_classes=3, seed=2), scene_stats(scene), calibrator=cal
    )
    result = map_scene(mapping, scene, tmp_path, write_probabilities=True, **FAST)  # type: ignore[arg-type]
    probs, r = _read(tmp_path / "probabilities.tif"), _read(tmp_path / "calibrated_confidence.tif")
    valid = r != -9999
    p, r = probs[:, valid].astype(np.float64), r[valid].astype(np.float64)
    pred = p.argmax(0)
    other = np.where(pred == 1, p[2], p[1]) / (1 - p.max(0))
    g = pred > 0
    expected = (r[g] + (1 - r[g]) * other[g]).sum() / (g.sum() + (1 - r[~g]).sum())
    est = result.summary["estimated_iou"]
    assert set(est) == {"background", "clean_ice", "debris_ice", "glacier"}
    assert est["glacier"] == pytest.approx(expected, abs=1e-5)
    assert est["clean_ice"] == pytest.approx(estimate_iou(p, r)[1], abs=1e-5)
    assert result.summary["estimated_iou_corrected"] is False


class BandModel(SegmentationModel):
    """``logits = (0, 20 x)`` of the raw first optical band x: x = 0 gives p = (0.5, 0.5), confidence 0."""

    arch: ClassVar[str] = "band_test"

    def __init__(self) -> None:
        super().__init__({"optical": 6, "dem": 2}, 2)

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        x = self.stack_inputs(inputs)[:, :1]
        return {"out": torch.cat([torch.zeros_like(x), 20.0 * x], dim=1)}


UNCERTAIN_REGIONS = {  # (rows, cols) of the uncertain pixels of each region, in reading order
    "u": [(r, 2) for r in range(3, 31)] + [(r, 6) for r in range(3, 31)] + [(30, c) for c in range(3, 6)],
    "below_nodata": [(r, c) for r in range(12, 15) for c in range(32, 36)],
    "ring": [(r, c) for r in range(20, 25) for c in range(20, 25) if not (21 <= r <= 23 and 21 <= c <= 23)],
    "block": [(r, c) for r in range(35, 39) for c in range(40, 49)],
}


def test_uncertain_polygons_of_a_known_pattern(tmp_path: Path) -> None:
    """uncertain.gpkg: one polygon per uncertain region (across window rows), its area and mean confidence."""
    scene = write_scene(
        tmp_path / "s", size=(40, 50), modalities=("optical", "dem"), labels=False, nodata_box=(5, 12, 30, 45)
    )
    with rasterio.open(scene / "optical.tif", "r+") as dst:
        band = np.ones((40, 50), dtype=np.float32)
        for pixels in UNCERTAIN_REGIONS.values():
            for r, c in pixels:
                band[r, c] = 0.0
        band[5:12, 30:45] = -9999.0
        dst.write(band.astype(dst.dtypes[0]), 1)
    mapping = PretrainedModel.from_model(BandModel(), None, calibrator=_calibrator())
    out = tmp_path / "out"
    result = map_scene(mapping, scene, out, uncertain_below=0.8, **FAST)  # type: ignore[arg-type]
    frame = gpd.read_file(out / "uncertain.gpkg", layer="uncertain")
    assert list(frame.columns) == ["region_id", "pixels", "area_km2", "mean_confidence", "geometry"]
    assert frame.crs.to_epsg() == 32643 and len(frame) == 4
    for (_, row), pixels in zip(frame.iterrows(), UNCERTAIN_REGIONS.values(), strict=True):
        assert row["pixels"] == len(pixels)
        assert row["area_km2"] == pytest.approx(len(pixels) * 100 / 1e6, rel=1e-9)  # 10 m pixels
        assert row["geometry"].area == pytest.approx(len(pixels) * 100, rel=1e-9)  # m2 in the scene CRS
        assert row["mean_confidence"] == pytest.approx(0.5, abs=1e-4)  # calibrated 0.5 + conf / 2, conf 0
    ring = frame.geometry.iloc[2]
    assert len(ring.interiors) == 1 and shapely.Polygon(ring.interiors[0]).area == pytest.approx(900)
    left, top = 500000.0, 4000000.0
    assert frame.geometry.iloc[3].bounds == pytest.approx((left + 400, top - 390, left + 490, top - 350))
    s = result.summary
    assert "uncertain.gpkg" in s["outputs"] and result.files["uncertain_polygons"] == out / "uncertain.gpkg"
    assert s["uncertain_regions"] == 4
    assert s["uncertain_area_km2"] == pytest.approx(sum(map(len, UNCERTAIN_REGIONS.values())) * 1e-4)
    assert not list(out.glob(".*partial*"))
    map_scene(mapping, scene, out, **FAST)  # type: ignore[arg-type]
    assert not (out / "uncertain.gpkg").exists()  # an earlier run's layer is not left behind
