"""Validation of scene folders: every bad input is an InputError naming the file and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from glaciermap.constants import BANDS, RASTER_NODATA
from glaciermap.datasets.scene_folder import inspect_scene, read_scene_stats
from glaciermap.errors import ConfigError, InputError
from tests.data.scenes import band_values, write_raster, write_scene

ALL = ["optical", "dem", "thermal", "sar", "insar"]


def test_valid_scene_metadata(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", size=(40, 50), pixel_size=20.0, origin=(300000.0, 5000000.0))
    info = inspect_scene(folder, ALL)
    assert info.region == "HMA" and info.year == 2020 and info.name == "s"
    assert (info.height, info.width) == (40, 50)
    assert info.res == (20.0, 20.0)
    assert info.bounds == (300000.0, 5000000.0 - 800.0, 301000.0, 5000000.0)
    assert info.crs.to_epsg() == 32643
    assert info.has_labels and set(info.rasters) == {*ALL, "labels"}


def test_missing_modality_names_file_and_bands(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["optical", "dem"])
    with pytest.raises(InputError, match=r"scene .*s has no thermal\.tif; expected 1 band thermal"):
        inspect_scene(folder, ["optical", "thermal"])


def test_wrong_band_count(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["dem"])
    write_raster(
        folder / "optical.tif",
        band_values("optical", 64, 64)[:4],
        crs="EPSG:32643",
        transform=from_origin(500000.0, 4000000.0, 10.0, 10.0),
        nodata=RASTER_NODATA,
        descriptions=None,
    )
    with pytest.raises(InputError, match=r"optical\.tif has 4 band\(s\); expected 6 bands blue, green, red"):
        inspect_scene(folder, ["dem", "optical"])


def test_wrong_band_description(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["dem"])
    with rasterio.open(folder / "dem.tif", "r+") as dst:
        dst.descriptions = ("slope", "elevation")
    with pytest.raises(InputError, match=r"dem\.tif: band 1 is described as 'slope'.*band 1 = 'elevation'"):
        inspect_scene(folder, ["dem"])


def test_missing_descriptions_are_accepted(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["dem"])
    write_raster(
        folder / "dem.tif",
        band_values("dem", 64, 64),
        crs="EPSG:32643",
        transform=from_origin(500000.0, 4000000.0, 10.0, 10.0),
        nodata=RASTER_NODATA,
        descriptions=None,
    )
    assert inspect_scene(folder, ["dem"]).rasters["dem"].descriptions == (None, None)


def _rewrite_dem(
    folder: Path, *, crs: str = "EPSG:32643", origin: tuple[float, float] = (500000.0, 4000000.0)
) -> None:
    write_raster(
        folder / "dem.tif",
        band_values("dem", 64, 64),
        crs=crs,
        transform=from_origin(origin[0], origin[1], 10.0, 10.0),
        nodata=RASTER_NODATA,
        descriptions=BANDS["dem"],
    )


def test_different_crs_within_a_scene(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["optical", "dem"])
    _rewrite_dem(folder, crs="EPSG:32644")
    with pytest.raises(InputError, match=r"dem\.tif has CRS EPSG:32644 but optical\.tif has EPSG:32643"):
        inspect_scene(folder, ["optical", "dem"])


def test_different_grid_within_a_scene(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["optical", "dem"])
    _rewrite_dem(folder, origin=(500005.0, 4000000.0))
    with pytest.raises(InputError, match=r"dem\.tif is on grid 64x64 px .* must share one grid"):
        inspect_scene(folder, ["optical", "dem"])


def test_empty_intersection_within_a_scene(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["optical", "dem"])
    _rewrite_dem(folder, origin=(600000.0, 4000000.0))
    with pytest.raises(
        InputError, match=r"dem\.tif .* does not overlap optical\.tif .* intersection .* is empty"
    ):
        inspect_scene(folder, ["optical", "dem"])


def test_file_that_is_not_a_raster(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["optical", "sar"])
    (folder / "sar.tif").write_bytes(b"this is not a GeoTIFF \x00\x01\x02" * 20)
    with pytest.raises(
        InputError, match=r"sar\.tif: not a readable raster \(expected a GeoTIFF with the 2 bands"
    ):
        inspect_scene(folder, ["optical", "sar"])


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_raster_without_crs(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["thermal"])
    with rasterio.open(
        folder / "thermal.tif", "w", driver="GTiff", height=64, width=64, count=1, dtype="float32"
    ) as dst:
        dst.write(band_values("thermal", 64, 64))
    with pytest.raises(InputError, match=r"thermal\.tif has no CRS"):
        inspect_scene(folder, ["thermal"])


def test_missing_scene_folder_and_scene_json(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"scene folder .*nowhere not found"):
        inspect_scene(tmp_path / "nowhere", ["dem"])
    folder = write_scene(tmp_path / "s", modalities=["dem"])
    (folder / "scene.json").unlink()
    with pytest.raises(
        InputError, match=r"has no scene\.json; expected a JSON object with at least 'region'"
    ):
        inspect_scene(folder, ["dem"])


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"region": ""}, r"'region' is ''; expected a non-empty region code"),
        ({"region": 7}, r"'region' is 7"),
        ({"year": "2020"}, r"'year' is '2020'; expected a positive integer"),
        ({"pixel_size": -10}, r"'pixel_size' is -10; expected a positive number"),
        ({"pixel_size": 30.0}, r"'pixel_size' is 30.0 but optical\.tif has 10.0 m"),
        ({"height": 65}, r"'height' is 65 but optical\.tif has 64 px"),
        ({"crs": "EPSG:32633"}, r"'crs' is 'EPSG:32633' but optical\.tif is in EPSG:32643"),
        ({"crs": "not a crs"}, r"'crs' is 'not a crs'; expected a CRS string"),
    ],
)
def test_bad_scene_json_values(tmp_path: Path, metadata: dict[str, object], message: str) -> None:
    folder = write_scene(tmp_path / "s", modalities=["optical"], metadata=metadata)
    with pytest.raises(InputError, match=message):
        inspect_scene(folder, ["optical"])


def test_scene_json_that_is_not_json(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["optical"])
    (folder / "scene.json").write_text("[1, 2")
    with pytest.raises(InputError, match=r"scene\.json: not valid JSON"):
        inspect_scene(folder, ["optical"])
    (folder / "scene.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"scene\.json: expected a JSON object, got list"):
        inspect_scene(folder, ["optical"])


def test_labels_required_optional_and_checked(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["dem"], labels=False)
    with pytest.raises(InputError, match=r"has no labels\.tif; expected 1 band uint8 labels"):
        inspect_scene(folder, ["dem"])
    assert not inspect_scene(folder, ["dem"], labels="optional").has_labels
    transform = from_origin(500000.0, 4000000.0, 10.0, 10.0)
    wrong = np.full((1, 64, 64), 0.5, dtype=np.float32)
    write_raster(
        folder / "labels.tif", wrong, crs="EPSG:32643", transform=transform, nodata=None, descriptions=None
    )
    with pytest.raises(InputError, match=r"labels\.tif has dtype float32; expected integer"):
        inspect_scene(folder, ["dem"])
    odd = np.full((1, 64, 64), 7, dtype=np.uint8)
    write_raster(
        folder / "labels.tif", odd, crs="EPSG:32643", transform=transform, nodata=None, descriptions=None
    )
    with pytest.raises(InputError, match=r"labels\.tif holds label value\(s\) \[7\]"):
        inspect_scene(folder, ["dem"])


def test_unknown_or_no_modality_is_a_config_error(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["dem"])
    with pytest.raises(ConfigError, match="unknown modality 'lidar'"):
        inspect_scene(folder, ["lidar"])
    with pytest.raises(ConfigError, match="modalities is empty"):
        inspect_scene(folder, [])


def test_scene_with_nodata_everywhere(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["optical", "dem"], nodata_box=(0, 64, 0, 64))
    with pytest.raises(InputError, match=r"scene .*s has no valid pixel: every pixel is nodata"):
        inspect_scene(folder, ["optical", "dem"])
    # Nodata in one modality and label nodata in the other half leave nothing valid either.
    folder = write_scene(
        tmp_path / "t",
        modalities=["optical", "dem"],
        nodata_box=(0, 64, 0, 32),
        label_nodata_box=(0, 64, 32, 64),
    )
    with pytest.raises(InputError, match="has no valid pixel"):
        inspect_scene(folder, ["optical", "dem"])
    assert not inspect_scene(folder, ["optical", "dem"], labels="ignore").has_labels


def test_valid_pixel_check_on_a_large_scene_finds_a_tiny_valid_patch(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", size=(600, 600), modalities=["thermal"], labels=False, stats=False)
    data = np.full((1, 600, 600), RASTER_NODATA, dtype=np.float32)
    data[0, 301, 301] = 250.0  # one valid pixel, missed by the decimated read
    transform = from_origin(500000.0, 4000000.0, 10.0, 10.0)
    write_raster(
        folder / "thermal.tif",
        data,
        crs="EPSG:32643",
        transform=transform,
        nodata=RASTER_NODATA,
        descriptions=None,
    )
    assert inspect_scene(folder, ["thermal"], labels="ignore").height == 600
    data[0, 301, 301] = np.nan
    write_raster(
        folder / "thermal.tif",
        data,
        crs="EPSG:32643",
        transform=transform,
        nodata=RASTER_NODATA,
        descriptions=None,
    )
    with pytest.raises(InputError, match="has no valid pixel"):
        inspect_scene(folder, ["thermal"], labels="ignore")


def test_stats_from_stats_json_and_streamed_when_missing(tmp_path: Path) -> None:
    kwargs = {"modalities": ALL, "nodata_box": (0, 5, 0, 7), "nan_box": (10, 30, 3, 9)}
    with_json = inspect_scene(write_scene(tmp_path / "a", **kwargs), ALL)  # type: ignore[arg-type]
    without = inspect_scene(write_scene(tmp_path / "b", stats=False, **kwargs), ALL)  # type: ignore[arg-type]
    recorded = json.loads((tmp_path / "a" / "stats.json").read_text())
    from_json = read_scene_stats(with_json)
    streamed = read_scene_stats(without)
    for modality in ALL:
        assert from_json.modalities[modality].mean == tuple(recorded[modality]["mean"])
        got, want = streamed.modalities[modality], from_json.modalities[modality]
        assert got.bands == BANDS[modality]
        assert got.count == want.count
        np.testing.assert_allclose(got.mean, want.mean, rtol=1e-9)
        np.testing.assert_allclose(got.std, want.std, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got.min, want.min)
        np.testing.assert_allclose(got.max, want.max)
    assert from_json.modalities["optical"].count == 64 * 64 - 35
    assert from_json.modalities["insar"].count == 64 * 64 - 120


def test_malformed_stats_json(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "s", modalities=["dem"])
    info = inspect_scene(folder, ["dem"])
    recorded = json.loads((folder / "stats.json").read_text())
    recorded["dem"]["std"] = [1.0]
    (folder / "stats.json").write_text(json.dumps(recorded))
    with pytest.raises(InputError, match=r"stats\.json: 'dem\.std' is \[1\.0\]; expected 2 finite numbers"):
        read_scene_stats(info)
    recorded["dem"]["std"] = [1.0, 1.0]
    recorded["dem"]["count"] = -1
    (folder / "stats.json").write_text(json.dumps(recorded))
    with pytest.raises(InputError, match=r"'dem\.count' is -1; expected a non-negative integer"):
        read_scene_stats(info)
    (folder / "stats.json").write_text("{")
    with pytest.raises(InputError, match=r"stats\.json: not valid JSON"):
        read_scene_stats(info)
