"""``glaciermap inventory`` and ``glaciermap compare-inventory`` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from glaciermap.cli import main
from tests.data import inventory as scenes


def test_inventory_command_writes_gpkg_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classes, dem = scenes.write_scene(tmp_path / "scene")
    out = tmp_path / "out" / "inventory.gpkg"
    code = main(
        [
            "inventory",
            "--classes",
            str(classes),
            "--dem",
            str(dem),
            "--out",
            str(out),
            "--date",
            "2021",
            "--min-area",
            "0.0005",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "4 glaciers in 3 complexes" in printed and "[flowshed]" in printed
    glaciers = gpd.read_file(out, layer="glaciers")
    assert len(glaciers) == 4  # the 9-pixel speck (0.0009 km2) is kept with --min-area 0.0005
    assert sorted(glaciers.area_km2.round(4)) == [0.0009, 0.15, 1.0, 1.0]
    assert (glaciers.src_date == "2021").all() and (glaciers.dem_source == "dem.tif").all()
    assert out.with_suffix(".csv").exists()


def test_inventory_command_copy_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classes, dem = scenes.write_scene(tmp_path / "scene")
    # A reference whose divide lies at x = 2000 m (column 200) instead of the col at column 260.
    x0, y0 = scenes.ORIGIN
    from shapely.geometry import box

    ref = gpd.GeoDataFrame(
        {"rgi_id": ["RGI2000-v7.0-G-14-00001", "RGI2000-v7.0-G-14-00002"]},
        geometry=[
            box(x0 + 600, y0 - 700, x0 + 2000, y0 - 200),
            box(x0 + 2000, y0 - 700, x0 + 4600, y0 - 200),
        ],
        crs=scenes.CRS,
    )
    ref_path = tmp_path / "rgi.shp"
    ref.to_file(ref_path)
    out = tmp_path / "copy.gpkg"
    assert (
        main(
            [
                "inventory",
                "--classes",
                str(classes),
                "--dem",
                str(dem),
                "--out",
                str(out),
                "--reference",
                str(ref_path),
            ]
        )
        == 0
    )
    assert "[copy]" in capsys.readouterr().out
    glaciers = gpd.read_file(out, layer="glaciers")
    areas = sorted(glaciers.area_km2.round(4))
    assert areas == [0.15, 0.7, 1.3]  # split where the reference splits: 50 x 140 and 50 x 260 pixels


def test_inventory_command_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classes, dem = scenes.write_scene(tmp_path / "scene")
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"\x00garbage" * 64)
    out = tmp_path / "inv.gpkg"
    assert main(["inventory", "--classes", str(corrupt), "--dem", str(dem), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glaciermap inventory: error:") and "corrupt.tif" in err and "\n" not in err
    # a DEM on a grid that cannot be aligned (no CRS)
    nocrs = scenes.write_raster(tmp_path / "nocrs.tif", scenes.elevation(), crs=None)
    assert main(["inventory", "--classes", str(classes), "--dem", str(nocrs), "--out", str(out)]) == 2
    assert "no CRS" in capsys.readouterr().err
    # a DEM that does not overlap the class raster
    from affine import Affine

    far = scenes.write_raster(
        tmp_path / "far.tif", scenes.elevation(), transform=Affine(10, 0, 0, 0, -10, 10_000), nodata=-9999.0
    )
    assert main(["inventory", "--classes", str(classes), "--dem", str(far), "--out", str(out)]) == 2
    assert "does not overlap" in capsys.readouterr().err
    # classes nodata everywhere
    empty = scenes.write_raster(tmp_path / "empty.tif", np.full((10, 10), 255, np.uint8), nodata=255)
    assert main(["inventory", "--classes", str(empty), "--dem", str(dem), "--out", str(out)]) == 2
    assert "nodata everywhere" in capsys.readouterr().err
    assert (
        main(
            ["inventory", "--classes", str(classes), "--dem", str(dem), "--out", str(out), "--method", "copy"]
        )
        == 2
    )
    assert "reference" in capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".csv").exists()


def test_compare_inventory_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classes, dem = scenes.write_scene(tmp_path / "scene")
    ours = tmp_path / "ours.gpkg"
    assert main(["inventory", "--classes", str(classes), "--dem", str(dem), "--out", str(ours)]) == 0
    capsys.readouterr()
    # The reference (RGI 6 names): glacier A as in ours, glacier B 40 % smaller, the ring missing.
    x0, y0 = scenes.ORIGIN
    from shapely.geometry import box

    ref = gpd.GeoDataFrame(
        {"RGIId": ["RGI60-14.00001", "RGI60-14.00002"], "Area": [1.0, 0.6]},
        geometry=[
            box(x0 + 600, y0 - 700, x0 + 2600, y0 - 200),
            box(x0 + 2600, y0 - 700, x0 + 3800, y0 - 200),
        ],
        crs="EPSG:32643",
    ).to_crs("EPSG:4326")
    ref_path = tmp_path / "rgi6.shp"
    ref.to_file(ref_path)
    out_dir = tmp_path / "cmp"
    assert (
        main(["compare-inventory", str(ours), str(ref_path), "--out-dir", str(out_dir), "--cell-size", "1"])
        == 0
    )
    assert "2 matched, 0 omitted, 1 new" in capsys.readouterr().out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["n_matched"] == 2 and summary["n_new"] == 1
    assert summary["d_area_km2"] == pytest.approx(2.15 - 1.6, abs=1e-3)
    for name in ("matches.csv", "omitted.csv", "new.csv", "cell_diff.tif", "cell_diff.png"):
        assert (out_dir / name).exists()
    assert main(["compare-inventory", str(ours), str(tmp_path / "missing.gpkg")]) == 2
    assert "missing.gpkg" in capsys.readouterr().err
