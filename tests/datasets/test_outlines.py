"""Scene + outlines: rasterising RGI/GLIMS polygons (any CRS) onto a scene grid, and the dataset over it."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import torch
from pyproj import CRS, Transformer
from rasterio.transform import from_origin

from glaciermap.constants import IGNORE_INDEX
from glaciermap.datasets.outlines import SceneOutlinesDataset, rasterise_outlines, read_outlines
from glaciermap.errors import InputError
from tests.data.scenes import write_scene

LEFT, TOP, RES = 500000.0, 4000000.0, 10.0
UTM = CRS.from_epsg(32643)


def box_px(r0: int, r1: int, c0: int, c1: int) -> shapely.Polygon:
    """Polygon covering pixel rows [r0, r1) and columns [c0, c1) of the 64x64 test grid (UTM 43N)."""
    return shapely.box(LEFT + c0 * RES, TOP - r1 * RES, LEFT + c1 * RES, TOP - r0 * RES)


def glacier_with_hole() -> shapely.Polygon:
    """Glacier on rows 8-40, cols 8-40 with a nunatak (interior ring) on rows 20-28, cols 20-28."""
    outer = box_px(8, 40, 8, 40)
    hole = box_px(20, 28, 20, 28)
    return shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])


def to_wgs84(geom: shapely.Geometry) -> shapely.Geometry:
    t = Transformer.from_crs(UTM, 4326, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / "s", modalities=("optical", "dem"), labels=False)


def test_rasterise_keeps_holes_and_debris() -> None:
    gdf = gpd.GeoDataFrame({"rgi_id": ["RGI2000-v7.0-G-14-00001"]}, geometry=[glacier_with_hole()], crs=UTM)
    debris = gpd.GeoDataFrame(geometry=[box_px(30, 50, 0, 64)], crs=UTM)
    labels = rasterise_outlines(
        gdf, transform=from_origin(LEFT, TOP, RES, RES), shape=(64, 64), debris=debris
    )
    assert labels.dtype == np.uint8
    assert labels[10, 10] == 1 and labels[24, 24] == 0 and labels[5, 5] == 0
    assert labels[35, 10] == 2 and labels[45, 10] == 0  # debris only where glacier
    assert (labels == 1).sum() == 32 * 32 - 8 * 8 - 10 * 32


def test_glims_line_types() -> None:
    gdf = gpd.GeoDataFrame(
        {"line_type": ["glac_bound", "intrnl_rock", "debris_cov"], "glac_id": ["G1", "G1", "G1"]},
        geometry=[box_px(0, 32, 0, 32), box_px(4, 8, 4, 8), box_px(24, 32, 0, 32)],
        crs=UTM,
    )
    labels = rasterise_outlines(gdf, transform=from_origin(LEFT, TOP, RES, RES), shape=(64, 64))
    assert labels[2, 2] == 1 and labels[5, 5] == 0 and labels[30, 30] == 2 and labels[40, 40] == 0
    assert np.bincount(labels.ravel(), minlength=3).tolist() == [64 * 64 - 32 * 32 + 16, 24 * 32 - 16, 8 * 32]


def test_dataset_from_outlines_in_another_crs(scene: Path, tmp_path: Path) -> None:
    path = tmp_path / "rgi7.gpkg"
    gpd.GeoDataFrame({"rgi_id": ["G1"]}, geometry=[to_wgs84(glacier_with_hole())], crs=4326).to_file(path)
    shp = tmp_path / "debris.shp"
    gpd.GeoDataFrame({"id": [1]}, geometry=[box_px(30, 50, 0, 64)], crs=UTM).to_file(shp)
    ds = SceneOutlinesDataset(scene, path, debris=shp, target="classes", cache_dir=tmp_path / "cache")
    sample = ds[(slice(LEFT, LEFT + 640.0), slice(TOP - 640.0, TOP))]
    mask = sample["mask"]
    assert sample["image"].shape == (8, 64, 64) and mask.dtype == torch.int64
    assert mask[10, 10] == 1 and mask[24, 24] == 0 and mask[35, 10] == 2 and mask[5, 5] == 0
    # Reprojection moves edges by a fraction of a pixel at most: the glacier area is within one pixel rim.
    glacier = int((mask > 0).sum())
    assert abs(glacier - (32 * 32 - 64)) <= 2 * 32
    assert ds.labels_path.parent.parent == tmp_path / "cache" and ds.labels_path.name == "labels.tif"
    again = SceneOutlinesDataset(scene, path, target="binary", cache_dir=tmp_path / "cache")
    assert again.labels_path != ds.labels_path  # different debris input -> different cache entry
    assert int(again[(slice(LEFT, LEFT + 640.0), slice(TOP - 640.0, TOP))]["mask"].max()) == 1


def test_nodata_pixels_are_ignored(tmp_path: Path) -> None:
    folder = write_scene(
        tmp_path / "s", modalities=("optical", "dem"), labels=False, nodata_box=(0, 16, 0, 16)
    )
    path = tmp_path / "o.gpkg"
    gpd.GeoDataFrame(geometry=[box_px(0, 32, 0, 32)], crs=UTM).to_file(path)
    ds = SceneOutlinesDataset(folder, path, cache_dir=tmp_path / "c")
    mask = ds[(slice(LEFT, LEFT + 640.0), slice(TOP - 640.0, TOP))]["mask"]
    assert (mask[:16, :16] == IGNORE_INDEX).all() and (mask[16:32, 16:32] == 1).all()


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_bad_outlines(scene: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.shp: file not found"):
        SceneOutlinesDataset(scene, tmp_path / "missing.shp", cache_dir=tmp_path)
    far = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(10, 46, 11, 47)], crs=4326).to_file(far)
    with pytest.raises(InputError, match="no glacier polygon covers a pixel centre"):
        SceneOutlinesDataset(scene, far, cache_dir=tmp_path)
    nocrs = tmp_path / "nocrs.shp"
    gpd.GeoDataFrame(geometry=[box_px(0, 8, 0, 8)]).to_file(nocrs)
    with pytest.raises(InputError, match="has no CRS"):
        read_outlines(nocrs, UTM)
    lines = tmp_path / "lines.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (1, 1)])], crs=UTM).to_file(lines)
    with pytest.raises(InputError, match="holds no polygon"):
        read_outlines(lines, UTM)
    assert not list(tmp_path.glob("*.tif"))
