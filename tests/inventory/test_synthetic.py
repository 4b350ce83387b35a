"""The inventory on a synthetic-world scene with known glaciers (``glaciermap.synthetic.generate``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from scipy import ndimage

from glaciermap.inventory import build_inventory, compare_inventories, polygonise


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from glaciermap.synthetic.generate import generate_scene

    return Path(
        generate_scene(tmp_path_factory.mktemp("synthetic"), preset="karakoram", size=(512, 512), seed=0)
    )


@pytest.fixture(scope="module")
def inventory(scene: Path):  # type: ignore[no-untyped-def]
    return build_inventory(scene / "labels.tif", scene / "dem.tif", None, min_area_km2=0.01)


def test_areas_and_elevations_equal_direct_values(scene: Path, inventory) -> None:  # type: ignore[no-untyped-def]
    with rasterio.open(scene / "labels.tif") as src:
        labels, transform = src.read(1), src.transform
        pixel_km2 = abs(transform.a * transform.e) / 1e6
    with rasterio.open(scene / "dem.tif") as src:
        z = src.read(1).astype(np.float64)
        z[z == src.nodata] = np.nan
    glacier = (labels == 1) | (labels == 2)
    # Every glacier pixel of a region >= 0.01 km2 is in exactly one glacier of the inventory.
    regions, _ = ndimage.label(glacier, structure=ndimage.generate_binary_structure(2, 1))
    sizes = np.bincount(regions.ravel()) * pixel_km2
    kept = glacier & (sizes[regions] >= 0.01)
    g = inventory.glaciers
    ids = rasterize(zip(g.geometry, g.glac_id), out_shape=labels.shape, transform=transform, dtype="int32")
    assert ((ids > 0) == kept).all()
    assert g.area_km2.sum() == pytest.approx(kept.sum() * pixel_km2)
    for _, row in g.iterrows():
        m = ids == row.glac_id
        assert row.area_km2 == pytest.approx(m.sum() * pixel_km2)
        assert row.area_debris_km2 == pytest.approx((m & (labels == 2)).sum() * pixel_km2)
        zz = z[m]
        zz = zz[np.isfinite(zz)]
        assert row.zmin_m == pytest.approx(zz.min(), abs=1e-3)
        assert row.zmax_m == pytest.approx(zz.max(), abs=1e-3)
        assert row.zmean_m == pytest.approx(zz.mean(), abs=1e-2)
        assert row.zmed_m == pytest.approx(np.median(zz), abs=1e-2)


def test_date_from_the_scene_metadata(scene: Path, inventory) -> None:  # type: ignore[no-untyped-def]
    year = str(json.loads((scene / "scene.json").read_text())["year"])
    assert (inventory.glaciers.src_date == year).all()
    assert (inventory.glaciers.dem_source == "dem.tif").all()


def test_complex_split_matches_the_true_glaciers(scene: Path, inventory) -> None:  # type: ignore[no-untyped-def]
    with rasterio.open(scene / "glaciers.tif") as src:
        truth = (
            polygonise(src.read(1), src.transform, src.crs, column="glac_id")
            .dissolve("glac_id")
            .reset_index()
        )
    big = truth[truth.area >= 0.5e6]
    assert len(big) >= 3
    comparison = compare_inventories(inventory.glaciers, big)
    # Most true glaciers over 0.5 km2 are each one of ours (> 50 % of both, GlaViTU): 5 of 6 with the
    # generator of 2026-11-21 (and 47 of 50 over eight scenes of four presets, see ``divides``).
    assert comparison.summary["n_matched"] >= 0.75 * len(big)
    # A complex holding several of them is split along its divides into glaciers that match them.
    matched = inventory.glaciers[inventory.glaciers.glac_id.isin(comparison.matches.id_ours)]
    assert matched.complex_id.value_counts().max() >= 2
    assert len(inventory.divides) >= 2
