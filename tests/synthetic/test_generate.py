"""Tests of the synthetic glacier world (glaciermap.synthetic.generate and its helper modules).

Scenes are generated once per session (about one second each for 512 x 512 pixels).
"""

from __future__ import annotations

import hashlib
import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from glaciermap.baselines.band_ratio import band_ratio_mask
from glaciermap.constants import BANDS, CLEAN_ICE, DEBRIS_ICE, IGNORE_INDEX, RASTER_NODATA, SCENE_FILES
from glaciermap.errors import ConfigError
from glaciermap.synthetic import render as synthetic_render
from glaciermap.synthetic.generate import (
    GENERATOR_VERSION,
    GLACIER_FILE,
    PRESETS,
    REGION_CODES,
    STATS_FILE,
    generate_scene,
)
from glaciermap.synthetic.noise import PeriodicNoise, bspline_upsample, hash_uniforms
from glaciermap.synthetic.presets import get_preset, sun_position, utm_epsg

FLOAT_MODALITIES = ("optical", "dem", "thermal", "sar", "insar")
RASTERS = [*(SCENE_FILES[m] for m in (*FLOAT_MODALITIES, "labels")), GLACIER_FILE]  # sar_cross: not simulated
ALL_FILES = [*RASTERS, STATS_FILE, "scene.json"]
FEATURES = {"size": (200, 272), "seed": 3, "clouds": True, "nodata_stripes": True}


def _digest(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ALL_FILES}


def _read(folder: Path, name: str) -> np.ndarray:
    with rasterio.open(folder / name) as src:
        return src.read()


@pytest.fixture(scope="session")
def karakoram(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default scene (debris-rich Karakoram preset), 512 x 512 px at 10 m."""
    return generate_scene(tmp_path_factory.mktemp("synthetic") / "karakoram", size=(512, 512), seed=0)


@pytest.fixture(scope="session")
def alaska(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A maritime scene with fjords, calving fronts and ice melange."""
    return generate_scene(
        tmp_path_factory.mktemp("synthetic") / "alaska", preset="alaska", size=(512, 512), seed=0
    )


@pytest.fixture(scope="session")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small non-square scene with thin cloud and nodata stripes."""
    return generate_scene(tmp_path_factory.mktemp("synthetic") / "features", **FEATURES)


# --- determinism and windowing ----------------------------------------------------------------------


def test_same_arguments_give_identical_bytes_and_another_seed_differs(features: Path, tmp_path: Path) -> None:
    again = generate_scene(tmp_path / "again", **FEATURES)
    assert _digest(again) == _digest(features)
    other = generate_scene(tmp_path / "other", **{**FEATURES, "seed": 4})
    changed = {k for k, v in _digest(other).items() if _digest(features)[k] != v}
    assert set(RASTERS) - {GLACIER_FILE} <= changed


def test_window_size_never_changes_a_value(features: Path, tmp_path: Path) -> None:
    """Computed in 56 x 56 windows (not aligned to anything) the scene equals the one-window scene."""
    small = generate_scene(tmp_path / "small_blocks", **FEATURES, block_size=56)
    for name in RASTERS:
        np.testing.assert_array_equal(_read(small, name), _read(features, name), err_msg=name)


def test_noise_and_interpolation_do_not_depend_on_the_window() -> None:
    rows = np.arange(-3, 61, dtype=np.int64)[:, None]
    cols = np.arange(5, 45, dtype=np.int64)[None, :]
    whole = hash_uniforms(rows, cols, key=123, count=2)
    top = hash_uniforms(rows[:20], cols, key=123, count=2)
    np.testing.assert_array_equal(whole[1][:20], top[1])
    assert 0.0 < whole[0].min() and whole[0].max() < 1.0 and abs(float(whole[0].mean()) - 0.5) < 0.05
    noise = PeriodicNoise(seed=1, periods=(64, 47))
    np.testing.assert_array_equal(noise.sample(2, rows, cols)[30:], noise.sample(2, rows[30:], cols))
    grid = np.random.default_rng(0).standard_normal((20, 20)).astype(np.float32)
    u = np.linspace(2.0, 16.0, 64)
    v = np.linspace(2.0, 16.0, 40)
    (full,) = bspline_upsample([grid], u, v)
    (part,) = bspline_upsample([grid], u[10:30], v[7:])
    np.testing.assert_array_equal(full[10:30, 7:], part)
    (const,) = bspline_upsample([np.full((20, 20), 7.0, dtype=np.float32)], u, v)
    np.testing.assert_allclose(const, 7.0, rtol=1e-6)


def test_a_failure_leaves_no_scene_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(self: object, *args: int) -> None:
        calls.append(args)
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic_render.SceneRenderer, "render", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_scene(tmp_path / "scene", size=(96, 96))
    assert calls and list((tmp_path / "scene").iterdir()) == []


# --- files, grid, metadata ------------------------------------------------------------------------


def test_every_file_shares_crs_grid_and_has_nodata_bands_and_dtypes(features: Path) -> None:
    meta = json.loads((features / "scene.json").read_text())
    crs = f"EPSG:{utm_epsg(meta['center_lat'], meta['center_lon'])}"
    assert meta["crs"] == crs == "EPSG:32643"
    grid = None
    for name in RASTERS:
        with rasterio.open(features / name) as src:
            assert src.crs.to_string() == crs, name
            assert (src.height, src.width) == (200, 272)
            assert (src.transform.a, src.transform.e) == (10.0, -10.0)
            grid = grid or src.transform
            assert src.transform == grid, name
            assert src.compression.name.lower() == "deflate"
            assert list(src.transform)[:6] == meta["transform"]
    for modality in FLOAT_MODALITIES:
        with rasterio.open(features / SCENE_FILES[modality]) as src:
            assert src.descriptions == BANDS[modality]
            assert set(src.dtypes) == {"float32"} and src.nodata == RASTER_NODATA
    with rasterio.open(features / SCENE_FILES["labels"]) as src:
        assert src.dtypes == ("uint8",) and src.nodata == IGNORE_INDEX
    with rasterio.open(features / GLACIER_FILE) as src:
        assert src.dtypes == ("uint32",) and src.nodata == 0


def test_big_scenes_are_tiled_256(karakoram: Path) -> None:
    for name in RASTERS:
        with rasterio.open(karakoram / name) as src:
            assert src.profile["tiled"] and src.block_shapes[0] == (256, 256), name


def test_nodata_stripes_are_consistent_across_files(features: Path) -> None:
    labels = _read(features, SCENE_FILES["labels"])[0]
    glaciers = _read(features, GLACIER_FILE)[0]
    stripes = _read(features, SCENE_FILES["optical"])[0] == RASTER_NODATA
    assert 0.01 < stripes.mean() < 0.2
    for modality in FLOAT_MODALITIES:
        data = _read(features, SCENE_FILES[modality])
        assert np.array_equal((data == RASTER_NODATA).all(axis=0), stripes), modality
        assert np.isfinite(data).all() and not (data[:, ~stripes] == RASTER_NODATA).any()
    assert (labels[stripes] == IGNORE_INDEX).all() and (glaciers[stripes] == 0).all()
    # thick cloud is ignored as well, so there are more 255 labels than stripe pixels
    assert (labels == IGNORE_INDEX).sum() > stripes.sum()
    assert set(np.unique(labels)) <= {0, CLEAN_ICE, DEBRIS_ICE, IGNORE_INDEX}


def test_scene_json_and_stats_json(features: Path) -> None:
    meta = json.loads((features / "scene.json").read_text())
    preset = get_preset("karakoram")
    assert meta["region_code"] == "HMA" and meta["preset"] == "karakoram"
    assert (meta["year"], meta["sensor"]) == (preset.year, preset.sensor)
    assert (meta["center_lat"], meta["center_lon"]) == (preset.center_lat, preset.center_lon)
    assert (meta["height"], meta["width"], meta["pixel_size"], meta["seed"]) == (200, 272, 10.0, 3)
    assert meta["generator_version"] == GENERATOR_VERSION
    az, _ = sun_position(preset.center_lat, preset.day_of_year)
    assert meta["sun_azimuth"] == pytest.approx(az, abs=1e-3) and 0 < meta["sun_elevation"] < 90
    labels = _read(features, SCENE_FILES["labels"])[0]
    assert meta["class_area_km2"]["debris_ice"] == pytest.approx((labels == DEBRIS_ICE).sum() * 1e-4)
    stats = json.loads((features / STATS_FILE).read_text())
    assert set(stats) == set(FLOAT_MODALITIES)
    for modality in FLOAT_MODALITIES:
        data = _read(features, SCENE_FILES[modality]).astype(np.float64)
        valid = data[:, (data != RASTER_NODATA).all(axis=0)]
        entry = stats[modality]
        assert entry["count"] == valid.shape[1]
        np.testing.assert_allclose(entry["mean"], valid.mean(axis=1), rtol=1e-6)
        np.testing.assert_allclose(entry["std"], valid.std(axis=1), rtol=1e-5)
        np.testing.assert_allclose(entry["min"], valid.min(axis=1))
        np.testing.assert_allclose(entry["max"], valid.max(axis=1))


# --- the papers' claims ----------------------------------------------------------------------------


def test_band_ratio_finds_clean_ice_but_misses_debris_on_the_default_scene(karakoram: Path) -> None:
    """GlaViTU paper, "Baselines": red/swir1 > 3.2 and blue > 0.17 maps clean ice, not debris-covered ice."""
    optical = _read(karakoram, SCENE_FILES["optical"])
    labels = _read(karakoram, SCENE_FILES["labels"])[0]
    flagged = band_ratio_mask(optical)
    clean, debris = labels == CLEAN_ICE, labels == DEBRIS_ICE
    iou = (flagged & clean).sum() / (flagged | clean).sum()
    recall = (flagged & debris).sum() / debris.sum()
    assert debris.sum() > 0.05 * (clean | debris).sum()  # a debris-rich scene
    assert iou >= 0.8
    assert recall < 0.2


def test_band_ratio_flags_open_water_and_melange_on_the_maritime_scene(alaska: Path) -> None:
    optical = _read(alaska, SCENE_FILES["optical"])
    labels = _read(alaska, SCENE_FILES["labels"])[0]
    elevation = _read(alaska, SCENE_FILES["dem"])[0]
    sea = (elevation <= 0.5) & (labels == 0)
    assert sea.mean() > 0.03
    flagged = band_ratio_mask(optical)
    assert flagged[sea].mean() > 0.3  # melange and turbid water pass as ice
    # calving fronts: glacier pixels right next to the sea
    front = ndimage.binary_dilation(sea, iterations=2) & (labels > 0)
    assert front.sum() > 20


def test_debris_lies_on_gentle_slopes(karakoram: Path) -> None:
    """Karakoram paper: 68.1 % of the debris-covered area lies below 10 degrees of slope."""
    slope = _read(karakoram, SCENE_FILES["dem"])[1]
    labels = _read(karakoram, SCENE_FILES["labels"])[0]
    debris = labels == DEBRIS_ICE
    assert (slope[debris] < 10.0).mean() >= 0.65
    assert np.median(slope[debris]) < np.median(slope[labels == CLEAN_ICE])


def test_glacier_inventory_content(karakoram: Path) -> None:
    """Cirque glaciers under 0.1 km2, valley glaciers over 1 km2, nunataks and complexes split at divides."""
    labels = _read(karakoram, SCENE_FILES["labels"])[0]
    ids = _read(karakoram, GLACIER_FILE)[0].astype(np.int64)
    ice = (labels == CLEAN_ICE) | (labels == DEBRIS_ICE)
    assert np.array_equal(ids > 0, ice)
    area_km2 = np.bincount(ids.ravel())[1:] * 1e-4
    area_km2 = area_km2[area_km2 > 0]
    assert (area_km2 < 0.1).sum() >= 3
    assert (area_km2 > 1.0).sum() >= 1
    _, n_holes = ndimage.label(ndimage.binary_fill_holes(ice) & ~ice)
    assert n_holes >= 3  # nunataks
    pairs = set()
    for a, b in ((ids[:, 1:], ids[:, :-1]), (ids[1:], ids[:-1])):
        touch = (a != b) & (a > 0) & (b > 0)
        pairs |= {tuple(sorted(p)) for p in zip(a[touch].tolist(), b[touch].tolist(), strict=True)}
    assert len(pairs) >= 2  # glaciers of a complex meet at ice divides


def test_physical_signals_separate_debris_from_rock(karakoram: Path) -> None:
    optical = _read(karakoram, SCENE_FILES["optical"])
    thermal = _read(karakoram, SCENE_FILES["thermal"])[0]
    coherence = _read(karakoram, SCENE_FILES["insar"]).mean(axis=0)
    sar = _read(karakoram, SCENE_FILES["sar"])
    labels = _read(karakoram, SCENE_FILES["labels"])[0]
    blue, red, nir, swir1 = optical[0], optical[2], optical[3], optical[4]
    debris, clean = labels == DEBRIS_ICE, labels == CLEAN_ICE
    # rock next to the debris tongues, excluding snow and water (both dark in SWIR)
    near = ndimage.binary_dilation(debris, iterations=25) & (labels == 0) & (swir1 > 0.1)
    assert near.sum() > 1000
    ratio = red / swir1
    assert np.median(ratio[clean]) > 3.2 and np.median(blue[clean]) > 0.3
    assert np.median(ratio[debris]) < 1.5 and abs(np.median(ratio[debris]) - np.median(ratio[near])) < 0.3
    assert abs(np.median(nir[debris]) - np.median(nir[near])) < 0.05  # spectrally almost the same ...
    assert 1.5 < np.median(thermal[near]) - np.median(thermal[debris]) < 10.0  # ... but a few K cooler
    assert np.median(coherence[clean]) < 0.35 and np.median(coherence[debris]) < 0.5
    assert np.median(coherence[near]) > 0.55  # stable rock
    assert 0.005 < np.median(sar) < 0.5 and np.all(sar > 0)
    # seasonal snow patches outside the glaciers are the band ratio's false positives
    assert (band_ratio_mask(optical) & (labels == 0)).sum() > 200


def test_presets_have_distinct_character(tmp_path: Path) -> None:
    assert {"karakoram", "svalbard", "alaska", "alps"} <= set(PRESETS)
    seen = {}
    for name in ("svalbard", "alps"):
        folder = generate_scene(tmp_path / name, preset=name, size=(192, 192), seed=1)
        meta = json.loads((folder / "scene.json").read_text())
        assert meta["region_code"] == PRESETS[name].region_code and meta["preset"] == name
        seen[name] = meta
    assert seen["svalbard"]["crs"] == "EPSG:32633"  # the Svalbard exception of the UTM grid
    assert seen["alps"]["crs"] == "EPSG:32632"
    assert seen["svalbard"]["sun_elevation"] < seen["alps"]["sun_elevation"] - 15
    assert seen["svalbard"]["class_area_km2"]["debris_ice"] < 0.05 * sum(
        seen["svalbard"]["class_area_km2"].values()
    )


def test_region_codes_projection_and_sun() -> None:
    assert list(REGION_CODES) == sorted(REGION_CODES) and len(REGION_CODES) == 11
    assert all(p.region_code in REGION_CODES for p in PRESETS.values())
    assert utm_epsg(35.75, 76.4) == 32643 and utm_epsg(-45.0, 170.0) == 32759
    assert utm_epsg(60.5, 5.0) == 32632 and utm_epsg(78.9, 11.0) == 32633
    az, el = sun_position(0.0, 80, solar_hour=12.0)  # equinox noon at the equator
    assert el == pytest.approx(90.0, abs=1.5)
    az, el = sun_position(46.5, 172, solar_hour=10.5)  # June morning in the Alps: south-east, high
    assert 100 < az < 160 and 55 < el < 68
    with pytest.raises(ConfigError, match="UTM"):
        utm_epsg(88.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preset": "atlantis"}, "alaska, alps, karakoram, svalbard"),
        ({"size": (32, 512)}, "between 64"),
        ({"size": (0, -5)}, "between 64"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"pixel_size": 0.0}, "pixel_size"),
        ({"year": 1850}, "year"),
    ],
)
def test_bad_arguments_raise_config_errors_and_write_nothing(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        generate_scene(tmp_path / "scene", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "scene").exists()


def test_plot_scene_example_draws_the_docs_figure(features: Path, tmp_path: Path) -> None:
    """``examples/plot_scene.py`` (which makes docs/img/synthetic_scene.png) runs on a scene folder."""
    from PIL import Image

    script = Path(__file__).resolve().parents[2] / "examples" / "plot_scene.py"
    module = runpy.run_path(str(script))
    out = tmp_path / "figure.png"
    module["main"]([str(out), "--scene", str(features), "--full", "--dpi", "40"])
    with Image.open(out) as img:
        assert img.size == (600, 416) and img.mode == "P"
        assert len(img.getcolors(256) or []) > 50  # not a blank canvas


def test_thin_cloud_brightens_optical_and_cools_thermal_but_not_radar(features: Path, tmp_path: Path) -> None:
    clear = generate_scene(tmp_path / "clear", **{**FEATURES, "clouds": False})
    labels = _read(features, SCENE_FILES["labels"])[0]
    stripes = _read(features, SCENE_FILES["optical"])[0] == RASTER_NODATA
    thick = (labels == IGNORE_INDEX) & ~stripes
    assert thick.sum() > 100
    cloudy_opt, clear_opt = _read(features, "optical.tif"), _read(clear, "optical.tif")
    assert (cloudy_opt[4][thick] > clear_opt[4][thick]).mean() > 0.95  # swir1 up: the ratio suffers
    assert (cloudy_opt[0][thick] > 0.3).mean() > 0.9
    assert np.median(_read(features, "thermal.tif")[0][thick]) < np.median(
        _read(clear, "thermal.tif")[0][thick]
    )
    for name in ("sar.tif", "insar.tif", "dem.tif"):
        np.testing.assert_array_equal(_read(features, name)[:, ~stripes], _read(clear, name)[:, ~stripes])
    clear_labels = _read(clear, SCENE_FILES["labels"])[0]
    np.testing.assert_array_equal(labels[~thick & ~stripes], clear_labels[~thick & ~stripes])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_smallest_scenes_of_every_preset(tmp_path: Path, preset: str) -> None:
    """64 px scenes: the shadow ray march reaches past the coarse grid at low sun (Svalbard)."""
    folder = generate_scene(tmp_path / preset, preset=preset, size=(64, 96), seed=11)
    labels = _read(folder, SCENE_FILES["labels"])[0]
    optical = _read(folder, SCENE_FILES["optical"])
    assert labels.shape == (64, 96) and set(np.unique(labels)) <= {0, 1, 2}
    assert np.isfinite(optical).all() and 0.0 < optical.min() and optical.max() <= 1.6


def test_an_output_folder_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create the scene folder"):
        generate_scene(target, size=(64, 64))
    assert target.read_text() == "not a folder"
