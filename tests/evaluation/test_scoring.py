"""Evaluation of predictions against reference scenes and outlines (the engine of ``glaciermap evaluate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio.crs

from glaciermap.baselines import BandRatioFit
from glaciermap.errors import ConfigError, InputError
from glaciermap.evaluation.scoring import evaluate, parse_method
from glaciermap.evaluation.sources import BAND_RATIO, glacier_id_outlines, open_source
from glaciermap.evaluation.tables import build_tables
from glaciermap.metrics import pixel_metrics
from glaciermap.raster import RasterGrid
from tests.data.eval_scenes import (
    CRS,
    SIZE,
    TRANSFORM,
    prediction_array,
    reference_arrays,
    write_predictions,
    write_reference,
)

PAPER = BandRatioFit(3.2, 0.17, float("nan"), 0, 0)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    return write_reference(root / "ref"), write_predictions(root / "pred")


def test_scene_results_match_direct_metrics(data: tuple[Path, Path]) -> None:
    ref, pred = data
    ev = evaluate([("model", pred)], ref, band_ratio=PAPER)
    assert [(r.method, r.scene, r.region) for r in ev.results] == [
        ("model", "a", "HMA"),
        (BAND_RATIO, "a", "HMA"),
        ("model", "b", "SVAL"),
        (BAND_RATIO, "b", "SVAL"),
    ]
    by = {(r.method, r.scene): r for r in ev.results}
    for name in ("a", "b"):
        labels, _ = reference_arrays(name)
        direct = pixel_metrics(prediction_array(name), labels, num_classes=3)
        np.testing.assert_array_equal(by["model", name].confusion, direct.confusion)
    a = by["model", "a"]
    glacier = pixel_metrics(prediction_array("a"), reference_arrays("a")[0], num_classes=3).glacier()
    assert glacier.iou[1] == pytest.approx(300 / 560)
    # Per glacier: ids 1 and 2 matched (the clean part is 62.5% of glacier 2), 3 missed, one false positive.
    assert list(a.matching.ref.index) == [1, 2, 3]
    assert sorted(a.matching.pairs["ref_id"]) == [1, 2]
    pair2 = a.matching.pairs.set_index("ref_id").loc[2]
    assert pair2["delta_area_km2"] == pytest.approx(-0.006) and pair2["rel_delta_area"] == pytest.approx(
        -0.375
    )
    polis = dict(zip(a.matching.pairs["ref_id"], a.polis))
    assert polis[1].value == 0.0 and polis[2].value > 0
    # The band ratio finds the clean ice exactly and misses the debris.
    br = by[BAND_RATIO, "a"].confusion
    assert br is not None and br[1, 1] == 400 and br[2, 0] == 60 and br[0, 1:].sum() == 0


def test_min_area(data: tuple[Path, Path]) -> None:
    ref, pred = data
    [a] = evaluate([("model", pred / "a")], ref / "a", min_area_km2=0.015).results
    assert list(a.matching.ref.index) == [1, 2]  # glacier 3 (0.01 km2) left out
    assert len(a.matching.pred) == 1 and list(a.matching.pairs["ref_id"]) == [1]  # 0.01 km2 predictions too
    assert a.confusion is not None and a.confusion.sum() == 40 * 39  # pixel metrics are unaffected
    with pytest.raises(ConfigError, match="min_area_km2"):
        evaluate([("model", pred)], ref, min_area_km2=-1.0)
    with pytest.raises(ConfigError, match="spacing"):
        evaluate([("model", pred)], ref, spacing=0.0)


def test_tables(data: tuple[Path, Path]) -> None:
    ref, pred = data
    tables = build_tables(evaluate([("model", pred)], ref, band_ratio=PAPER))
    pix = tables["pixel_metrics.csv"].set_index(["method", "scene", "class"])
    assert pix.loc[("model", "a", "glacier"), "iou"] == pytest.approx(300 / 560)
    assert pix.loc[("model", "all", "glacier"), "iou"] == pytest.approx((300 + 380) / (560 + 420))
    assert pix.loc[(BAND_RATIO, "a", "glacier"), "iou"] == pytest.approx(400 / 460)
    assert ("model", "a", "debris_ice") not in pix.index  # the model predicts no debris: glacier / not only
    regions = tables["per_region.csv"].set_index(["method", "region"])
    assert regions.loc[("model", "HMA"), "iou"] == pytest.approx(300 / 560)
    assert regions.loc[("model", "SVAL"), "iou"] == pytest.approx(380 / 420)
    assert regions.loc[("model", "all"), "n_scenes"] == 2
    sizes = tables["per_size_class.csv"].set_index(["method", "size_class"])
    # model: a has 3 ref / 3 pred / 2 matched; b 1 / 1 / 1 (all glaciers < 0.1 km2).
    assert sizes.loc[("model", "all"), ["n_ref", "n_pred", "tp_ref", "tp_pred"]].tolist() == [4, 4, 3, 3]
    assert sizes.loc[("model", "<0.1"), "f1"] == pytest.approx(6 / 8)
    assert sizes.loc[("model", "<0.1"), "n_pairs"] == 3
    glaciers = tables["per_glacier.csv"]
    model_a = glaciers[(glaciers["method"] == "model") & (glaciers["scene"] == "a")]
    assert len(model_a) == 4  # 3 reference glaciers + 1 unmatched prediction
    assert model_a["matched"].tolist().count(True) == 2
    scenes = tables["per_scene.csv"].set_index(["method", "scene"])
    assert scenes.loc[("model", "a"), "detection_precision"] == pytest.approx(2 / 3)
    assert scenes.loc[("model", "b"), "polis_median_m"] >= 0


def test_outline_layers_as_prediction_and_reference(data: tuple[Path, Path], tmp_path: Path) -> None:
    ref, pred = data
    outlines = glacier_id_outlines(
        ref / "a" / "glaciers.tif", RasterGrid(rasterio.crs.CRS.from_user_input(CRS), TRANSFORM, SIZE, SIZE)
    )
    gpkg = tmp_path / "inventory.gpkg"
    outlines.rename_axis("glac_id").reset_index().to_file(gpkg, layer="glaciers")
    ev = evaluate([("inventory", gpkg)], ref / "a")
    [res] = ev.results
    assert res.confusion is not None
    glacier = np.array(
        [
            [res.confusion[0, 0], res.confusion[0, 1:].sum()],
            [res.confusion[1:, 0].sum(), res.confusion[1:, 1:].sum()],
        ]
    )
    assert glacier[0, 1] == 0 and glacier[1, 0] == 0  # rasterised outlines reproduce the reference mask
    assert len(res.matching.pairs) == 3 and all(p.value == 0.0 for p in res.polis)
    # Outlines as the reference, a raster prediction scored against them.
    ev2 = evaluate([("model", pred / "a")], gpkg)
    [res2] = ev2.results
    assert res2.confusion is not None and res2.confusion[1, 1] == 300
    # Both outline layers: per-glacier metrics only.
    [res3] = evaluate([("same", gpkg)], gpkg).results
    assert res3.confusion is None and len(res3.matching.pairs) == 3


def test_inputs_and_errors(data: tuple[Path, Path], tmp_path: Path) -> None:
    ref, pred = data
    assert parse_method("model=/some/where") == ("model", Path("/some/where"))
    assert parse_method(str(pred)) == ("pred", pred)
    assert sorted(open_source(ref, "ref")) == ["a", "b"]
    # A single folder against a single folder is paired whatever the names.
    [res] = evaluate([("m", pred / "b")], ref / "b").results
    assert res.scene == "b"
    with pytest.raises(InputError, match="no class raster found"):
        evaluate([("m", tmp_path)], ref)
    with pytest.raises(InputError, match="not found"):
        evaluate([("m", tmp_path / "nope")], ref)
    (tmp_path / "other" / "c").mkdir(parents=True)
    write_predictions(tmp_path / "x", ("c",))
    with pytest.raises(InputError, match="no scene in common"):
        evaluate([("m", tmp_path / "x")], ref)
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        evaluate([], ref)
    with pytest.raises(ConfigError, match="given twice"):
        evaluate([("m", pred), ("m", pred)], ref)
    with pytest.raises(ConfigError, match="needs reference scene folders"):
        gpkg = tmp_path / "o.gpkg"
        glacier_id_outlines(
            ref / "b" / "glaciers.tif",
            RasterGrid(rasterio.crs.CRS.from_user_input(CRS), TRANSFORM, SIZE, SIZE),
        ).to_file(gpkg)
        evaluate([], gpkg, band_ratio=PAPER)
