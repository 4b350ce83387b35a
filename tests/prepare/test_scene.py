"""The scene writer on loose band files: band picking, grids, slope, units, labels, streaming, atomicity."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds

from glaciermap.constants import BANDS
from glaciermap.datasets.scene import SceneDataset
from glaciermap.datasets.scene_folder import inspect_scene
from glaciermap.errors import ConfigError, InputError
from glaciermap.prepare.bands import BandFile, pick_band_files
from glaciermap.prepare.scene import CoregistrationCheck, PrepareInputs, prepare_scene
from tests.data.prepare import SLOPE_DEG, write_bands, write_dem, write_outlines, write_textured_scene

OPTICAL = BANDS["optical"]
BOUNDS = (600000.0, 3999620.0, 600400.0, 4000020.0)


def inputs(tmp_path: Path, **kwargs: object) -> PrepareInputs:
    files = write_bands(tmp_path / "bands", OPTICAL)
    dem = write_dem(tmp_path / "dem.tif", BOUNDS)
    args: dict[str, object] = {
        "optical": pick_band_files([str(p) for p in files]),
        "dem": BandFile("elevation", dem, unit="m"),
        "region": "HMA",
        "year": 2021,
    }
    args.update(kwargs)
    return PrepareInputs(**args)  # type: ignore[arg-type]


def test_pick_band_files(tmp_path: Path) -> None:
    s2 = write_bands(
        tmp_path, ["B02", "B03", "B04", "B08", "B11", "B12"], stem="T43SFA_20230801T055641_{name}_10m.tif"
    )
    picked = pick_band_files([str(p) for p in s2], sensor="sentinel2")
    assert [p.path.name.split("_")[2] for p in picked.values()] == ["B02", "B03", "B04", "B08", "B11", "B12"]
    oli = write_bands(tmp_path, ["B2", "B3", "B4", "B5", "B6", "B7"], stem="LC08_L1TP_148035_{name}.TIF")
    assert pick_band_files([str(p) for p in oli], sensor="landsat89")["nir"].path.name.endswith("_B5.TIF")
    named = pick_band_files([f"{b}={p}" for b, p in zip(OPTICAL, s2, strict=True)])
    assert named["swir2"].path == s2[5]
    with pytest.raises(InputError, match="cannot tell which band this is"):
        pick_band_files([str(p) for p in s2])  # B02 ... without --sensor
    with pytest.raises(InputError, match="no file for band 'swir2'"):
        pick_band_files([str(p) for p in s2[:5]], sensor="sentinel2")
    with pytest.raises(ConfigError, match="sensor is 'modis'"):
        pick_band_files([], sensor="modis")  # type: ignore[arg-type]


def test_scene_folder_is_valid_and_sample_contract(tmp_path: Path) -> None:
    out = prepare_scene(inputs(tmp_path, outlines=write_outlines(tmp_path / "rgi.gpkg")), tmp_path / "scene")
    scene = inspect_scene(out, ["optical", "dem"])
    meta = json.loads((out / "scene.json").read_text())
    assert meta["region"] == "HMA" and meta["year"] == 2021 and meta["crs"] == "EPSG:32643"
    assert meta["pixel_size"] == 10.0 and (meta["height"], meta["width"]) == (40, 40)
    assert scene.has_labels
    stats = json.loads((out / "stats.json").read_text())
    assert stats["optical"]["count"] == 1600 and stats["optical"]["min"][0] == pytest.approx(0.3)
    sample = SceneDataset(out, ["optical", "dem"])[(slice(600000.0, 600400.0), slice(3999620.0, 4000020.0))]
    mask = sample["mask"].numpy()
    # Glacier x 600100-600300, y 3999700-3999920 (rows 10-31, cols 10-29) with a nunatak rows 20-23, cols 18-21.
    assert mask[15, 15] == 1 and mask[21, 19] == 0 and mask[5, 5] == 0 and mask[35, 15] == 0
    assert int(mask.sum()) == 22 * 20 - 16


def test_geographic_grid_slope_in_metres(tmp_path: Path) -> None:
    """Optical bands in EPSG:4326 (1/3600 deg): the slope must come from metres, not degrees of arc."""
    deg = 1 / 3600
    files = write_bands(
        tmp_path / "geo", OPTICAL, crs="EPSG:4326", origin=(76.1, 36.12), res=deg, size=(30, 30)
    )
    utm = transform_bounds("EPSG:4326", "EPSG:32643", 76.1, 36.12 - 30 * deg, 76.1 + 30 * deg, 36.12)
    dem = write_dem(tmp_path / "dem.tif", utm, crs="EPSG:32643", res=10.0)
    prepared = PrepareInputs(
        optical=pick_band_files([str(p) for p in files]), dem=BandFile("elevation", dem, unit="m")
    )
    out = prepare_scene(prepared, tmp_path / "scene")
    with rasterio.open(out / "dem.tif") as src:
        slope = src.read(2)
        assert src.crs.is_geographic
    # UTM north and true north differ by about 0.6 degrees here: the gradient magnitude is unchanged.
    np.testing.assert_allclose(slope, SLOPE_DEG, atol=0.25)
    assert "pixel_size" not in json.loads((out / "scene.json").read_text())


def test_labels_raster_nearest_and_debris(tmp_path: Path) -> None:
    labels = tmp_path / "labels.tif"
    data = np.zeros((1, 20, 20), dtype=np.uint8)
    data[0, :, 10:] = 2
    with rasterio.open(labels, "w", driver="GTiff", width=20, height=20, count=1, dtype="uint8", crs="EPSG:32643",
                       transform=rasterio.transform.from_origin(600000.0, 4000020.0, 20, 20)) as dst:  # fmt: skip
        dst.write(data)
    out = prepare_scene(inputs(tmp_path, labels=labels), tmp_path / "scene")
    with rasterio.open(out / "labels.tif") as src:
        got = src.read(1)
    assert set(np.unique(got).tolist()) == {0, 2} and (got[:, :20] == 0).all() and (got[:, 20:] == 2).all()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"optical_dtype": "uint16", "optical_value": 3000.0}, "median 30\\d\\d.*expected reflectance"),
        ({"dem_factor": 100.0}, "elevation.*expected elevation in m"),
        ({"thermal_value": -5.0}, "thermal.*expected temperature in K"),
        ({"dem_crs": "none"}, "dem.tif has no CRS"),
        ({"far_dem": True}, "does not overlap the optical grid"),
    ],
)
def test_bad_inputs_leave_nothing(tmp_path: Path, change: dict[str, object], words: str) -> None:
    value = float(change.get("optical_value", 0.3))  # type: ignore[arg-type]
    files = write_bands(tmp_path / "b", OPTICAL, dtype=str(change.get("optical_dtype", "float32")),
                        values=dict.fromkeys(OPTICAL, value))  # fmt: skip
    factor = float(change.get("dem_factor", 1.0))  # type: ignore[arg-type]
    bounds = (700000.0, 3999620.0, 700400.0, 4000020.0) if change.get("far_dem") else BOUNDS
    dem = write_dem(tmp_path / "dem.tif", bounds, factor=factor, crs="EPSG:32643", res=30.0)
    if change.get("dem_crs") == "none":
        with rasterio.open(dem) as src:
            profile, z = src.profile, src.read()
        profile.pop("crs")
        with rasterio.open(dem, "w", **profile) as dst:
            dst.write(z)
    thermal = None
    if "thermal_value" in change:
        (t,) = write_bands(tmp_path / "t", ["thermal"], values={"thermal": float(change["thermal_value"])})  # type: ignore[arg-type]
        thermal = BandFile("thermal", t, unit="K")
    prepared = PrepareInputs(optical=pick_band_files([str(p) for p in files]), dem=BandFile("elevation", dem, unit="m"),
                             thermal=thermal)  # fmt: skip
    out = tmp_path / "scene"
    with pytest.raises(InputError, match=words):
        prepare_scene(prepared, out)
    assert not out.exists() and not list(tmp_path.glob(".scene.partial-*"))


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "scene"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="exists and is not empty"):
        prepare_scene(inputs(tmp_path), out)
    prepare_scene(inputs(tmp_path), out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "optical.tif").is_file()


def test_streaming_memory_is_bounded_by_the_strip(tmp_path: Path) -> None:
    """800 x 1000 px, 32-row strips: numpy's peak stays far below one full-scene optical array (19.2 MB)."""
    files = write_bands(
        tmp_path / "big", OPTICAL, size=(800, 1000), values=dict.fromkeys(OPTICAL, 0.2), dtype="float32"
    )
    bounds = (600000.0, 4000020.0 - 8000.0, 610000.0, 4000020.0)
    dem = write_dem(tmp_path / "dem.tif", bounds, crs="EPSG:32643", res=30.0)
    prepared = PrepareInputs(
        optical=pick_band_files([str(p) for p in files]), dem=BandFile("elevation", dem, unit="m")
    )
    tracemalloc.start()
    try:
        # the co-registration check is a fixed cost bounded by its max_side (1024 px), not by the scene: off here
        prepare_scene(
            prepared, tmp_path / "scene", block_rows=32, coregistration=CoregistrationCheck(mode="off")
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 7e6, peak
    with rasterio.open(tmp_path / "scene" / "optical.tif") as src:
        assert src.read(6, window=((799, 800), (999, 1000)))[0, 0] == pytest.approx(0.2 + 0.799)


def test_partial_dem_without_nodata_value_leaves_nodata_not_zeros(tmp_path: Path) -> None:
    """A DEM (no nodata value declared) covering the western half: the eastern half is nodata, not 0 m."""
    dem = tmp_path / "half.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=20, height=40, count=1, dtype="float32", crs="EPSG:32643",
                       transform=rasterio.transform.from_origin(600000.0, 4000020.0, 10, 10)) as dst:  # fmt: skip
        dst.write(np.full((1, 40, 20), 3000.0, dtype=np.float32))
    out = prepare_scene(inputs(tmp_path, dem=BandFile("elevation", dem, unit="m"),
                               outlines=write_outlines(tmp_path / "rgi.gpkg")), tmp_path / "scene")  # fmt: skip
    with rasterio.open(out / "dem.tif") as src:
        z = src.read()
    assert (z[0, :, :20] == 3000.0).all() and (z[:, :, 20:] == -9999.0).all()
    assert (z[1, :, :19] == 0.0).all()  # flat; column 19 borders nodata, so its slope is nodata
    with rasterio.open(out / "labels.tif") as src:
        labels = src.read(1)
    assert (labels[:, 19:] == 255).all() and labels[15, 15] == 1


def _coregistered_inputs(tmp_path: Path, shift: tuple[int, int]) -> PrepareInputs:
    files, dem = write_textured_scene(tmp_path / "in", shift_px=shift)
    return PrepareInputs(
        optical=pick_band_files([str(p) for p in files]), dem=BandFile("elevation", dem, unit="m")
    )


def test_coregistration_check_against_the_hillshade(tmp_path: Path) -> None:
    """Karakoram paper Sec. 3.1: inputs co-registered; a 4 px shift is measured, warned about, or refused."""
    out = prepare_scene(_coregistered_inputs(tmp_path / "a", (0, 0)), tmp_path / "aligned")
    record = json.loads((out / "scene.json").read_text())["coregistration"]
    assert record["magnitude_px"] < 0.3 and "problem" not in record
    assert record["reference"].startswith("hillshade of the DEM")
    shifted = _coregistered_inputs(tmp_path / "b", (0, 4))  # optical moved 4 px east of the DEM
    with pytest.warns(UserWarning, match=r"dx=-4\.0 px"):
        out = prepare_scene(shifted, tmp_path / "shifted")
    record = json.loads((out / "scene.json").read_text())["coregistration"]
    assert record["shift_px"] == pytest.approx([0.0, -4.0], abs=0.2)
    assert record["shift_m"] == pytest.approx([0.0, -40.0], abs=2.0)
    with pytest.raises(InputError, match=r"shifted by dy=[+-]0\.0, dx=-4\.0 px"):
        prepare_scene(shifted, tmp_path / "refused", coregistration=CoregistrationCheck(mode="error"))
    assert not (tmp_path / "refused").exists()
    ok = prepare_scene(
        shifted, tmp_path / "tolerant", coregistration=CoregistrationCheck(mode="error", tolerance_px=5)
    )
    assert json.loads((ok / "scene.json").read_text())["coregistration"]["tolerance_px"] == 5


def test_coregistration_check_against_a_reference_and_off(tmp_path: Path) -> None:
    inputs = _coregistered_inputs(tmp_path / "a", (2, 0))
    nir = inputs.optical["nir"].path
    out = prepare_scene(inputs, tmp_path / "ref", coregistration=CoregistrationCheck(reference=nir))
    record = json.loads((out / "scene.json").read_text())["coregistration"]
    assert record["reference"] == str(nir) and record["magnitude_px"] < 0.1
    off = prepare_scene(inputs, tmp_path / "off", coregistration=CoregistrationCheck(mode="off"))
    assert "coregistration" not in json.loads((off / "scene.json").read_text())


def test_prepare_command_coregistration_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from glaciermap.cli import main

    files, dem = write_textured_scene(tmp_path / "in", shift_px=(3, 0))
    base = ["prepare", "--optical", *map(str, files), "--dem", str(dem)]
    assert main([*base, "--out", str(tmp_path / "bad"), "--coregistration", "error"]) == 2
    assert "dy=-3.0" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    out = tmp_path / "ok"
    args = ["--coregistration-tolerance", "4", "--sun", "135", "45", "--coregistration", "error"]
    assert main([*base, "--out", str(out), *args]) == 0
    record = json.loads((out / "scene.json").read_text())["coregistration"]
    assert record["shift_px"] == pytest.approx([-3.0, 0.0], abs=0.2) and record["tolerance_px"] == 4


def test_slope_is_one_implementation_shared_with_the_inventory() -> None:
    """Issue 18: the slope written by prepare and the inventory's slope attribute come from one function."""
    import glaciermap.inventory.pipeline as inventory_pipeline
    import glaciermap.prepare.scene as prepare_scene_module
    from glaciermap.terrain import slope_aspect

    assert prepare_scene_module.slope_aspect is slope_aspect
    assert inventory_pipeline.slope_aspect is slope_aspect
