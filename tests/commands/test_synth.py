"""Tests of ``glaciermap synth`` through the command-line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

from glaciermap.cli import main


def test_synth_writes_a_scene_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scene"
    argv = ["synth", "--out", str(out), "--region", "svalbard", "--size", "96", "128", "--seed", "7"]
    assert main([*argv, "--pixel-size", "20", "--year", "2018"]) == 0
    printed = capsys.readouterr().out
    meta = json.loads((out / "scene.json").read_text())
    assert (meta["region_code"], meta["year"], meta["seed"], meta["pixel_size"]) == ("SVAL", 2018, 7, 20.0)
    with rasterio.open(out / "labels.tif") as src:
        assert (src.height, src.width) == (96, 128)
        clean_km2 = (src.read(1) == 1).sum() * 20.0 * 20.0 / 1e6
    assert str(out) in printed and "SVAL" in printed and "96 x 128 px" in printed
    assert f"clean ice {clean_km2:.3f} km2" in printed


def test_synth_options_reach_the_generator(tmp_path: Path) -> None:
    out = tmp_path / "scene"
    assert main(["synth", "--out", str(out), "--size", "64", "64", "--clouds", "--nodata-stripes"]) == 0
    meta = json.loads((out / "scene.json").read_text())
    assert meta["clouds"] and meta["nodata_stripes"] and meta["preset"] == "karakoram"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region", "mars"], "expected one of: alaska, alps, karakoram, svalbard"),
        (["--size", "10", "10"], "size must be between 64"),
        (["--size", "128", "-1"], "size must be between 64"),
        (["--pixel-size", "0"], "pixel_size"),
        (["--seed", "-3"], "seed"),
    ],
)
def test_synth_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["synth", "--out", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glaciermap synth: error:") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists()
