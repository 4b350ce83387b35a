"""``glaciermap prepare`` through the command-line entry point: products, band files, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from glaciermap.cli import main
from glaciermap.constants import BANDS
from tests.data.landsat.make import make_landsat
from tests.data.prepare import write_bands, write_dem, write_outlines
from tests.data.sentinel2.make import make_safe

BOUNDS = (600000.0, 3999600.0, 600420.0, 4000020.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    bands = write_bands(root / "bands", BANDS["optical"])
    return {
        "safe": make_safe(root / "s2"),
        "landsat": make_landsat(root / "ls"),
        "dem": write_dem(root / "dem.tif", BOUNDS),
        "rgi": write_outlines(root / "rgi.gpkg"),
        **{b: p for b, p in zip(BANDS["optical"], bands, strict=True)},
    }


def test_sentinel2_with_outlines(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scene"
    argv = [
        "prepare",
        "--sentinel2",
        str(files["safe"]),
        "--dem",
        str(files["dem"]),
        "--outlines",
        str(files["rgi"]),
    ]
    assert main([*argv, "--region", "HMA", "--out", str(out)]) == 0
    assert f"wrote scene {out}" in capsys.readouterr().out
    meta = json.loads((out / "scene.json").read_text())
    assert meta["level"] == "L2A" and meta["processing_baseline"] == 5.09 and meta["year"] == 2023
    assert meta["offsets"]["B02"] == -1000 and meta["conversion"]["blue"]["offset"] == pytest.approx(-0.1)
    assert sorted(p.name for p in out.iterdir()) == [
        "dem.tif",
        "labels.tif",
        "optical.tif",
        "scene.json",
        "stats.json",
    ]
    with rasterio.open(out / "optical.tif") as src:
        assert src.descriptions == BANDS["optical"] and src.read(1)[10, 10] == pytest.approx(0.31, abs=1e-6)
    with rasterio.open(out / "labels.tif") as src:
        assert int((src.read(1) == 1).sum()) == 22 * 20 - 16


def test_landsat_adds_thermal(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "scene"
    assert (
        main(["prepare", "--landsat", str(files["landsat"]), "--dem", str(files["dem"]), "--out", str(out)])
        == 0
    )
    with rasterio.open(out / "thermal.tif") as src:
        assert src.read(1)[5, 5] == pytest.approx(268.0, abs=0.01)
    assert json.loads((out / "scene.json").read_text())["region"] == "unknown"


def test_band_files(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "scene"
    optical = [f"{b}={files[b]}" for b in BANDS["optical"]]
    assert (
        main(
            [
                "prepare",
                "--optical",
                *optical,
                "--dem",
                str(files["dem"]),
                "--out",
                str(out),
                "--year",
                "2019",
            ]
        )
        == 0
    )
    assert json.loads((out / "scene.json").read_text())["year"] == 2019


def _bad_cases(files: dict[str, Path], tmp: Path) -> list[tuple[list[str], str]]:
    no_b12 = make_safe(tmp / "nob12", skip=("B12",))
    no_offset = make_safe(tmp / "nooffset", with_offsets=False)
    far = tmp / "far.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(10, 46, 11, 47)], crs=4326).to_file(far)
    dn = write_bands(
        tmp / "dn", BANDS["optical"], values=dict.fromkeys(BANDS["optical"], 2500.0), dtype="uint16"
    )
    cm = write_dem(tmp / "dem_cm.tif", BOUNDS, factor=100.0)
    dem = ["--dem", str(files["dem"])]
    five = [str(files[b]) for b in BANDS["optical"][:5]]
    return [
        (["--sentinel2", str(no_b12), *dem], "no image of band B12 (swir2)"),
        (["--sentinel2", str(no_offset), *dem], "no BOA_ADD_OFFSET values"),
        (["--optical", *five, *dem], "no file for band 'swir2'"),
        (["--optical", *[str(p) for p in dn], *dem], "expected reflectance"),
        (["--sentinel2", str(files["safe"]), "--dem", str(cm)], "expected elevation in m"),
        (
            ["--sentinel2", str(files["safe"]), "--dem", str(tmp / "missing.tif")],
            "missing.tif: file not found",
        ),
        (
            ["--sentinel2", str(files["safe"]), *dem, "--outlines", str(far)],
            "no glacier polygon covers a pixel",
        ),
        (["--sentinel2", str(files["safe"]), *dem, "--debris", str(far)], "--debris needs --outlines"),
        (["--landsat", str(tmp), *dem], "no *_MTL.txt or *_MTL.json"),
    ]


def test_bad_inputs_exit_2_and_leave_no_output(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, (argv, words) in enumerate(_bad_cases(files, tmp_path)):
        out = tmp_path / f"out{i}"
        assert main(["prepare", *argv, "--out", str(out)]) == 2, words
        err = capsys.readouterr().err
        assert err.startswith("glaciermap prepare: error: ") and words in err, (words, err)
        assert err.count("\n") == 1
        assert not out.exists() and not list(tmp_path.glob(f".out{i}.partial-*"))


def test_outlines_in_another_crs_match_utm_outlines(files: dict[str, Path], tmp_path: Path) -> None:
    utm = write_outlines(tmp_path / "utm.shp", crs="EPSG:32643")
    merc = write_outlines(tmp_path / "merc.gpkg", crs="EPSG:3857")
    labels = []
    for name, path in (("a", utm), ("b", merc)):
        argv = [
            "prepare",
            "--sentinel2",
            str(files["safe"]),
            "--dem",
            str(files["dem"]),
            "--outlines",
            str(path),
        ]
        assert main([*argv, "--out", str(tmp_path / name)]) == 0
        with rasterio.open(tmp_path / name / "labels.tif") as src:
            labels.append(src.read(1))
    assert np.array_equal(labels[0], labels[1])


def test_prepare_does_not_import_torch(files: dict[str, Path], tmp_path: Path) -> None:
    """The whole command (Sentinel-2, outlines, co-registration check) runs without loading torch (memory)."""
    out = tmp_path / "scene"
    argv = ["prepare", "--sentinel2", str(files["safe"]), "--dem", str(files["dem"])]
    argv += ["--outlines", str(files["rgi"]), "--out", str(out)]
    code = (
        "import sys\n"
        "from glaciermap.cli import main\n"
        f"assert main({argv!r}) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchgeo', 'lightning')))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "[]"
    with rasterio.open(out / "labels.tif") as src:
        assert int((src.read(1) == 1).sum()) == 22 * 20 - 16
