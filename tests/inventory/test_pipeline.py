"""End-to-end inventory on the hand-made scene of :mod:`tests.inventory.scenes` (values computed by hand)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import Geod, Transformer
from rasterio.features import rasterize
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import Point

from glaciermap.errors import ConfigError, InputError
from glaciermap.inventory import GLACIER_COLUMNS, build_inventory, inputs, pipeline
from tests.data import inventory as scenes


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return scenes.write_scene(tmp_path_factory.mktemp("scene"))


@pytest.fixture(scope="module")
def inventory(scene: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("out") / "inv.gpkg"
    return build_inventory(*scene, out, date="2021-08-15", dem_source="hand-made DEM")


def _by_position(glaciers: gpd.GeoDataFrame) -> dict[str, pd.Series]:
    """Name the glaciers of the scene by where they are."""
    named = {}
    for _, row in glaciers.iterrows():
        c = row.geometry.centroid
        col = (c.x - scenes.ORIGIN[0]) / scenes.PIXEL
        row_ = (scenes.ORIGIN[1] - c.y) / scenes.PIXEL
        name = "ring" if row_ > 100 else ("A" if col < 260 else "B")
        named[name] = row
    return named


def test_glaciers_areas_and_split(inventory) -> None:  # type: ignore[no-untyped-def]
    g = inventory.glaciers
    assert list(g.columns) == [*GLACIER_COLUMNS, "geometry"]
    assert len(g) == 3  # A, B, the ring glacier; the 9-pixel speck is below 0.01 km2
    named = _by_position(g)
    assert set(named) == {"A", "B", "ring"}
    assert named["A"].area_km2 == pytest.approx(1.0)
    assert named["B"].area_km2 == pytest.approx(1.0)
    assert named["ring"].area_km2 == pytest.approx(0.15)
    assert named["A"].complex_id == named["B"].complex_id != named["ring"].complex_id
    # The divide is the col: A is columns 60-259, B 260-459.
    minx, _, maxx, _ = named["A"].geometry.bounds
    assert (minx, maxx) == (scenes.ORIGIN[0] + 600.0, scenes.ORIGIN[0] + 2600.0)
    assert named["B"].geometry.bounds[0] == scenes.ORIGIN[0] + 2600.0
    assert named["A"].area_debris_km2 == pytest.approx(0.15)
    assert named["B"].area_debris_km2 == pytest.approx(0.15)
    assert named["ring"].area_debris_km2 == 0.0
    assert g.geometry.is_valid.all()
    assert inventory.summary["n_glaciers"] == 3
    assert inventory.summary["area_km2"] == pytest.approx(2.15)


def test_hole_kept(inventory) -> None:  # type: ignore[no-untyped-def]
    ring = _by_position(inventory.glaciers)["ring"].geometry
    assert ring.geom_type == "Polygon"
    assert len(ring.interiors) == 1
    hole_area = abs(gpd.GeoSeries([type(ring)(ring.interiors[0])]).area.iloc[0])
    assert hole_area == pytest.approx(100 * scenes.PIXEL**2)


def test_elevation_statistics_equal_direct_values(inventory) -> None:  # type: ignore[no-untyped-def]
    dem = scenes.elevation().astype(np.float64)
    for _, row in inventory.glaciers.iterrows():
        mask = rasterize([(row.geometry, 1)], out_shape=dem.shape, transform=scenes.TRANSFORM).astype(bool)
        z = dem[mask]
        assert row.zmin_m == pytest.approx(z.min(), abs=1e-3)
        assert row.zmax_m == pytest.approx(z.max(), abs=1e-3)
        assert row.zmean_m == pytest.approx(z.mean(), abs=1e-3)
        assert row.zmed_m == pytest.approx(np.median(z), abs=1e-3)
        bands = {int(k): v for k, v in json.loads(row.hypso_50m).items()}
        assert all(k % 50 == 0 for k in bands)
        assert sum(bands.values()) == pytest.approx(row.area_km2)
        expected = np.bincount((np.floor(z / 50) - np.floor(z.min() / 50)).astype(int)) * 1e-4
        assert sorted(bands.values()) == pytest.approx(sorted(expected[expected > 0]))
        assert row.dem_cover == pytest.approx(1.0)


def test_terrain_attributes(inventory) -> None:  # type: ignore[no-untyped-def]
    named = _by_position(inventory.glaciers)
    # dz/dx = +-0.25 along the valley, dz/dy = 0.0004 (y - 450) across it (Horn's differences are exact on
    # these polynomials except in the column at the col).
    y = (np.arange(20, 70) + 0.5) * scenes.PIXEL
    expected_slope = float(np.degrees(np.arctan(np.hypot(0.25, 0.0004 * (y - 450.0)))).mean())
    for name, aspect, sector in (("A", 270.0, 7), ("B", 90.0, 3)):
        row = named[name]
        assert row.slope_deg == pytest.approx(expected_slope, abs=0.1)
        assert row.aspect_deg == pytest.approx(aspect, abs=0.5)
        assert row.aspect_sec == sector
        # Longest path from the terminus: at least the 1990 m between the first and last column centres,
        # at most that plus the (sqrt(2) - 1) * 250 m an 8-connected path adds for the half width.
        assert 1990.0 <= row.lmax_m <= 1990.0 + 0.415 * 250.0


def test_locations_dem_source_date(inventory) -> None:  # type: ignore[no-untyped-def]
    to_utm = Transformer.from_crs("EPSG:4326", scenes.CRS, always_xy=True)
    for _, row in inventory.glaciers.iterrows():
        assert row.geometry.contains(Point(*to_utm.transform(row.cenlon, row.cenlat)))
        assert row.geometry.buffer(1.0).contains(Point(*to_utm.transform(row.termlon, row.termlat)))
        assert row.dem_source == "hand-made DEM"
        assert row.src_date == "2021-08-15"
    named = _by_position(inventory.glaciers)
    # A's terminus is its west end (the lowest column), B's its east end.
    tx_a, _ = to_utm.transform(named["A"].termlon, named["A"].termlat)
    tx_b, _ = to_utm.transform(named["B"].termlon, named["B"].termlat)
    assert tx_a == pytest.approx(scenes.ORIGIN[0] + 605.0, abs=0.01)
    assert tx_b == pytest.approx(scenes.ORIGIN[0] + 4595.0, abs=0.01)


def test_uncertainty_by_buffer(inventory) -> None:  # type: ignore[no-untyped-def]
    named = _by_position(inventory.glaciers)
    # A is a 2000 x 500 m rectangle; +/-10 m buffers with round joins (4 segments per quarter circle):
    # A+ = 2020 * 520 - 4 d^2 + (area of the 16-gon of radius d); A- = 1980 * 480.
    d = 10.0
    polygon_circle = 16 / 2 * d * d * math.sin(2 * math.pi / 16)  # the four quarter-circle joins
    expected = ((2020 * 520 - 4 * d * d + polygon_circle) - 1980 * 480) / 2 / 1e6
    assert named["A"].area_unc_km2 == pytest.approx(expected, rel=1e-9)
    assert inventory.summary["area_unc_km2"] == pytest.approx(inventory.glaciers.area_unc_km2.sum())
    assert 0 < named["A"].debris_unc_km2 < named["A"].area_debris_km2


def test_written_layers_and_csv(inventory) -> None:  # type: ignore[no-untyped-def]
    gpkg, csv = inventory.gpkg_path, inventory.csv_path
    assert gpkg.exists() and csv.exists() and csv.name == "inv.csv"
    glaciers = gpd.read_file(gpkg, layer="glaciers")
    debris = gpd.read_file(gpkg, layer="debris")
    divides = gpd.read_file(gpkg, layer="divides")
    assert len(glaciers) == 3 and glaciers.crs.to_epsg() == 32643
    assert sorted(debris.area_km2.round(6)) == [0.15, 0.15]
    assert len(divides) == 1
    assert divides.length_m.iloc[0] == pytest.approx(500.0)
    assert divides.geometry.iloc[0].length == pytest.approx(500.0)
    table = pd.read_csv(csv)
    assert list(table.columns) == list(GLACIER_COLUMNS)
    assert table.area_km2.sum() == pytest.approx(2.15)
    assert not list(gpkg.parent.glob(".*partial*"))


def test_dem_nodata_inside_a_glacier(tmp_path: Path) -> None:
    dem = scenes.elevation()
    dem[30:40, 100:150] = -9999.0  # 500 pixels of glacier A without elevation
    classes, dem_path = scenes.write_scene(tmp_path, dem=dem)
    inv = build_inventory(classes, dem_path, None)
    named = _by_position(inv.glaciers)
    assert len(inv.glaciers) == 3
    a = named["A"]
    assert a.area_km2 == pytest.approx(1.0)
    assert a.dem_cover == pytest.approx(1 - 500 / 10000)
    valid = scenes.elevation()[20:70, 60:260].astype(np.float64).copy()
    valid[10:20, 40:90] = np.nan
    assert a.zmean_m == pytest.approx(np.nanmean(valid), abs=1e-3)
    assert a.zmin_m == pytest.approx(np.nanmin(valid), abs=1e-3)
    assert a.geometry.bounds[2] == scenes.ORIGIN[0] + 2600.0  # still split at the col


def test_dem_nodata_everywhere_is_an_error(tmp_path: Path) -> None:
    classes, dem = scenes.write_scene(
        tmp_path, dem=np.full((scenes.HEIGHT, scenes.WIDTH), -9999.0, np.float32)
    )
    with pytest.raises(InputError, match="no valid elevation"):
        build_inventory(classes, dem, tmp_path / "inv.gpkg")
    assert not (tmp_path / "inv.gpkg").exists()


def test_dem_in_geographic_crs_is_reprojected(tmp_path: Path, inventory) -> None:  # type: ignore[no-untyped-def]
    classes, dem_utm = scenes.write_scene(tmp_path)
    with rasterio.open(dem_utm) as src:
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds, resolution=(0.0001, 0.0001)
        )
        out = np.full((height, width), -9999.0, np.float32)
        reproject(
            src.read(1),
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=transform,
            dst_crs="EPSG:4326",
            resampling=Resampling.bilinear,
            src_nodata=-9999.0,
            dst_nodata=-9999.0,
        )
    dem_geo = scenes.write_raster(
        tmp_path / "dem_geo.tif", out, transform=transform, crs="EPSG:4326", nodata=-9999.0
    )
    inv = build_inventory(classes, dem_geo, None)
    assert inv.summary["dem_reprojected"] is True
    ours, ref = _by_position(inv.glaciers), _by_position(inventory.glaciers)
    for name in ("A", "B", "ring"):
        assert ours[name].area_km2 == pytest.approx(ref[name].area_km2)
        assert ours[name].zmean_m == pytest.approx(ref[name].zmean_m, abs=1.0)
        assert ours[name].zmed_m == pytest.approx(ref[name].zmed_m, abs=1.5)
        assert ours[name].slope_deg == pytest.approx(ref[name].slope_deg, abs=0.5)


def test_geographic_class_raster_areas_in_km2(tmp_path: Path) -> None:
    # The same pixels on a 0.0001-degree grid at 35.8 N: areas must be ellipsoidal, in km2.
    transform = rasterio.Affine(0.0001, 0, 76.0, 0, -0.0001, 35.8)
    cls_path = scenes.write_raster(tmp_path / "classes.tif", scenes.classes(), transform, "EPSG:4326", 255)
    dem_path = scenes.write_raster(tmp_path / "dem.tif", scenes.elevation(), transform, "EPSG:4326", -9999.0)
    inv = build_inventory(cls_path, dem_path, tmp_path / "geo.gpkg", min_area_km2=0.001)
    geod = Geod(ellps="WGS84")
    assert len(inv.glaciers) == 3
    for _, row in inv.glaciers.iterrows():
        geodesic = abs(geod.geometry_area_perimeter(row.geometry)[0]) / 1e6
        assert row.area_km2 == pytest.approx(geodesic, rel=1e-4)
    # 21,500 glacier pixels of about the area of the middle row's pixel (the speck is below 0.001 km2).
    lat = 35.8 - 0.0001 * 100
    pixel = abs(
        geod.polygon_area_perimeter([76.0, 76.0001, 76.0001, 76.0], [lat, lat, lat + 0.0001, lat + 0.0001])[0]
    )
    assert inv.summary["area_km2"] == pytest.approx(21_500 * pixel / 1e6, rel=1e-3)
    assert 0 < inv.summary["area_unc_km2"] < 0.2 * inv.summary["area_km2"]
    assert gpd.read_file(tmp_path / "geo.gpkg", layer="glaciers").crs.to_epsg() == 4326


def test_median_filter_removes_isolated_pixels(tmp_path: Path) -> None:
    cls = scenes.classes()
    cls[150:160:3, 300:400:3] = 1  # 4 x 34 isolated single pixels
    classes, dem = scenes.write_scene(tmp_path, cls=cls)
    unfiltered = build_inventory(classes, dem, None, min_area_km2=0.0)
    filtered = build_inventory(classes, dem, None, min_area_km2=0.0, median_filter=3)
    assert len(unfiltered.glaciers) == 3 + 1 + 136
    assert unfiltered.summary["area_km2"] == pytest.approx((20_000 + 1_500 + 9 + 136) * 1e-4)
    # 3 x 3 majority vote: isolated pixels vanish, every convex corner pixel (4 of 9) goes, the 3 x 3
    # speck becomes a 5-pixel cross, and the 4 corner pixels of the nunatak (5 of 9) become ice.
    assert len(filtered.glaciers) == 3 + 1
    assert filtered.summary["area_km2"] == pytest.approx((20_000 - 4 + 1_500 - 4 + 4 + 5) * 1e-4)


def test_bad_options(scene: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gpkg"):
        build_inventory(*scene, tmp_path / "inv.shp")
    with pytest.raises(ConfigError, match="reference"):
        build_inventory(*scene, None, method="copy")
    with pytest.raises(ConfigError, match="median_filter"):
        build_inventory(*scene, None, median_filter=4)
    with pytest.raises(ConfigError, match="date"):
        build_inventory(*scene, None, date="21 August 2021")


def test_atomic_write_leaves_nothing_on_error(scene: tuple[Path, Path], tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    original = gpd.GeoDataFrame.to_file

    def failing(self, filename, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("layer") == "divides":
            raise OSError("disk full")
        return original(self, filename, *args, **kwargs)

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", failing)
    with pytest.raises(OSError, match="disk full"):
        build_inventory(*scene, tmp_path / "inv.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_workers_give_the_same_inventory(scene: tuple[Path, Path], inventory) -> None:  # type: ignore[no-untyped-def]
    parallel = build_inventory(*scene, None, workers=2, date="2021-08-15", dem_source="hand-made DEM")
    _same_glaciers(parallel.glaciers, inventory.glaciers)


def test_no_glacier_above_the_minimum_area_gives_empty_layers(tmp_path: Path) -> None:
    cls = np.zeros((scenes.HEIGHT, scenes.WIDTH), np.uint8)
    cls[5:7, 5:7] = 1  # 0.0004 km2
    classes, dem = scenes.write_scene(tmp_path, cls=cls)
    inv = build_inventory(classes, dem, tmp_path / "empty.gpkg")
    assert inv.summary["n_glaciers"] == 0 and inv.summary["area_km2"] == 0.0
    for layer in ("glaciers", "debris", "divides"):
        assert len(gpd.read_file(tmp_path / "empty.gpkg", layer=layer)) == 0
    assert pd.read_csv(tmp_path / "empty.csv").columns.tolist() == list(GLACIER_COLUMNS)


def _same_glaciers(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    cols = [c for c in GLACIER_COLUMNS if c != "hypso_50m"]
    pd.testing.assert_frame_equal(pd.DataFrame(a[cols]), pd.DataFrame(b[cols]), check_exact=False)
    assert a.geometry.geom_equals(b.geometry).all()


@pytest.mark.parametrize("median_filter", [0, 3])
def test_windowed_processing_never_reads_a_whole_raster(
    tmp_path: Path, monkeypatch, median_filter: int
) -> None:  # type: ignore[no-untyped-def]
    """Scanning in 16-row strips and reading crops gives the inventory of a one-strip scan."""
    cls = scenes.classes()
    cls[150:160:3, 300:400:3] = 1  # isolated pixels that the median filter removes
    classes, dem = scenes.write_scene(tmp_path, cls=cls)
    whole = build_inventory(classes, dem, None, min_area_km2=0.0, median_filter=median_filter)

    windows: list[tuple[str, int, int]] = []
    for reader in (inputs.ClassReader, inputs.DemReader):
        original = reader.read

        def recording(self, row0, col0, height, width, _original=original):  # type: ignore[no-untyped-def]
            windows.append((type(self).__name__, height, width))
            return _original(self, row0, col0, height, width)

        monkeypatch.setattr(reader, "read", recording)
    monkeypatch.setattr(inputs, "STRIP_ROWS", 16)
    windowed = build_inventory(classes, dem, None, min_area_km2=0.0, median_filter=median_filter)

    _same_glaciers(windowed.glaciers, whole.glaciers)
    assert windowed.summary["n_glaciers"] == (4 if median_filter else 140)
    strips = windows[: math.ceil(scenes.HEIGHT / 16)]
    assert strips == [("ClassReader", 16, scenes.WIDTH)] * 12 + [("ClassReader", 8, scenes.WIDTH)]
    crops = windows[len(strips) :]
    assert {name for name, _, _ in crops} == {"ClassReader", "DemReader"}
    assert len(crops) == 2 * windowed.summary["n_complexes"]
    assert max(h * w for _, h, w in crops) < scenes.HEIGHT * scenes.WIDTH / 2


def test_spawned_workers_give_the_same_inventory(scene: tuple[Path, Path], inventory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Platforms without fork (macOS, Windows) spawn the workers, which receive the job pickled."""
    monkeypatch.setattr(pipeline, "START_METHOD", "spawn")
    spawned = build_inventory(*scene, None, workers=2, date="2021-08-15", dem_source="hand-made DEM")
    _same_glaciers(spawned.glaciers, inventory.glaciers)
