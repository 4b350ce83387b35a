"""Karakoram inventory analysis: AAR glacier types and the multi-digitisation uncertainty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glaciermap.errors import ConfigError, InputError
from glaciermap.inventory.glacier_type import (
    accumulation_area_ratio,
    glacier_type,
    multi_digitisation_uncertainty,
)


def test_aar_from_snowline_and_from_snow_mask() -> None:
    elevation = np.tile(np.linspace(6000.0, 4000.0, 10)[:, None], (1, 4))  # rows 6000 m (top) -> 4000 m
    glacier = np.ones((10, 4), dtype=bool)
    glacier[:, 3] = False
    # Rows at >= 5100 m: 6000, 5777.8, 5555.6, 5333.3, 5111.1 -> 5 of 10 rows.
    assert accumulation_area_ratio(glacier, elevation=elevation, snowline_m=5100.0) == pytest.approx(0.5)
    elevation[0, 0] = np.nan  # nodata leaves both areas
    assert accumulation_area_ratio(glacier, elevation=elevation, snowline_m=5100.0) == pytest.approx(14 / 29)
    snow = np.zeros((10, 4), dtype=bool)
    snow[:2] = True
    assert accumulation_area_ratio(glacier, snow=snow) == pytest.approx(0.2)
    weights = np.ones((10, 4))
    weights[:2] = 4.0  # larger pixels at the top (geographic grid)
    assert accumulation_area_ratio(glacier, snow=snow, pixel_area=weights) == pytest.approx(24 / 48)
    with pytest.raises(ConfigError, match="either elevation and snowline_m, or a snow mask"):
        accumulation_area_ratio(glacier, snow=snow, snowline_m=5000.0)
    with pytest.raises(InputError, match="no valid pixel"):
        accumulation_area_ratio(np.zeros((2, 2), bool), snow=np.zeros((2, 2), bool))


@pytest.mark.parametrize(
    ("aar", "kind"),
    [
        (0.0, "Turkestan"),
        (0.3, "Turkestan"),
        (0.30001, "Mustagh"),
        (0.6, "Mustagh"),
        (0.61, "Alpine"),
        (1.0, "Alpine"),
    ],
)
def test_glacier_type_thresholds(aar: float, kind: str) -> None:
    assert glacier_type(aar) == kind


def test_glacier_type_rejects_ratios_outside_0_1() -> None:
    with pytest.raises(InputError, match="expected a ratio in"):
        glacier_type(1.2)


def test_multi_digitisation_uncertainty() -> None:
    auto = {"G1": 10.5, "G2": 1.9, "G3": 3.0}
    manual = [{"G1": 10.0, "G2": 2.0}, {"G1": 9.0, "G2": 2.2}, {"G1": 11.0, "G2": 1.8, "G3": 3.1}]
    table, summary = multi_digitisation_uncertainty(auto, manual)
    assert table["glacier"].tolist() == ["G1", "G2"]  # G3 is not in every digitisation
    assert table["reference_km2"].tolist() == pytest.approx([10.0, 2.0])
    assert table["difference_pct"].tolist() == pytest.approx([5.0, -5.0])
    assert table["manual_cv_pct"].tolist() == pytest.approx([10.0, 10.0])
    assert summary["n_glaciers"] == 2
    assert summary["total_difference_pct"] == pytest.approx(100 * 0.4 / 12.0)
    assert summary["mean_abs_difference_pct"] == pytest.approx(5.0)
    assert summary["rms_difference_pct"] == pytest.approx(5.0)
    with pytest.raises(InputError, match="at least two independent digitisations"):
        multi_digitisation_uncertainty(auto, manual[:1])
    with pytest.raises(InputError, match="no glacier id"):
        multi_digitisation_uncertainty({"X": 1.0}, manual)


def test_compare_inventory_with_digitisations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import geopandas as gpd
    import pandas as pd
    import shapely

    from glaciermap.cli import main

    def boxes(widths: list[float], name: str) -> str:
        """Square-ish glaciers 1 km high, ``widths`` km wide, 5 km apart, in UTM 43N."""
        geoms = [shapely.box(600000 + 5000 * i, 4000000, 600000 + 5000 * i + w * 1000, 4001000) for i, w in
                 enumerate(widths)]  # fmt: skip
        path = tmp_path / f"{name}.gpkg"
        ids = [f"{name}-{i}" for i in range(len(widths))]
        gpd.GeoDataFrame({"glac_id": ids}, geometry=geoms, crs="EPSG:32643").to_file(path, layer="glaciers")
        return str(path)

    ours = boxes([2.1, 0.95], "ours")
    manual = [boxes([2.0, 1.0], "m1"), boxes([1.9, 1.1], "m2"), boxes([2.1, 0.9], "m3")]
    out = tmp_path / "cmp"
    assert (
        main(["compare-inventory", ours, manual[0], "--out-dir", str(out), "--digitisations", *manual]) == 0
    )
    table = pd.read_csv(out / "multi_digitisation.csv")
    assert table["glacier"].tolist() == ["ours-0", "ours-1"]
    assert table["reference_km2"].tolist() == pytest.approx([2.0, 1.0])
    assert table["difference_pct"].tolist() == pytest.approx([5.0, -5.0])
    printed = capsys.readouterr().out
    assert "multi-digitisation: 2 glaciers in all 3 digitisations; total area difference +1.7 %" in printed
    assert main(["compare-inventory", ours, manual[0], "--out-dir", str(tmp_path / "x"), "--digitisations",
                 manual[0]]) == 2  # fmt: skip
    assert "expected at least two independent digitisations" in capsys.readouterr().err


def _inventory_types(tmp_path: Path, *extra: str) -> pd.DataFrame:
    from glaciermap.cli import main
    from tests.data import inventory as scenes

    classes, dem = scenes.write_scene(tmp_path / "scene")
    out = tmp_path / "inv.gpkg"
    assert main(["inventory", "--classes", str(classes), "--dem", str(dem), "--out", str(out), *extra]) == 0
    return pd.read_csv(out.with_suffix(".csv"), keep_default_na=False)


def test_inventory_types_from_a_snow_mask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.data import inventory as scenes

    snow = np.zeros((scenes.HEIGHT, scenes.WIDTH), dtype=np.uint8)
    snow[20:70, 60:120] = 1  # glacier A (columns 60-259): 60 of 200 columns -> AAR 0.3, Turkestan
    snow[20:70, 260:400] = 1  # glacier B (columns 260-459): 140 of 200 -> AAR 0.7, Alpine
    snow[110:130, :] = 1  # ring (1500 px): rows 110-129 minus the nunatak's 50 px -> 750 px, AAR 0.5, Mustagh
    mask = scenes.write_raster(tmp_path / "snow.tif", snow)
    table = _inventory_types(tmp_path, "--snow-mask", str(mask), "--type-min-area", "0.1")
    by_aar = sorted((round(float(a), 3), t) for a, t in zip(table["aar"], table["glacier_type"], strict=True))
    assert by_aar == [(0.3, "Turkestan"), (0.5, "Mustagh"), (0.7, "Alpine")]
    assert "Turkestan 1, Mustagh 1, Alpine 1" in capsys.readouterr().out


def test_inventory_types_from_a_snow_line(tmp_path: Path) -> None:
    from tests.data import inventory as scenes

    table = _inventory_types(tmp_path, "--snow-line", "2900")
    z = scenes.elevation()
    expected = sorted(
        [
            float((z[20:70, 60:260] >= 2900).mean()),
            float((z[20:70, 260:460] >= 2900).mean()),
        ]
    )
    big = table[table["area_km2"] > 0.5]
    assert sorted(big["aar"].astype(float)) == pytest.approx(expected, abs=2e-3)
    assert (table["glacier_type"] == "").all()  # all below the paper's 5 km2
    with pytest.raises(SystemExit) as exc:  # argparse: the two are mutually exclusive
        _inventory_types(tmp_path / "both", "--snow-line", "2900", "--snow-mask", "x.tif")
    assert exc.value.code == 2
