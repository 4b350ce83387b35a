"""Non-finite input never reaches the network, is nodata in every output and is counted in the summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio

from glaciermap import cli
from tests.data.scenes import write_scene


def _reject_constant(name: str) -> None:
    raise AssertionError(f"summary.json holds {name}, which is not JSON")


def test_infinite_pixels_are_nodata_and_counted(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "scene", size=(512, 512), modalities=("optical",), labels=False)
    with rasterio.open(scene / "optical.tif", "r+") as dst:
        data = dst.read()
        data[:, :, :256] = np.array([0.1, 0.12, 0.14, 0.2, 0.25, 0.2], np.float32)[:, None, None]  # rock half
        data[:, :, 256:] = np.array([0.6, 0.55, 0.5, 0.4, 0.05, 0.04], np.float32)[:, None, None]  # ice half
        data[3, 100:102, 300:302] = np.inf  # a 2 x 2 block of +inf in the nir band
        dst.write(data)
    out = tmp_path / "out"
    args = ["map", "--model", "band-ratio", "--scene", str(scene), "--out", str(out), "--quiet"]
    assert cli.main([*args, "--window-size", "128"]) == 0
    summary = json.loads((out / "summary.json").read_text(), parse_constant=_reject_constant)
    assert summary["infinite_pixels"] == 4
    assert 0.4 < summary["glacier_area_km2"] / summary["scene_area_km2"] < 0.6  # not all background
    with rasterio.open(out / "classes.tif") as src:
        classes = src.read(1)
    with rasterio.open(out / "confidence.tif") as src:
        confidence, nodata = src.read(1), src.nodata
    assert (classes[100:102, 300:302] == 255).all() and (classes[:, 300:] == 255).sum() == 4
    assert np.isfinite(confidence).all()  # nodata is a number, never NaN
    assert (confidence[100:102, 300:302] == nodata).all()
    assert np.allclose(confidence[:, :256], 1.0, atol=1e-4) and summary["mean_confidence"] > 0.99
