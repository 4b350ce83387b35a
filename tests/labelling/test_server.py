"""The labelling API through Flask's test client, on a tiny synthetic crevasse world."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("flask", reason="the labelling tool needs Flask (pip install 'glaciermap[label]')")

from PIL import Image

from glaciermap.datasets.crevasse_classes import CrevasseClassV2
from glaciermap.datasets.crevasse_labels import read_label_table
from glaciermap.datasets.split_images import SplitImageDataset
from glaciermap.errors import InputError
from glaciermap.labelling.scene import read_predictions
from glaciermap.labelling.server import create_app, safe_subfolder
from glaciermap.transforms.vario import directional_vario, vario_lags
from tests.data.labelling import CONF, TILE_SIZE, TILES, make_world

N_TILES = TILES[0] * TILES[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture
def client(world: dict[str, Path], tmp_path: Path) -> Any:
    app = create_app(world["image"], world["index"], tmp_path / "labels.csv", world["predictions"])
    return app.test_client()


def _truth(world: dict[str, Path]) -> dict[int, int]:
    t = read_label_table(world["truth"])
    return dict(zip(t["tile_id"].tolist(), t["label"].tolist()))


def test_scene(client: Any, world: dict[str, Path]) -> None:
    s = client.get("/api/scene").get_json()
    assert s["image"] == "pan.tif"
    assert s["quicklook"] == {"url": "/api/quicklook.png", "width": 576, "height": 160, "scale": 1.0}
    assert len(s["tiles"]) == N_TILES
    assert s["tiles"][13] == {"id": 13, "rect": [48.0, 40.0, 48.0, 40.0], "row": 1, "col": 1}
    assert [c["colour"] for c in s["classes"]] == [m.colour for m in CrevasseClassV2]
    assert s["classes"][4] == {
        "id": 4,
        "name": "parallel_shear",
        "display": "Parallel with Shear",
        "colour": "#98df8a",
    }
    assert s["labels"] == {} and s["version"] == 0
    truth = _truth(world)
    assert s["predictions"]["7"] == [truth[7], 0.75]
    assert len(s["predictions"]) == N_TILES


def test_quicklook_and_tile_images(client: Any, world: dict[str, Path]) -> None:
    ql = np.asarray(Image.open(io.BytesIO(client.get("/api/quicklook.png").data)))
    assert ql.shape == (160, 576) and ql.dtype == np.uint8
    resp = client.get("/api/tile/13.png")
    assert resp.mimetype == "image/png"
    tile = np.asarray(Image.open(io.BytesIO(resp.data)))
    expected = SplitImageDataset(world["image"], world["index"], vario=False).uint8_tile(13)
    np.testing.assert_array_equal(tile, expected)
    np.testing.assert_array_equal(ql[40:80, 48:96], expected)  # scale 1: the quick-look holds the same pixels
    assert client.get("/api/tile/999.png").status_code == 400


def test_vario_curves(client: Any, world: dict[str, Path]) -> None:
    import rasterio

    v = client.get("/api/tile/5/vario").get_json()
    assert v["directions"] == ["ns", "ew", "diagonal", "antidiagonal"]
    with rasterio.open(world["image"]) as src:
        raw = src.read(1)[0:40, 240:288].astype(np.float32)
    expected = directional_vario(torch.from_numpy(raw)).numpy()
    counts = vario_lags(40, 48).counts
    assert [len(c) for c in v["curves"]] == list(counts) and min(counts) > 5
    for k, n in enumerate(counts):
        np.testing.assert_allclose(v["curves"][k], expected[k, :n], rtol=1e-5, atol=1e-3)
        assert min(v["curves"][k]) > 0  # textured tiles: no zero padding left


def test_label_by_ids_saved_at_once_and_undo(client: Any, tmp_path: Path) -> None:
    r = client.post("/api/labels", json={"tiles": [3, 4], "label": 8}).get_json()
    assert r["labels"] == {"3": [8, 1.0], "4": [8, 1.0]} and r["version"] == 1 and r["changed"] == 2
    assert (tmp_path / "labels.csv").read_text() == "tile_id,label,confidence\n3,chaos,1.0\n4,chaos,1.0\n"
    client.post("/api/labels", json={"tiles": [4], "label": None})
    assert (tmp_path / "labels.csv").read_text() == "tile_id,label,confidence\n3,chaos,1.0\n"
    u = client.post("/api/undo").get_json()
    assert u["changed"] == 1 and u["labels"] == {"3": [8, 1.0], "4": [8, 1.0]}
    assert client.get("/api/labels").get_json()["version"] == 3


def test_label_by_polygon(client: Any) -> None:
    triangle = [[0, 0], [300, 0], [0, 150]]
    r = client.post("/api/labels", json={"polygon": triangle, "label": 2}).get_json()
    h, w = TILE_SIZE
    expected = [
        12 * row + col
        for row in range(TILES[0])
        for col in range(TILES[1])
        if (w * col + w / 2) / 300 + (h * row + h / 2) / 150 < 1
    ]
    assert expected == [0, 1, 2, 3, 4, 12, 13, 14, 15, 24, 25]
    assert r["tiles"] == expected
    assert sorted(int(k) for k in r["labels"]) == expected and {v[0] for v in r["labels"].values()} == {2}


def test_accept_predictions(client: Any, world: dict[str, Path]) -> None:
    truth = _truth(world)
    one = client.post("/api/accept", json={"tile": 3}).get_json()
    assert one["labels"] == {"3": [truth[3], 1.0]}
    above = client.post("/api/accept", json={"threshold": 0.8}).get_json()
    ids = [t for t in range(N_TILES) if CONF[t % 10] > 0.8]
    assert above["tiles"] == ids == [8, 9, 18, 19, 28, 29, 38, 39]
    assert above["labels"] == {str(t): [truth[t], 1.0] for t in sorted([3, *ids])}
    assert client.post("/api/undo").get_json()["labels"] == {"3": [truth[3], 1.0]}


def test_add_class(client: Any, tmp_path: Path) -> None:
    r = client.post("/api/classes", json={"name": "Rift"}).get_json()
    assert r["id"] == 11 and r["classes"][11]["name"] == "Rift"
    client.post("/api/labels", json={"tiles": [0], "label": 11})
    assert (tmp_path / "labels.csv").read_text() == "tile_id,label,confidence\n0,Rift,1.0\n"
    assert client.get("/api/scene").get_json()["classes"][11]["display"] == "Rift"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"tiles": [1], "label": 42}, "expected an id in 0 ... 10"),
        ({"tiles": [9999], "label": 1}, "not in the split-image index"),
        ({"tiles": "1", "label": 1}, "expected a list of tile ids"),
        ({"polygon": [[0, 0], [1, 1]], "label": 1}, "at least 3"),
        ({"tiles": [1], "label": "chaos"}, "expected a class id"),
    ],
)
def test_bad_label_requests(client: Any, tmp_path: Path, body: dict[str, Any], words: str) -> None:
    r = client.post("/api/labels", json=body)
    assert r.status_code == 400 and words in r.get_json()["error"]
    assert not (tmp_path / "labels.csv").exists()


def test_exports(client: Any, tmp_path: Path) -> None:
    client.post("/api/labels", json={"tiles": [0, 1, 2], "label": 0})
    client.post("/api/labels", json={"tiles": [5], "label": 3})
    r = client.post("/api/export/folder", json={"out": "exports/all"}).get_json()
    assert r == {"out": str(tmp_path / "exports" / "all"), "images": 4, "rows": 4}
    names = sorted(
        str(p.relative_to(tmp_path / "exports" / "all")) for p in (tmp_path / "exports/all").rglob("*.png")
    )
    assert names == ["0/0_0_0.png", "0/0_1_0.png", "0/0_2_0.png", "3/3_5_0.png"]
    eq = client.post("/api/export/equal", json={"out": "eq"}).get_json()
    assert eq["rows"] == 2 and eq["images"] == 2  # one per class: the smallest class has one tile
    conf = client.post("/api/export/confident", json={"out": "conf", "threshold": 0.9}).get_json()
    assert conf["rows"] == 4  # confidence 0.95: tiles 9, 19, 29, 39
    assert read_label_table(tmp_path / "conf" / "labels.csv")["tile_id"].tolist() == [9, 19, 29, 39]


@pytest.mark.parametrize("out", ["../escape", "/tmp/escape", "a/../../escape", "..", "", "C:\\x", "link/sub"])
def test_export_refuses_path_traversal(client: Any, tmp_path: Path, out: str) -> None:
    outside = tmp_path.parent / f"outside-{tmp_path.name}"
    outside.mkdir()
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    before = sorted(os.listdir(tmp_path))
    r = client.post("/api/export/folder", json={"out": out})
    assert r.status_code == 400 and "out" in r.get_json()["error"]
    assert sorted(os.listdir(tmp_path)) == before and list(outside.iterdir()) == []
    assert not (tmp_path.parent / "escape").exists()


def test_safe_subfolder_accepts_inside(tmp_path: Path) -> None:
    assert safe_subfolder(tmp_path, "a/b") == tmp_path.resolve() / "a" / "b"
    assert safe_subfolder(tmp_path, "./a") == tmp_path.resolve() / "a"
    with pytest.raises(InputError):
        safe_subfolder(tmp_path, 3)


def test_without_predictions_accept_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    c = create_app(world["image"], world["index"], tmp_path / "l.csv").test_client()
    assert c.get("/api/scene").get_json()["predictions"] == {}
    r = c.post("/api/accept", json={"threshold": 0.5})
    assert r.status_code == 400 and "--predictions" in r.get_json()["error"]
    assert c.post("/api/labels", data="not json").status_code == 400


def test_predictions_gpkg_equals_csv(world: dict[str, Path]) -> None:
    a, b = read_predictions(world["predictions"]), read_predictions(world["predictions_gpkg"])
    pd.testing.assert_frame_equal(a, b)
    assert b["confidence"].tolist()[:3] == [0.05, 0.15, 0.25]


def test_index_of_another_image_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    import rasterio

    small = tmp_path / "small.tif"
    with rasterio.open(world["image"]) as src:
        profile = src.profile | {"height": 50, "width": 60}
        data = src.read(1)[:50, :60]
    with rasterio.open(small, "w", **profile) as dst:
        dst.write(data, 1)
    with pytest.raises(InputError, match="expected the index made from this image"):
        create_app(small, world["index"], tmp_path / "l.csv")
    assert not (tmp_path / "l.csv").exists()


def test_page_is_served(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200 and b'<canvas id="map"' in page.data
    js = client.get("/static/app.js")
    assert js.status_code == 200 and b"/api/labels" in js.data
    assert b"http" not in client.get("/").data  # no CDN: nothing is loaded from elsewhere


def test_two_servers_on_one_table_share_labels(world: dict[str, Path], tmp_path: Path) -> None:
    a = create_app(world["image"], world["index"], tmp_path / "labels.csv").test_client()
    b = create_app(world["image"], world["index"], tmp_path / "labels.csv").test_client()
    a.post("/api/labels", json={"tiles": [1], "label": 1})
    r = b.post("/api/labels", json={"tiles": [2], "label": 2}).get_json()
    assert r["labels"] == {"1": [1, 1.0], "2": [2, 1.0]} and r["version"] == 2
    assert a.get("/api/labels").get_json() == {"labels": {"1": [1, 1.0], "2": [2, 1.0]}, "version": 2}
    assert a.post("/api/undo").get_json()["labels"] == {"2": [2, 1.0]}  # a undoes its own change only


def test_static_files_cannot_escape(client: Any) -> None:
    for url in ("/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/store.py"):
        r = client.get(url)
        assert r.status_code == 404 and b"LabelStore" not in r.data


def test_foreign_host_header_and_non_json_are_refused(client: Any, tmp_path: Path) -> None:
    assert client.get("/api/scene", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/api/scene", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    r = client.post("/api/labels", data='{"tiles": [1], "label": 1}', content_type="text/plain")
    assert r.status_code == 400 and "expected a JSON object" in r.get_json()["error"]
    assert not (tmp_path / "labels.csv").exists()
