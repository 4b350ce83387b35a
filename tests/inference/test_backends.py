"""CPU inference backends (ONNX Runtime, OpenVINO): same probabilities as PyTorch through the same windows."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from glaciermap.constants import RASTER_NODATA
from glaciermap.errors import ConfigError
from glaciermap.inference import backends
from glaciermap.inference.mapping import map_scene
from glaciermap.inference.options import MapOptions
from glaciermap.inference.predictor import ScenePredictor
from glaciermap.models import get_model
from glaciermap.models.pretrained import PretrainedModel
from tests.data.checkpoints import ConvModel, read, scene_stats
from tests.data.scenes import write_scene

BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(package) is None, reason=f"{package} not installed (extra [{extra}])"
        ),
    )
    for name, (package, extra) in backends.BACKEND_PACKAGES.items()
]
FAST = {"device": "cpu", "quicklook": False, "progress": False, "write_probabilities": True}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 75 x 101 scene with a nodata box: windows at the edges, padding and skipped pixels."""
    return write_scene(
        tmp_path_factory.mktemp("scenes") / "odd",
        size=(75, 101),
        modalities=("optical", "dem"),
        labels=False,
        nodata_box=(5, 12, 60, 80),
    )


@pytest.fixture(scope="module")
def glavitu(scene: Path) -> PretrainedModel:
    """A GlaViTU with 32 px windows and region encoding (the location input goes through the graph too)."""
    torch.manual_seed(0)
    net = get_model("glavitu", location_encoding="region", img_size=32, region_codes=["ALP", "HMA"])
    return PretrainedModel.from_model(net, scene_stats(scene))


def _probabilities(model: PretrainedModel, scene: Path, out: Path, **options: object) -> np.ndarray:
    result = map_scene(model, scene, out, **FAST, **options)  # type: ignore[arg-type]
    assert result.summary["options"]["backend"] == options.get("backend", "torch")
    return read(out / "probabilities.tif")[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("overlap", "window"), [(0.5, "gaussian"), (0.25, "cosine")])
def test_backend_maps_glavitu_like_torch(
    glavitu: PretrainedModel, scene: Path, tmp_path: Path, backend: str, overlap: float, window: str
) -> None:
    """GlaViTU (region vector as location input), same windows and blending: |dp| < 1e-4 everywhere."""
    kw = {"window_size": 32, "overlap": overlap, "window": window, "batch_size": 3}
    expected = _probabilities(glavitu, scene, tmp_path / "torch", **kw)
    got = _probabilities(glavitu, scene, tmp_path / backend, backend=backend, **kw)
    valid = expected[0] != RASTER_NODATA
    assert valid.sum() > 0.8 * valid.size and not valid.all()  # the nodata box is nodata in both
    np.testing.assert_array_equal(got[0] != RASTER_NODATA, valid)
    assert float(np.abs(got[:, valid] - expected[:, valid]).max()) < 1e-4
    assert float(np.abs(expected[:, valid] - 0.5).max()) > 1e-3  # not a degenerate constant map


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_with_tta_and_a_dynamic_last_batch(scene: Path, tmp_path: Path, backend: str) -> None:
    """Test-time augmentation and batches of changing size (5 windows a row, batch 2) through one session."""
    model = PretrainedModel.from_model(ConvModel(symmetric=False), scene_stats(scene))
    kw = {"window_size": 32, "overlap": 0.5, "batch_size": 2, "tta": True}
    expected = _probabilities(model, scene, tmp_path / "torch", **kw)
    got = _probabilities(model, scene, tmp_path / backend, backend=backend, **kw)
    assert float(np.abs(got - expected).max()) < 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_session_is_compiled_once_and_shared(
    glavitu: PretrainedModel, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """One export per window shape; a predictor that adopts another's backend reuses its sessions."""
    from glaciermap.inference import predictor as module

    calls: list[tuple[int, int]] = []
    real = module.compile_backend

    def counting(*args: object, **kwargs: object) -> backends.WindowFunction:
        calls.append((int(kwargs["size"]), int(kwargs["channels"])))  # type: ignore[call-overload]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "compile_backend", counting)
    first = ScenePredictor(glavitu, MapOptions(backend=backend, window_size=32))  # type: ignore[arg-type]
    x = torch.randn(3, 8, 32, 32)
    region = torch.tensor([[0.0, 1.0, 0.0]]).expand(3, -1)
    with torch.no_grad():
        glavitu.model.eval()
        expected = torch.softmax(glavitu.model(x, region)["out"], dim=1)
    got, _ = first.predict_windows(x, region)
    first.predict_windows(x[:1], region[:1])
    second = ScenePredictor(glavitu, MapOptions(backend=backend, window_size=32))  # type: ignore[arg-type]
    second.adopt_backend(first)
    second.predict_windows(x[:2], region[:2])
    assert calls == [(32, 8)]
    assert float((got - expected).abs().max()) < 1e-4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "onnxruntime", "mc_passes": 4}, "Monte-Carlo dropout needs backend torch"),
        ({"backend": "onnxruntime", "precision": "bf16"}, "computes in float32"),
        ({"backend": "tensorflow"}, "backend is 'tensorflow'; expected one of torch, onnxruntime, openvino"),
    ],
)
def test_backend_configuration_errors(options: dict[str, object], message: str) -> None:
    model = PretrainedModel.from_model(ConvModel(dropout=0.2), None)
    with pytest.raises(ConfigError, match=message):
        ScenePredictor(model, MapOptions(device="cpu", **options))  # type: ignore[arg-type]


def test_missing_backend_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'glaciermap\[openvino\]'"):
        backends.check_backend("openvino", torch.device("cpu"), "32", 0)
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: object())  # installed
    with pytest.raises(ConfigError, match="runs on the CPU"):
        backends.check_backend("onnxruntime", torch.device("cuda"), "32", 0)
    backends.check_backend("openvino", torch.device("cpu"), "bf16", 0)  # OpenVINO has a bf16 mode


def test_non_torch_backend_resolves_auto_to_the_cpu_in_float32() -> None:
    model = PretrainedModel.from_model(ConvModel(), None)
    predictor = ScenePredictor(model, MapOptions(backend="onnxruntime"))
    assert (predictor.device.type, predictor.precision, predictor.channels_last) == ("cpu", "32", False)


def test_exported_graph_is_cached_by_network_and_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    from glaciermap.inference import onnx_cache
    from glaciermap.models import onnx as onnx_module

    folder = tmp_path / "cache"
    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(folder))
    exports: list[int] = []
    real = onnx_module.export_network

    def counting(*args: object, **kwargs: object) -> Path:
        exports.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_module, "export_network", counting)
    net = ConvModel().eval()
    x = torch.randn(2, net.in_channels, 16, 16, generator=torch.Generator().manual_seed(1))

    def run(network: ConvModel) -> torch.Tensor:
        fn = backends.compile_backend(
            "onnxruntime", network, size=16, channels=network.in_channels, location=None, precision="32"
        )
        return fn(x, None)

    first = run(net)
    assert len(exports) == 1 and len(list(folder.glob("*.onnx"))) == 1
    torch.testing.assert_close(first.sum(dim=1), torch.ones(2, 16, 16))  # probabilities
    again = run(net)  # same network and window: the cached graph, no export
    assert len(exports) == 1
    torch.testing.assert_close(again, first)
    changed = run(ConvModel(seed=1).eval())  # other weights: another graph
    assert len(exports) == 2 and not torch.allclose(changed, first)
    # a damaged graph is never run: it is exported again, with the same probabilities
    key = onnx_cache.graph_key(net, size=16, channels=net.in_channels, location=None, opset=onnx_module.OPSET)
    graph = folder / f"{key}.onnx"
    graph.write_bytes(graph.read_bytes()[:100])
    torch.testing.assert_close(run(net), first)
    assert len(exports) == 3 and onnx_cache.lookup(key, folder) == graph
    # off: every call exports; a folder that cannot be written: still works, nothing stored
    monkeypatch.setenv(onnx_cache.CACHE_ENV, "off")
    run(net)
    assert len(exports) == 4 and onnx_cache.cache_dir() is None
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(onnx_cache.CACHE_ENV, str(blocker / "cache"))
    torch.testing.assert_close(run(net), first)
    assert len(exports) == 5 and blocker.read_text() == "not a folder"


def test_cache_keeps_the_most_recent_graphs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glaciermap.inference import onnx_cache

    monkeypatch.setattr(onnx_cache, "MAX_ENTRIES", 2)
    graph = tmp_path / "g.onnx"
    graph.write_bytes(b"graph bytes")
    folder = tmp_path / "cache"
    for i, key in enumerate(("a", "b", "c")):
        assert onnx_cache.store(graph, key, folder)
        os.utime(folder / f"{key}.onnx", (1000 + i, 1000 + i))
    onnx_cache.store(graph, "d", folder)  # evicts the two oldest
    assert sorted(p.stem for p in folder.glob("*.onnx")) == ["c", "d"]
    assert sorted(p.stem for p in folder.glob("*.json")) == ["c", "d"]
    assert onnx_cache.lookup("c", folder) == folder / "c.onnx" and onnx_cache.lookup("a", folder) is None
    (folder / "c.json").write_text("{not json")
    assert onnx_cache.lookup("c", folder) is None
    assert onnx_cache.store(graph, "e", None) is False and onnx_cache.lookup("e", None) is None
    # the key sees the window size and every weight
    net = ConvModel()
    key = onnx_cache.graph_key(net, size=16, channels=8, location=None, opset=17)
    assert key == onnx_cache.graph_key(ConvModel(), size=16, channels=8, location=None, opset=17)
    assert key != onnx_cache.graph_key(net, size=32, channels=8, location=None, opset=17)
    with torch.no_grad():
        net.head.bias[0] += 1e-6
    assert key != onnx_cache.graph_key(net, size=16, channels=8, location=None, opset=17)


def test_a_bf16_session_is_checked_against_float32(scene: Path) -> None:
    """A bf16 session whose probabilities stray beyond bf16 rounding is refused with a one-line error."""
    torch.manual_seed(0)
    net = ConvModel(symmetric=False).eval()
    channels = net.in_channels

    def exact(x: torch.Tensor, location: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 rounding: accepted
            return torch.softmax(net(x)["out"].float(), dim=1)

    def wrong(x: torch.Tensor, location: torch.Tensor | None) -> torch.Tensor:
        return exact(x, location).flip(1)  # the classes swapped: a kernel computing nonsense

    kw = {"size": 32, "channels": channels, "location": None, "backend": "openvino"}
    backends.check_bf16_session(exact, net, **kw)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"openvino bf16 on this CPU: probabilities .* differ from float32 by"
    ):
        backends.check_bf16_session(wrong, net, **kw)  # type: ignore[arg-type]


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_openvino_bf16_maps_close_to_float32_or_refuses(
    glavitu: PretrainedModel, scene: Path, tmp_path: Path
) -> None:
    """On a CPU whose bf16 kernels are right, OpenVINO bf16 maps within bf16 rounding of float32; where a
    kernel is wrong for this network (small GlaViTU on a CPU with AMX), the check refuses it before mapping."""
    kw = {"window_size": 32, "overlap": 0.5}
    expected = _probabilities(glavitu, scene, tmp_path / "torch", **kw)
    try:
        got = _probabilities(glavitu, scene, tmp_path / "bf16", backend="openvino", precision="bf16", **kw)
    except ConfigError as error:
        assert "differ from float32" in str(error)
        assert not (tmp_path / "bf16" / "probabilities.tif").exists()  # nothing half-written
        return
    valid = expected[0] != RASTER_NODATA
    assert float(np.abs(got[:, valid] - expected[:, valid]).max()) < backends.BF16_CHECK_TOLERANCE
