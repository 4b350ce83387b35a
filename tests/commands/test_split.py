"""Tests of ``glaciermap split`` and ``glaciermap synth-crevasses`` through the CLI, bad input included."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from glaciermap.cli import main
from tests.datasets.split_factory import make_pan, pixel_box, write_aoi


def run_bad(args: list[str], capsys: pytest.CaptureFixture[str], out: Path, *words: str) -> None:
    """Exit status 2, one stderr line naming the problem, nothing written to ``out``."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("glaciermap split: error: ")
    for word in words:
        assert word in err
    assert not out.exists()


def test_split_writes_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pan = make_pan(tmp_path / "pan.tif")
    out = tmp_path / "out"
    assert main(["split", "--image", str(pan), "--out", str(out), "--tile-size", "30", "40"]) == 0
    assert "wrote 8 split-images of 30 x 40 px" in capsys.readouterr().out
    table = pd.read_csv(out / "index.csv")
    assert table["tile_id"].tolist() == list(range(8)) and set(table["utm_epsg"]) == {32633}
    assert (out / "index.gpkg").stat().st_size > 0


def test_split_aoi_in_another_crs(tmp_path: Path) -> None:
    pan = make_pan(tmp_path / "pan.tif", zero_at=None)
    aoi = write_aoi(tmp_path / "aoi.gpkg", pixel_box(-5, -5, 62, 135), crs="EPSG:3413")  # polar stereographic
    out = tmp_path / "out"
    assert (
        main(["split", "--image", str(pan), "--aoi", str(aoi), "--out", str(out), "--tile-size", "30", "40"])
        == 0
    )
    assert sorted(set(pd.read_csv(out / "index.csv")["row"])) == [0, 30]


def test_split_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    pan = make_pan(tmp_path / "pan.tif")
    rgb = make_pan(tmp_path / "rgb.tif", bands=3)
    run_bad(
        ["split", "--image", str(rgb), "--out", str(out)], capsys, out, "rgb.tif", "3 bands", "single-band"
    )
    run_bad(
        ["split", "--image", str(pan), "--out", str(out)], capsys, out, "smaller than one tile", "201 x 268"
    )
    far = write_aoi(tmp_path / "far.geojson", pixel_box(5000, 5000, 5100, 5100), crs="EPSG:4326")
    run_bad(
        ["split", "--image", str(pan), "--aoi", str(far), "--out", str(out), "--tile-size", "30", "40"],
        capsys,
        out,
        "far.geojson",
        "does not overlap",
    )
    run_bad(
        ["split", "--image", str(tmp_path / "missing.tif"), "--out", str(out)], capsys, out, "file not found"
    )
    holes = make_pan(tmp_path / "holes.tif", shape=(30, 40), zero_at=(3, 3))
    run_bad(
        ["split", "--image", str(holes), "--out", str(out), "--tile-size", "30", "40"],
        capsys,
        out,
        "no complete 30 x 40 px tile without nodata",
    )


def test_synth_crevasses_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "world"
    args = [
        "synth-crevasses",
        "--out",
        str(out),
        "--seed",
        "3",
        "--tiles",
        "22",
        "2",
        "--tile-size",
        "30",
        "40",
    ]
    assert main(args) == 0
    assert "44 split-images, 4-4 per class" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "aoi.gpkg",
        "classes.tif",
        "index.csv",
        "index.gpkg",
        "labels.csv",
        "pan.tif",
        "scene.json",
    ]
    assert json.loads((out / "scene.json").read_text())["seed"] == 3
    assert main(["synth-crevasses", "--out", str(tmp_path / "odd"), "--tiles", "3", "2"]) == 2
    assert "even" in capsys.readouterr().err and not (tmp_path / "odd").exists()
