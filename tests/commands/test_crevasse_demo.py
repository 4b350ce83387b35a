"""``glaciermap demo --crevasses`` and ``classify`` with the bundled VarioNet, offline."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from glaciermap.cli import main
from glaciermap.inference.classify import load_classifier
from glaciermap.models import VarioNet, bundled_weights


def test_bundled_crevasse_weights_load() -> None:
    path = bundled_weights("crevasse_varionet_synthetic")
    assert path.stat().st_size < 5_000_000
    model, meta = load_classifier("crevasse_varionet_synthetic")
    assert isinstance(model, VarioNet) and not model.training
    assert meta["task"] == "split_image_classification" and len(meta["class_names"]) == 11
    assert meta["vario"]["tile_size"] == [201, 268] and meta["input_mode"] == "normalised"


def test_crevasse_demo_scores_the_bundled_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--crevasses", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "crevasses" / "demo.json").read_text())
    tiles = gpd.read_file(tmp_path / "crevasses" / "classified" / "tiles.gpkg")
    truth = pd.read_csv(tmp_path / "crevasses" / "world" / "labels.csv").merge(tiles, on="tile_id")
    assert report["tiles"] == len(tiles) == 120
    assert report["accuracy"] == pytest.approx((truth["label"] == truth["class_name"]).mean())
    assert report["accuracy"] > 1 / 11  # better than chance on an unseen scene
    assert f"accuracy {100 * report['accuracy']:.1f} %" in capsys.readouterr().out
