"""``glaciermap evaluate`` and ``glaciermap fit-band-ratio`` end to end on two tiny scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin

from glaciermap import cli
from glaciermap.baselines import band_ratio_classes
from glaciermap.evaluation.tables import REPORT_FILES
from glaciermap.metrics import pixel_metrics
from tests.data.eval_scenes import (
    CRS,
    TRANSFORM,
    prediction_array,
    reference_arrays,
    write_predictions,
    write_reference,
)
from tests.data.scenes import write_raster


@pytest.fixture(autouse=True)
def only_these_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register just the commands under test (keeps the test independent of the others' modules)."""
    monkeypatch.setattr(
        cli,
        "COMMANDS",
        {"evaluate": "glaciermap.commands.evaluate", "fit-band-ratio": "glaciermap.commands.fit_band_ratio"},
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    return write_reference(root / "ref"), write_predictions(root / "pred")


def test_evaluate_writes_every_file_with_the_right_values(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, pred = data
    out = tmp_path / "report"
    rc = cli.main(
        ["evaluate", "--pred", f"model={pred}", "--ref", str(ref), "--band-ratio", "--out", str(out)]
    )
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)  # and no temporary leftovers
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pix = pd.read_csv(out / "pixel_metrics.csv").set_index(["method", "scene", "class"])
    for scene in ("a", "b"):
        direct = pixel_metrics(prediction_array(scene), reference_arrays(scene)[0], num_classes=3).glacier()
        row = pix.loc[("model", scene, "glacier")]
        assert row["iou"] == pytest.approx(direct.iou[1], rel=1e-5)
        assert row["precision"] == pytest.approx(direct.precision[1], rel=1e-5)
        assert (row["tp"], row["fp"], row["fn"]) == tuple(
            int(v) for v in (direct.confusion[1, 1], direct.confusion[0, 1], direct.confusion[1, 0])
        )
    assert pix.loc[("band_ratio", "a", "glacier"), "iou"] == pytest.approx(400 / 460, rel=1e-5)
    regions = pd.read_csv(out / "per_region.csv")
    assert sorted(regions.loc[regions["method"] == "model", "region"]) == ["HMA", "SVAL", "all"]
    sizes = pd.read_csv(out / "per_size_class.csv")
    assert sizes.groupby("method").size().to_dict() == {"band_ratio": 6, "model": 6}
    glaciers = pd.read_csv(out / "per_glacier.csv")
    assert len(glaciers[glaciers["method"] == "model"]) == 4 + 1  # scene a: 3 ref + 1 false positive; b: 1
    report = (out / "report.md").read_text()
    assert "| HMA | 0.536 | 0.870 |" in report  # 300/560 and 400/460, methods in --pred/--band-ratio order
    assert "![Glacier IoU per region](iou_per_region.png)" in report
    printed = capsys.readouterr().out
    assert "model: glacier IoU 0.694" in printed  # (300 + 380) / (560 + 420)


def test_evaluate_errors_leave_no_report(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, _ = data
    out = tmp_path / "report"
    shifted = tmp_path / "shifted" / "a"
    shifted.mkdir(parents=True)
    write_raster(
        shifted / "classes.tif", prediction_array("a")[None], crs=CRS,
        transform=from_origin(500010.0, 4000000.0, 10.0, 10.0), nodata=255, descriptions=None,
    )  # fmt: skip
    assert cli.main(["evaluate", "--pred", str(shifted), "--ref", str(ref / "a"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        "glaciermap evaluate: error:" in err
        and "shifted/a/classes.tif" in err
        and "different geotransforms" in err
    )
    assert (
        cli.main(["evaluate", "--pred", str(tmp_path / "missing"), "--ref", str(ref), "--out", str(out)]) == 2
    )
    assert "missing: not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        cli.main(["evaluate", "--pred", str(tmp_path / "empty"), "--ref", str(ref), "--out", str(out)]) == 2
    )
    assert "no class raster found" in capsys.readouterr().err
    assert cli.main(["evaluate", "--ref", str(ref), "--out", str(out)]) == 2
    assert "give at least one --pred or --band-ratio" in capsys.readouterr().err
    bad = tmp_path / "bad" / "a"
    bad.mkdir(parents=True)
    write_raster(
        bad / "classes.tif", np.full((1, 40, 40), 7, np.uint8), crs=CRS, transform=TRANSFORM, nodata=255,
        descriptions=None,
    )  # fmt: skip
    assert cli.main(["evaluate", "--pred", str(bad), "--ref", str(ref / "a"), "--out", str(out)]) == 2
    assert "unexpected class values [7]" in capsys.readouterr().err
    assert not out.exists()


def test_fit_band_ratio_cli(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, _ = data
    out = tmp_path / "thresholds.json"
    assert cli.main(["fit-band-ratio", "--scenes", str(ref), "--out", str(out)]) == 0
    fit = json.loads(out.read_text())
    # Background (ratio 1, blue 0.1), clean ice (5, 0.5), debris (1.2, 0.15); both ice classes are glacier, so
    # blue > 0.1 alone separates them perfectly. Ties go to the smallest th1, then th2.
    assert fit["iou"] == 1.0
    assert (fit["ratio_threshold"], fit["blue_threshold"]) == (0.0, 0.1)
    assert fit["n_pixels"] == 40 * 40 * 2 - 40 and len(fit["scenes"]) == 2
    assert (
        "red/swir1 > 0 and blue > 0.1: glacier IoU 1.0000 on 3160 pixels of 2 scene(s)"
        in capsys.readouterr().out
    )
    # The fitted thresholds feed the band ratio of the evaluation.
    report = tmp_path / "r"
    assert (
        cli.main(
            [
                "evaluate",
                "--ref",
                str(ref),
                "--band-ratio",
                "--band-ratio-thresholds",
                str(out),
                "--out",
                str(report),
            ]
        )
        == 0
    )
    table = pd.read_csv(report / "per_region.csv").set_index(["method", "region"])
    assert table.loc[("band_ratio", "all"), "iou"] == 1.0  # the paper's thresholds give 800 / 860 (no debris)
    assert cli.main(["fit-band-ratio", "--scenes", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_default_reference_is_generated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glaciermap.evaluation import heldout

    monkeypatch.setattr(heldout, "HELDOUT_SIZE", (64, 64))  # the real set is 512 x 512
    cache = tmp_path / "cache"
    args = ["evaluate", "--band-ratio", "--cache-dir", str(cache), "--min-area-km2", "0"]
    assert cli.main([*args, "--out", str(tmp_path / "r1")]) == 0
    [folder] = cache.iterdir()
    assert folder.name.startswith("heldout-v1-") and folder.name.endswith("-64x64")
    assert sorted(p.name for p in folder.iterdir()) == [
        "heldout-alaska", "heldout-karakoram", "heldout-svalbard", "heldout.json",
    ]  # fmt: skip
    stamp = (folder / "heldout-alaska" / "labels.tif").stat().st_mtime_ns
    assert cli.main([*args, "--out", str(tmp_path / "r2")]) == 0  # reused, not regenerated
    assert (folder / "heldout-alaska" / "labels.tif").stat().st_mtime_ns == stamp
    regions = pd.read_csv(tmp_path / "r2" / "per_region.csv")
    assert sorted(regions["region"]) == ["AWA", "HMA", "SVAL", "all"]
    scenes = pd.read_csv(tmp_path / "r2" / "per_scene.csv").set_index("scene")
    assert len(scenes) == 3
    for name in scenes.index:
        with rasterio.open(folder / name / "labels.tif") as src:
            labels = src.read(1)
        direct = pixel_metrics(band_ratio_classes(folder / name), labels, num_classes=3).glacier()
        assert scenes.loc[name, "n_pixels"] == direct.n_pixels > 0
        np.testing.assert_allclose(scenes.loc[name, "iou"], direct.iou[1], rtol=1e-5)  # NaN where no glacier
    assert "synthetic held-out scenes" in (tmp_path / "r2" / "report.md").read_text()
