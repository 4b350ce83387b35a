"""SceneDataset and SceneCollection: the sample contract, values, nodata handling, location and region."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from pyproj import CRS, Transformer
from torch.utils.data import DataLoader
from torchgeo.samplers import GridGeoSampler

from glaciermap.constants import BANDS, IGNORE_INDEX
from glaciermap.datasets.scene import (
    SceneCollection,
    SceneDataset,
    SceneQuery,
    collate_samples,
    map_labels,
    region_index,
    resolve_bands,
)
from glaciermap.errors import ConfigError, InputError
from tests.data.scenes import band_values, label_values, write_scene

LEFT, TOP, RES = 500000.0, 4000000.0, 10.0


def window(row: int, col: int, size: int = 32) -> tuple[slice, slice]:
    """Geo query of the ``size`` px window whose top-left pixel is ``(row, col)`` of the test grid."""
    x0 = LEFT + col * RES
    y1 = TOP - row * RES
    return slice(x0, x0 + size * RES), slice(y1 - size * RES, y1)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64x64 scene: optical band 0 nodata in rows 0-3, cols 0-3; insar band 1 NaN in rows 10-11, cols 20-23;
    labels 255 in rows 40-43, cols 0-3."""
    return write_scene(
        tmp_path_factory.mktemp("scene") / "s",
        nodata_box=(0, 4, 0, 4),
        nan_box=(10, 12, 20, 24),
        label_nodata_box=(40, 44, 0, 4),
    )


def test_sample_contract_shapes_and_dtypes(scene: Path) -> None:
    ds = SceneDataset(scene, ["optical", "dem", "insar"], region_codes=["HMA"])
    sample = ds[window(0, 0)]
    assert set(sample) == {"image", "mask", "region", "location", "crs", "bounds"}
    assert sample["image"].shape == (10, 32, 32) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
    assert sample["location"].shape == (2,) and sample["location"].dtype == torch.float32
    assert sample["bounds"].dtype == torch.float64
    assert sample["bounds"].tolist() == [LEFT, TOP - 320.0, LEFT + 320.0, TOP]
    assert isinstance(sample["region"], int) and sample["region"] == 0
    assert sample["crs"] == CRS.from_epsg(32643)
    assert ds.num_channels == 10 and len(ds) == 1


def test_per_modality_image_dict(scene: Path) -> None:
    ds = SceneDataset(scene, ["dem", "sar"], image_format="per_modality")
    image = ds[window(32, 32)]["image"]
    assert list(image) == ["dem", "sar"]
    assert image["dem"].shape == (2, 32, 32) and image["sar"].shape == (2, 32, 32)
    assert all(t.dtype == torch.float32 for t in image.values())


def test_zscore_values_from_scene_stats(scene: Path) -> None:
    ds = SceneDataset(scene, ["dem"])
    stats = ds.norm.modalities["dem"] if ds.norm else None
    assert stats is not None and stats.count == 64 * 64
    raw = band_values("dem", 64, 64)[:, 32:64, 32:64].astype(np.float64)
    expected = (raw - np.array(stats.mean)[:, None, None]) / np.array(stats.std)[:, None, None]
    got = ds[window(32, 32)]["image"].numpy()
    # float32 resolves 4000 m to 2.4e-4 m, i.e. 1.3e-3 standard deviations of this (0.18 m) test band.
    np.testing.assert_allclose(got, expected, atol=2e-3)
    # The rows go 0.01 per row, so the standardised values are not trivially constant.
    assert got[0, 0, 0] < got[0, -1, 0]


def test_raw_values_without_normalisation_and_band_subset(scene: Path) -> None:
    ds = SceneDataset(scene, ["optical"], bands={"optical": ["nir", "red"]}, norm=None)
    image = ds[window(32, 32)]["image"]
    full = band_values("optical", 64, 64)[:, 32:64, 32:64]
    np.testing.assert_array_equal(image.numpy(), full[[3, 2]])


def test_nodata_and_nan_become_ignore_in_mask_and_fill_in_image(scene: Path) -> None:
    ds = SceneDataset(scene, ["optical", "dem", "insar"], fill_value=-7.0)
    sample = ds[window(0, 0)]
    mask, image = sample["mask"], sample["image"]
    invalid = torch.zeros(32, 32, dtype=torch.bool)
    invalid[0:4, 0:4] = True  # optical nodata (-9999)
    invalid[10:12, 20:24] = True  # insar NaN
    assert (mask[invalid] == IGNORE_INDEX).all()
    assert (image[:, invalid] == -7.0).all(), "every channel of an invalid pixel is filled"
    assert torch.isfinite(image).all()
    assert (mask[~invalid] != IGNORE_INDEX).all()
    assert (image[:, ~invalid] != -7.0).all()
    # The NaN only matters when insar is read.
    without_insar = SceneDataset(scene, ["optical", "dem"])[window(0, 0)]["mask"]
    assert (without_insar[10:12, 20:24] != IGNORE_INDEX).all()


def test_label_nodata_is_ignored_but_image_kept(scene: Path) -> None:
    ds = SceneDataset(scene, ["dem"], norm=None)
    sample = ds[window(32, 0)]
    assert (sample["mask"][8:12, 0:4] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(
        sample["image"][:, 8:12, 0:4].numpy(), band_values("dem", 64, 64)[:, 40:44, 0:4]
    )


def test_window_reaching_past_the_scene_edge(scene: Path) -> None:
    ds = SceneDataset(scene, ["dem"], fill_value=0.0)
    sample = ds[window(48, 48)]  # 16 px inside, 16 px outside along both axes
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[:16, :16] = False
    assert (sample["mask"][outside] == IGNORE_INDEX).all()
    assert (sample["image"][:, outside] == 0.0).all()
    assert (sample["mask"][:16, :16] == 2).logical_or(sample["mask"][:16, :16] == 1).all()


def test_binary_and_three_class_targets(scene: Path) -> None:
    labels = torch.from_numpy(label_values(64, 64)[32:64, 32:64].astype(np.int64))
    classes = SceneDataset(scene, ["dem"], target="classes")[window(32, 32)]["mask"]
    binary = SceneDataset(scene, ["dem"], target="binary")[window(32, 32)]["mask"]
    assert torch.equal(classes, labels)
    assert set(classes.unique().tolist()) == {1, 2}
    assert torch.equal(binary, (labels > 0).long())
    raw = torch.tensor([[0, 1, 2, 255]])
    assert map_labels(raw, "binary").tolist() == [[0, 1, 1, 255]]
    with pytest.raises(InputError, match=r"x\.tif holds label value\(s\) \[9\]"):
        map_labels(torch.tensor([[0, 9]]), "classes", "x.tif")


def test_location_is_the_patch_centre_in_wgs84(scene: Path) -> None:
    ds = SceneDataset(scene, ["dem"])
    to_wgs84 = Transformer.from_crs("EPSG:32643", "EPSG:4326", always_xy=True)
    for row, col in ((0, 0), (32, 32), (10, 25)):
        x, y = window(row, col)
        lon, lat = to_wgs84.transform((x.start + x.stop) / 2, (y.start + y.stop) / 2)
        got = ds[(x, y)]["location"].tolist()
        np.testing.assert_allclose(got, [lat, lon], atol=1e-5)
    first, last = ds[window(0, 0)]["location"], ds[window(32, 32)]["location"]
    assert first[0] > last[0] and first[1] < last[1], "north-west window is further north and west"


def test_region_index_with_unseen_codes(scene: Path, tmp_path: Path) -> None:
    assert SceneDataset(scene, ["dem"], region_codes=["AWA", "HMA"])[window(0, 0)]["region"] == 1
    assert SceneDataset(scene, ["dem"], region_codes=["AWA", "SVAL"])[window(0, 0)]["region"] == 2
    assert SceneDataset(scene, ["dem"])[window(0, 0)]["region"] == 0
    assert region_index("ALP", ["ALP", "HMA"]) == 0 and region_index("XX", ["ALP", "HMA"]) == 2


def test_prediction_without_labels(tmp_path: Path) -> None:
    folder = write_scene(tmp_path / "nolabels", labels=False, modalities=["dem"])
    ds = SceneDataset(folder, ["dem"], target=None)
    sample = ds[window(0, 0)]
    assert "mask" not in sample and sample["image"].shape == (2, 32, 32)
    with pytest.raises(InputError, match=r"has no labels\.tif"):
        SceneDataset(folder, ["dem"], target="binary")


def test_queries_outside_or_malformed_are_index_errors(scene: Path) -> None:
    ds = SceneDataset(scene, ["dem"])
    with pytest.raises(IndexError, match="does not intersect scene"):
        ds[(slice(0.0, 320.0), slice(0.0, 320.0))]
    with pytest.raises(IndexError, match="not a geo query"):
        ds[3]
    x, y = window(0, 0)
    with pytest.raises(IndexError, match="differs from the pixel size"):
        ds[(slice(x.start, x.stop, 20.0), y)]


def test_option_errors(scene: Path) -> None:
    with pytest.raises(ConfigError, match="target is 'multi'"):
        SceneDataset(scene, ["dem"], target="multi")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="image_format is 'list'"):
        SceneDataset(scene, ["dem"], image_format="list")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="band 'nir' of 'dem' is unknown"):
        resolve_bands(["dem"], {"dem": ["nir"]})
    with pytest.raises(ConfigError, match="bands given for 'sar', which is not in modalities"):
        resolve_bands(["dem"], {"sar": ["sar_asc"]})
    with pytest.raises(ConfigError, match="modality 'dem' is listed twice"):
        resolve_bands(["dem", "dem"], None)
    assert resolve_bands(["sar", "dem"], None) == {"sar": BANDS["sar"], "dem": BANDS["dem"]}


def test_torchgeo_grid_sampler_and_loader_over_one_scene(scene: Path) -> None:
    ds = SceneDataset(scene, ["dem"])
    sampler = GridGeoSampler(ds, 32, 32)
    loader = DataLoader(ds, sampler=sampler, batch_size=4, collate_fn=collate_samples)
    batches = list(loader)
    assert len(batches) == 1 and batches[0]["image"].shape == (4, 2, 32, 32)
    assert batches[0]["bounds"][:, 0].tolist() == [LEFT, LEFT + 320.0, LEFT, LEFT + 320.0]


def test_collection_queries_pickling_and_collate(scene: Path, tmp_path: Path) -> None:
    other = write_scene(
        tmp_path / "svalbard",
        crs="EPSG:32633",
        origin=(400000.0, 8700000.0),
        region="SVAL",
        modalities=["dem"],
    )
    scenes = [
        SceneDataset(scene, ["dem"], region_codes=["HMA"]),
        SceneDataset(other, ["dem"], region_codes=["HMA"]),
    ]
    collection = SceneCollection(scenes)
    assert len(collection) == 2
    q = SceneQuery(1, slice(400000.0, 400320.0), slice(8699680.0, 8700000.0))
    sample = collection[q]
    assert sample["crs"] == CRS.from_epsg(32633) and sample["region"] == 1
    assert 78.0 < float(sample["location"][0]) < 79.0
    restored = pickle.loads(pickle.dumps(collection))
    again = restored[q]
    assert torch.equal(again["image"], sample["image"]) and torch.equal(again["mask"], sample["mask"])
    batch = collate_samples([collection[SceneQuery(0, *window(0, 0))], sample])
    assert batch["image"].shape == (2, 2, 32, 32) and batch["mask"].shape == (2, 32, 32)
    assert batch["region"].tolist() == [0, 1] and batch["region"].dtype == torch.int64
    assert batch["location"].shape == (2, 2) and batch["bounds"].shape == (2, 4)
    assert batch["crs"] == [CRS.from_epsg(32643), CRS.from_epsg(32633)]
    with pytest.raises(IndexError, match="scene index 2 out of range"):
        collection[SceneQuery(2, q.x, q.y)]
    with pytest.raises(IndexError, match="not a SceneQuery"):
        collection[0]  # type: ignore[index]
    with pytest.raises(ConfigError, match="no scenes given"):
        SceneCollection([])
    with pytest.raises(ConfigError, match="other bands/target/region codes"):
        SceneCollection([scenes[0], SceneDataset(other, ["dem"], region_codes=["SVAL"])])
