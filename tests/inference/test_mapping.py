"""map_scene end to end with stand-in models: grid, exact crop-back, seams, nodata, options, interruption."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer
from torch import nn

from glaciermap.constants import RASTER_NODATA
from glaciermap.errors import ConfigError, InputError
from glaciermap.inference.confidence import entropy_confidence
from glaciermap.inference.mapping import map_scene
from glaciermap.inference.predictor import (
    CPU_BATCH_SIZE,
    GPU_BATCH_SIZE,
    MapOptions,
    ScenePredictor,
    default_batch_size,
)
from glaciermap.inference.progress import MappingProgress
from glaciermap.inference.source import SceneReader
from glaciermap.models.pretrained import PretrainedModel
from glaciermap.models.resunet import FusionResUNet
from tests.data.checkpoints import (
    ConvModel,
    PointwiseModel,
    normalised_scene,
    random_batch_norm_statistics,
    read,
    scene_stats,
    whole_scene_probabilities,
    write_constant_scene,
)
from tests.data.heap import RESTORE_CALLS, RETAIN_CALLS, recording_libc
from tests.data.scenes import write_scene

FAST = {"device": "cpu", "quicklook": False, "progress": False}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An odd-sized scene (75 x 101) with a -9999 box in optical and a NaN box in dem."""
    return write_scene(
        tmp_path_factory.mktemp("scenes") / "odd",
        size=(75, 101),
        modalities=("optical", "dem"),
        labels=False,
        nodata_box=(5, 12, 60, 80),
        nan_box=(40, 44, 0, 101),
    )


def _outputs(out: Path) -> dict[str, np.ndarray]:
    return {p.stem: read(p)[0] for p in out.glob("*.tif")}


@pytest.mark.parametrize(
    ("size", "overlap", "layout", "window"),
    [
        (32, 0.5, "compact", "gaussian"),
        (48, 0.25, "reference", "cosine"),
        (128, 0.5, "compact", "gaussian"),  # the scene is smaller than one window
        (32, 0.25, "compact", "crop"),
        (48, 0.5, "reference", "crop"),
        (128, 0.25, "compact", "crop"),  # the scene is smaller than one window
    ],
)
def test_blended_pointwise_prediction_equals_the_whole_scene_prediction(
    scene: Path, tmp_path: Path, size: int, overlap: float, layout: str, window: str
) -> None:
    """Grid, padding and exact crop-back: a 1x1 model must give the same probabilities as on the whole scene."""
    stats = scene_stats(scene)
    model = PointwiseModel()
    result = map_scene(
        PretrainedModel.from_model(model, stats),
        scene,
        tmp_path,
        window_size=size,
        overlap=overlap,
        layout=layout,  # type: ignore[arg-type]
        window=window,  # type: ignore[arg-type]
        write_probabilities=True,
        **FAST,  # type: ignore[arg-type]
    )
    image, invalid = normalised_scene(scene, stats)
    expected = whole_scene_probabilities(model, image)
    out = _outputs(tmp_path)
    valid = ~invalid
    np.testing.assert_allclose(out["probabilities"][:, valid], expected[:, valid], atol=2e-6)
    np.testing.assert_array_equal(out["classes"][0][valid], expected.argmax(0)[valid])
    np.testing.assert_allclose(out["confidence"][0][valid], entropy_confidence(expected)[valid], atol=2e-6)
    # nodata propagation: -9999 in optical and NaN in dem are nodata in every output
    assert invalid[5:12, 60:80].all() and invalid[40:44].all()
    assert (out["classes"][0][invalid] == 255).all()
    assert (out["confidence"][0][invalid] == RASTER_NODATA).all()
    assert (out["probabilities"][:, invalid] == RASTER_NODATA).all()
    # output grid == input grid
    with rasterio.open(scene / "optical.tif") as src:
        grid = (src.crs, src.transform, src.width, src.height)
    for name in ("classes", "confidence", "probabilities"):
        with rasterio.open(tmp_path / f"{name}.tif") as dst:
            assert (dst.crs, dst.transform, dst.width, dst.height) == grid
            assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    summary = result.summary
    assert summary["windows"] == summary["forward_passes"] > 0
    assert summary["scene_area_km2"] == pytest.approx(75 * 101 * 100 / 1e6)
    glacier_px = int(((out["classes"][0] == 1) & valid).sum())
    assert summary["area_km2"]["glacier"] == pytest.approx(glacier_px * 100 / 1e6)
    assert summary["nodata_fraction"] == pytest.approx(invalid.mean(), abs=1e-6)
    assert json.loads((tmp_path / "summary.json").read_text())["windows"] == summary["windows"]


def test_windows_without_valid_pixels_are_skipped_exactly(tmp_path: Path) -> None:
    folder = write_scene(
        tmp_path / "half",
        size=(100, 90),
        modalities=("optical", "dem"),
        labels=False,
        nodata_box=(0, 60, 0, 90),
    )
    stats = scene_stats(folder)
    model = PointwiseModel()
    result = map_scene(
        PretrainedModel.from_model(model, stats),
        folder,
        tmp_path / "out",
        window_size=32,
        overlap=0.5,
        write_probabilities=True,
        **FAST,  # type: ignore[arg-type]
    )
    # 100 x 90 px, 32 px windows, stride 16: 6 x 5 windows, padded to 112 x 96 (6 rows above the scene);
    # the first three rows of windows cover scene rows < 58, all nodata
    assert result.summary["skipped_windows"] == 3 * 5
    assert result.summary["windows"] == 6 * 5 - 3 * 5
    image, invalid = normalised_scene(folder, stats)
    probs = read(tmp_path / "out" / "probabilities.tif")[0]
    expected = whole_scene_probabilities(model, image)
    np.testing.assert_allclose(probs[:, ~invalid], expected[:, ~invalid], atol=2e-6)
    assert (probs[:, :60] == RASTER_NODATA).all()


@pytest.mark.parametrize(
    ("overlap", "window"),
    [(0.5, "gaussian"), (0.5, "cosine"), (0.25, "crop"), (0.125, "crop"), (0.0, "crop")],
)
def test_constant_scene_gives_a_seam_free_constant_output(
    tmp_path: Path, overlap: float, window: str
) -> None:
    """A translation-equivariant 3x3 model on a constant scene: no seams, no edge effects, odd size."""
    folder = write_constant_scene(tmp_path / "const", (77, 90))
    stats = scene_stats(folder)
    map_scene(
        PretrainedModel.from_model(ConvModel(), stats),
        folder,
        tmp_path / "out",
        window_size=32,
        overlap=overlap,
        window=window,  # type: ignore[arg-type]
        write_probabilities=True,
        **FAST,  # type: ignore[arg-type]
    )
    probs = read(tmp_path / "out" / "probabilities.tif")[0]
    assert probs.shape == (2, 77, 90)
    assert np.ptp(probs[0]) < 1e-6 and np.ptp(probs[1]) < 1e-6
    assert 0.01 < probs[0, 0, 0] < 0.99  # a real, non-saturated constant


def test_batching_channels_last_and_reading_each_row_once(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = scene_stats(scene)
    rows_read: list[int] = []
    original = SceneReader.read

    def counting_read(self: SceneReader, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        rows_read.extend(range(start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(SceneReader, "read", counting_read)
    model = ConvModel(symmetric=False)
    outs = []
    for i, kwargs in enumerate(
        ({"batch_size": 1}, {"batch_size": 5}, {"batch_size": 3, "channels_last": False})
    ):
        rows_read.clear()
        result = map_scene(
            PretrainedModel.from_model(model, stats),
            scene,
            tmp_path / str(i),
            window_size=32,
            write_probabilities=True,
            **kwargs,  # type: ignore[arg-type]
            **FAST,  # type: ignore[arg-type]
        )
        padded_rows = result.summary["padded_shape"][0]
        assert sorted(rows_read) == list(range(padded_rows))  # every padded row read exactly once
        outs.append(read(tmp_path / str(i) / "probabilities.tif")[0])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)
    np.testing.assert_allclose(outs[0], outs[2], atol=1e-5)


def test_bf16_autocast_is_close_to_float32(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPU bf16 autocast stands in for the GPU path: same numbers up to bf16 precision."""
    stats = scene_stats(scene)
    model = ConvModel(symmetric=False)
    probs = {}
    for precision in ("32", "bf16"):
        result = map_scene(
            PretrainedModel.from_model(model, stats),
            scene,
            tmp_path / precision,
            window_size=32,
            precision=precision,  # type: ignore[arg-type]
            write_probabilities=True,
            **FAST,  # type: ignore[arg-type]
        )
        assert result.summary["precision"] == precision
        probs[precision] = read(tmp_path / precision / "probabilities.tif")[0]
        assert "float32_layers" not in result.summary  # every shape is right on this CPU
    valid = probs["32"] != RASTER_NODATA
    diff = np.abs(probs["32"][valid] - probs["bf16"][valid])
    assert diff.max() < 3e-2
    assert diff.max() > 0  # bf16 really was used
    # a convolution whose bf16 kernel this CPU gets wrong runs in float32, and the summary says which
    from glaciermap.models import cpu_bf16

    monkeypatch.setattr(cpu_bf16, "bf16_convolution_is_exact", lambda *shape: shape[:2] != (8, 2))
    result = map_scene(
        PretrainedModel.from_model(model, stats),
        scene,
        tmp_path / "guarded",
        window_size=32,
        precision="bf16",
        write_probabilities=True,
        **FAST,  # type: ignore[arg-type]
    )
    assert result.summary["float32_layers"] == ["head"]
    guarded = read(tmp_path / "guarded" / "probabilities.tif")[0]
    assert 0 < np.abs(probs["32"][valid] - guarded[valid]).max() < 3e-2
    assert not np.array_equal(guarded, probs["bf16"])  # the head really ran in float32


def test_tta_of_an_equivariant_model_equals_no_tta_and_changes_others(scene: Path, tmp_path: Path) -> None:
    stats = scene_stats(scene)

    def run(model: torch.nn.Module, tta: bool, name: str) -> np.ndarray:
        result = map_scene(
            PretrainedModel.from_model(model, stats),  # type: ignore[arg-type]
            scene,
            tmp_path / name,
            window_size=32,
            tta=tta,
            write_probabilities=True,
            **FAST,  # type: ignore[arg-type]
        )
        assert result.summary["forward_passes"] == result.summary["windows"] * (8 if tta else 1)
        return read(tmp_path / name / "probabilities.tif")[0]

    symmetric = ConvModel(symmetric=True)
    np.testing.assert_allclose(run(symmetric, True, "s_tta"), run(symmetric, False, "s"), atol=1e-5)
    skewed = ConvModel(symmetric=False)
    assert np.abs(run(skewed, True, "k_tta") - run(skewed, False, "k")).max() > 1e-3


def test_mc_dropout_spread(scene: Path, tmp_path: Path) -> None:
    stats = scene_stats(scene)
    _, invalid = normalised_scene(scene, stats)
    runs = {}
    for name, dropout, passes in (("off", 0.0, 3), ("on", 0.5, 4), ("single", 0.0, 0)):
        model = ConvModel(dropout=dropout)
        result = map_scene(
            PretrainedModel.from_model(model, stats),
            scene,
            tmp_path / name,
            window_size=32,
            mc_passes=passes,
            write_probabilities=True,
            **FAST,  # type: ignore[arg-type]
        )
        assert not model.mc_dropout  # switched back off afterwards
        runs[name] = _outputs(tmp_path / name)
        assert ("mc_std" in runs[name]) == (passes > 1)
        assert result.summary["forward_passes"] == result.summary["windows"] * max(1, passes)
    for name in ("off", "on"):
        assert runs[name]["mc_std"].shape == (2, 75, 101)
        assert (runs[name]["mc_std"][:, invalid] == RASTER_NODATA).all()
    np.testing.assert_array_equal(runs["off"]["mc_std"][:, ~invalid], 0.0)
    np.testing.assert_allclose(runs["off"]["probabilities"], runs["single"]["probabilities"], atol=1e-6)
    spread = runs["on"]["mc_std"][:, ~invalid]
    assert spread.min() >= 0 and spread.mean() > 1e-3
    np.testing.assert_allclose(spread[0], spread[1], atol=1e-6)  # binary: both classes spread alike


def test_mc_dropout_is_reproducible_with_a_seed(scene: Path, tmp_path: Path) -> None:
    stats = scene_stats(scene)
    model = ConvModel(dropout=0.5)
    outs = []
    for i in range(2):
        map_scene(
            PretrainedModel.from_model(model, stats),
            scene,
            tmp_path / str(i),
            window_size=64,
            mc_passes=2,
            seed=7,
            **FAST,  # type: ignore[arg-type]
        )
        outs.append(read(tmp_path / str(i) / "mc_std.tif")[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_an_interrupted_run_leaves_no_file(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model fails midway: no final-named output and no temporary file remain."""
    model = PointwiseModel()
    calls = {"n": 0}
    forward = model.forward

    def failing(*args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash")
        return forward(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "forward", failing)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        map_scene(
            PretrainedModel.from_model(model, scene_stats(scene)),
            scene,
            out,
            window_size=32,
            overlap=0.5,  # enough windows for 4 batches
            write_probabilities=True,
            device="cpu",
            progress=False,
        )
    assert calls["n"] == 4
    assert not out.exists()  # no final file, no temporary file, not even the (new) folder


def test_an_earlier_complete_output_is_kept_when_a_rerun_fails(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = scene_stats(scene)
    map_scene(PretrainedModel.from_model(PointwiseModel(), stats), scene, tmp_path, window_size=32, **FAST)  # type: ignore[arg-type]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    broken = PointwiseModel()
    monkeypatch.setattr(broken, "forward", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        map_scene(PretrainedModel.from_model(broken, stats), scene, tmp_path, window_size=32, **FAST)  # type: ignore[arg-type]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_coordinate_encoding_gets_window_centres_in_degrees(scene: Path, tmp_path: Path) -> None:
    stats = scene_stats(scene)
    model = PointwiseModel()
    mapping = PretrainedModel.from_model(model, stats)
    mapping.location_encoding = "coordinates"
    predictor = ScenePredictor(mapping, MapOptions(window_size=64, overlap=0.5, device="cpu", batch_size=8))
    stream = predictor.stream(scene)
    for _ in stream:
        pass
    grid = stream.grid
    assert len(model.locations) == grid.rows.count  # one batch per row of windows
    first = model.locations[0]
    assert first is not None and first.shape == (grid.cols.count, 2)
    # centre of window (row 0, col 1) in scene pixels, then to lat/lon
    col = grid.cols.starts[1] + 32 - grid.cols.pad_before
    row = grid.rows.starts[0] + 32 - grid.rows.pad_before
    x, y = stream.scene.transform @ (col, row)
    lon, lat = Transformer.from_crs(stream.scene.crs, "EPSG:4326", always_xy=True).transform(x, y)
    np.testing.assert_allclose(first[1].numpy(), [lat, lon], atol=1e-4)


def test_batch_size_defaults_per_device(scene: Path, tmp_path: Path) -> None:
    mapping = PretrainedModel.from_model(PointwiseModel(), scene_stats(scene))
    cpu = ScenePredictor(mapping, MapOptions(window_size=64, overlap=0.5, device="cpu"))
    assert cpu.batch_size == CPU_BATCH_SIZE == 1 and cpu.options.batch_size == 1
    assert default_batch_size(torch.device("cuda")) == GPU_BATCH_SIZE == 8  # no GPU needed to resolve it
    assert ScenePredictor(mapping, MapOptions(window_size=64, device="cpu", batch_size=3)).batch_size == 3
    # one window per forward pass on the CPU, and the summary records the batch size used
    model = PointwiseModel()
    result = map_scene(
        PretrainedModel.from_model(model, scene_stats(scene)), scene, tmp_path, window_size=64, **FAST
    )  # type: ignore[arg-type]
    assert result.summary["options"]["batch_size"] == 1
    assert result.summary["windows"] == len(model.locations) > 1


def test_windows_are_predicted_by_a_folded_copy_and_the_model_is_left_as_it_was(
    scene: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = random_batch_norm_statistics(FusionResUNet(filters=4, depth=1))
    model.train()  # e.g. mapping between training epochs: the model must come back in training mode
    model.set_mc_dropout(True)  # on in the model but not asked for by the options: the windows ignore it
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mapping = PretrainedModel.from_model(model, scene_stats(scene))
    predictor = ScenePredictor(mapping, MapOptions(window_size=64, device="cpu"))
    x = torch.rand(2, 8, 64, 64)
    got, _ = predictor.predict_windows(x)
    assert torch.equal(predictor.predict_windows(x)[0], got)  # no dropout sampling
    assert not any(isinstance(m, nn.BatchNorm2d) for m in predictor.network().modules())
    model.eval().set_mc_dropout(False)
    with torch.no_grad():
        want = torch.softmax(model(x)["out"], dim=1)
    model.train().set_mc_dropout(True)
    assert torch.allclose(got, want, atol=1e-5)
    map_scene(mapping, scene, tmp_path, window_size=64, **FAST)  # type: ignore[arg-type]
    assert model.training and model.mc_dropout
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_region_encoding_location(scene: Path) -> None:
    stats = scene_stats(scene)  # the scene's region is "HMA"
    model = PointwiseModel()
    mapping = PretrainedModel.from_model(model, stats)
    mapping.location_encoding, mapping.region_codes = "region", ("ALP", "HMA")

    def vector(**kwargs: object) -> list[float]:
        predictor = ScenePredictor(mapping, MapOptions(window_size=128, device="cpu", **kwargs))  # type: ignore[arg-type]
        model.locations.clear()
        for _ in predictor.stream(scene):
            pass
        loc = model.locations[0]
        assert loc is not None
        return loc[0].tolist()

    assert vector() == [0.0, 1.0, 0.0]
    assert vector(region="ALP") == [1.0, 0.0, 0.0]
    assert vector(region="unseen") == [0.0, 0.0, 1.0]
    assert vector(region_vector=[0.2, 0.3, 0.5]) == pytest.approx([0.2, 0.3, 0.5])
    mapping.region_codes = ("ALP", "SVAL")
    assert vector() == [0.0, 0.0, 1.0]  # the scene's region is unknown to the model: "unseen"
    with pytest.raises(ConfigError, match="not one of the model's regions"):
        ScenePredictor(mapping, MapOptions(region="HMA"))
    with pytest.raises(ConfigError, match="region vector"):
        ScenePredictor(mapping, MapOptions(region_vector=[0.5, 0.5]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_size": 40}, "multiple of 16"),
        ({"overlap": 1.0}, "overlap"),
        ({"batch_size": 0}, "batch_size"),
        ({"mc_passes": -1}, "mc_passes"),
        ({"device": "tpu:banana"}, "device"),
        ({"precision": "16"}, "precision"),
        ({"mc_passes": 3}, "no dropout layer"),
        ({"region": "HMA"}, "only for region-encoding models"),
        ({"convolution": "fast"}, "convolution is 'fast'; expected one of auto, direct, winograd"),
        ({"convolution": "winograd", "precision": "bf16"}, "Winograd computes float32 on the CPU"),
    ],
)
def test_bad_options_raise_config_errors(
    scene: Path, tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        map_scene(
            PretrainedModel.from_model(PointwiseModel(), scene_stats(scene)),
            scene,
            tmp_path,
            **{**FAST, **kwargs},  # type: ignore[arg-type]
        )
    assert not any(tmp_path.iterdir())


def test_bad_scenes_raise_input_errors(scene: Path, tmp_path: Path) -> None:
    mapping = PretrainedModel.from_model(PointwiseModel(), scene_stats(scene))
    no_dem = write_scene(tmp_path / "no_dem", size=(40, 40), modalities=("optical",), labels=False)
    with pytest.raises(InputError, match=r"no dem\.tif"):
        map_scene(mapping, no_dem, tmp_path / "o1", **FAST)  # type: ignore[arg-type]
    empty = write_scene(
        tmp_path / "empty",
        size=(40, 40),
        modalities=("optical", "dem"),
        labels=False,
        nodata_box=(0, 40, 0, 40),
    )
    with pytest.raises(InputError, match="no valid pixel"):
        map_scene(mapping, empty, tmp_path / "o2", **FAST)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not found"):
        map_scene(mapping, tmp_path / "missing", tmp_path / "o3", **FAST)  # type: ignore[arg-type]
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_reader_keeps_a_false_colour_thumbnail_while_reading(scene: Path) -> None:
    """The quick-look's optical bands are subsampled from the rows read for mapping (no second read)."""
    from glaciermap.inference.predictor import thumbnail_step

    stats = scene_stats(scene)
    info = ScenePredictor(
        PretrainedModel.from_model(PointwiseModel(), stats), MapOptions(device="cpu")
    ).stream(scene)
    info.close()
    reader = SceneReader(
        info.scene,
        {"optical": ("blue", "green", "red", "nir", "swir1", "swir2"), "dem": ("elevation", "slope")},
        stats,
        0.0,
        pad_top=5,
        pad_left=2,
        padded_width=110,
        thumbnail_step=3,
    )
    for _ in reader.chunks([(0, 17), (17, 40), (40, 85)]):  # uneven chunks, with padding rows
        pass
    thumb = reader.thumbnail()
    assert thumb is not None and thumb.shape == (6, 25, 34)  # rows 1, 4, ..., 73; cols 1, 4, ..., 100
    with rasterio.open(scene / "optical.tif") as src:
        optical = src.read()
    for band in ("red", "nir", "swir1"):
        b = ("blue", "green", "red", "nir", "swir1", "swir2").index(band)
        np.testing.assert_array_equal(thumb[b], optical[b, 1::3, 1::3])
    assert np.isnan(thumb[0]).all()  # blue is not kept
    assert thumbnail_step(1000, 1024) == 1 and thumbnail_step(1000, 1025) == 2


def test_progress_bar_reports_km2_and_rate(scene: Path, tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from glaciermap.inference.progress import MappingProgress, format_rate

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=150)
    with MappingProgress(console=console) as bar:
        map_scene(
            PretrainedModel.from_model(PointwiseModel(), scene_stats(scene)),
            scene,
            tmp_path,
            window_size=32,
            device="cpu",
            quicklook=False,
            progress=bar,
        )
    text = buffer.getvalue()
    assert "mapping odd" in text and "0.76/0.76 km²" in text and "km²/s" in text  # 75 x 101 px at 10 m
    assert format_rate(10.0, 4.0) == "2.5 km²/s" and format_rate(1.0, 0.0) == "- km²/s"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_path_matches_cpu(scene: Path, tmp_path: Path) -> None:
    stats = scene_stats(scene)
    model = ConvModel(symmetric=False)
    probs = {}
    for device in ("cpu", "cuda"):
        result = map_scene(
            PretrainedModel.from_model(model, stats),
            scene,
            tmp_path / device,
            window_size=32,
            device=device,
            write_probabilities=True,
            quicklook=False,
        )
        assert result.summary["precision"] == ("bf16" if device == "cuda" else "32")
        probs[device] = read(tmp_path / device / "probabilities.tif")[0]
    np.testing.assert_allclose(probs["cuda"], probs["cpu"], atol=3e-2)


def test_glavitu_with_region_encoding_maps_a_scene(tmp_path: Path) -> None:
    """The real GlaViTU (small windows) through the mapper: location input, shapes, probabilities."""
    from glaciermap.models import get_model

    scene = write_scene(tmp_path / "small", size=(30, 40), modalities=("optical", "dem"), labels=False)
    torch.manual_seed(0)
    model = get_model("glavitu", location_encoding="region", img_size=32, region_codes=["ALP", "HMA"])
    result = map_scene(
        PretrainedModel.from_model(model, scene_stats(scene)),
        scene,
        tmp_path / "out",
        window_size=32,
        overlap=0.0,
        write_probabilities=True,
        **FAST,  # type: ignore[arg-type]
    )
    assert result.summary["location"] == {"encoding": "region", "region": "HMA", "vector": [0.0, 1.0, 0.0]}
    assert result.summary["windows"] == 2
    probs = read(tmp_path / "out" / "probabilities.tif")[0]
    valid = probs[0] != RASTER_NODATA
    assert probs.shape == (2, 30, 40) and valid.all()
    np.testing.assert_allclose(probs[:, valid].sum(axis=0), 1.0, atol=1e-5)


def test_auto_precision_uses_bf16_only_where_the_cpu_has_it(
    scene: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glaciermap.inference import predictor

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    amx = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert not predictor.cpu_has_native_bf16(avx2) and predictor.cpu_has_native_bf16(amx)
    monkeypatch.setenv(predictor.CPU_BF16_ENV, "auto")  # the suite keeps it off (tests/conftest.py)
    monkeypatch.setattr(predictor, "cpu_bf16_is_faster", lambda channels_last=True, min_speedup=2.0: False)
    assert not predictor.auto_bf16(torch.device("cpu")) and predictor.auto_bf16(torch.device("cuda"))
    # the predictor probes in the layout its network runs in (bf16 here only where channels-last)
    probed: list[bool] = []

    def faster_in_channels_last(channels_last: bool = True, min_speedup: float = 2.0) -> bool:
        probed.append(channels_last)
        return channels_last

    monkeypatch.setattr(predictor, "cpu_bf16_is_faster", faster_in_channels_last)
    mapping = PretrainedModel.from_model(PointwiseModel(), scene_stats(scene))
    assert ScenePredictor(mapping, MapOptions(window_size=64, device="cpu")).precision == "bf16"
    assert (
        ScenePredictor(mapping, MapOptions(window_size=64, device="cpu", channels_last=False)).precision
        == "32"
    )
    assert ScenePredictor(mapping, MapOptions(window_size=64, device="cpu", precision="32")).precision == "32"
    assert probed == [True, False]
    monkeypatch.setenv(predictor.CPU_BF16_ENV, "off")
    assert ScenePredictor(mapping, MapOptions(window_size=64, device="cpu")).precision == "32"
    assert predictor.auto_bf16(torch.device("cuda")) and probed == [True, False]
    monkeypatch.setenv(predictor.CPU_BF16_ENV, "maybe")
    with pytest.raises(ConfigError, match="GLACIERMAP_CPU_BF16 is 'maybe'; expected 'auto'"):
        ScenePredictor(mapping, MapOptions(window_size=64, device="cpu"))
    monkeypatch.undo()
    # the probe itself: skipped without the CPU flags, else timed in either layout against the threshold
    monkeypatch.setattr(predictor, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    predictor.cpu_bf16_is_faster.cache_clear()
    assert predictor.cpu_bf16_is_faster() is False  # no flags: no probe, float32
    monkeypatch.setattr(predictor, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    predictor.cpu_bf16_is_faster.cache_clear()
    for channels_last in (True, False):
        assert predictor.cpu_bf16_is_faster(channels_last, min_speedup=0.0) is True
        assert predictor.cpu_bf16_is_faster(channels_last, min_speedup=1e9) is False
    predictor.cpu_bf16_is_faster.cache_clear()


def test_bf16_probe_stops_at_the_first_timing_where_bf16_is_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU flags that promise bf16 over kernels that emulate it (oneDNN capped at AVX2: 9x slower) cost one
    pair of timings, not seven."""
    from glaciermap.inference import predictor

    clock = [0.0]
    reads: list[bool] = []

    def perf_counter() -> float:  # bf16 passes take 10x as long as float32 ones
        bf16 = torch.is_autocast_enabled("cpu")
        reads.append(bf16)
        clock[0] += 5.0 if bf16 else 0.5
        return clock[0]

    monkeypatch.setattr(predictor, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr(predictor.time, "perf_counter", perf_counter)
    predictor.cpu_bf16_is_faster.cache_clear()
    try:
        assert predictor.cpu_bf16_is_faster() is False
        # warm-up pair and one timed pair, two clock reads per pass
        assert reads == [False, False, True, True] * 2
        predictor.cpu_bf16_is_faster.cache_clear()
        reads.clear()
        assert predictor.cpu_bf16_is_faster(min_speedup=0.05) is True  # 0.1x still passes so low a bar
        assert len(reads) == 4 * 8
    finally:
        predictor.cpu_bf16_is_faster.cache_clear()


def test_a_cpu_map_predicts_inside_the_retained_heap_and_restores_it(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libc = recording_libc(monkeypatch)
    model = PointwiseModel()
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(len(libc.calls)))
    mapping = PretrainedModel.from_model(model, scene_stats(scene))
    map_scene(mapping, scene, tmp_path / "a", window_size=64, **FAST)  # type: ignore[arg-type]
    # every window ran with the heap retained (the hook is copied into the folded inference copy)
    assert seen and set(seen) == {len(RETAIN_CALLS)}
    assert libc.calls == RETAIN_CALLS + RESTORE_CALLS
    libc.calls.clear()
    monkeypatch.setenv("GLACIERMAP_CPU_HEAP", "system")
    map_scene(mapping, scene, tmp_path / "b", window_size=64, **FAST)  # type: ignore[arg-type]
    assert libc.calls == []


def test_the_network_runs_in_the_calling_thread_and_strips_are_written_in_another(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On glibc only the calling (main) thread's heap is kept by the retained heap: the network must run there."""
    from glaciermap.inference import outputs

    here = threading.current_thread().name
    model = PointwiseModel()
    network_threads: set[str] = set()
    model.register_forward_pre_hook(lambda module, args: network_threads.add(threading.current_thread().name))
    writer_threads: set[str] = set()
    write_strip = outputs._write_strip

    def recording_write_strip(*args: Any, **kwargs: Any) -> None:
        writer_threads.add(threading.current_thread().name)
        write_strip(*args, **kwargs)

    class RecordingProgress(MappingProgress):
        def __init__(self) -> None:
            super().__init__(enabled=False)
            self.total, self.calls = 0.0, list[tuple[str, float]]()

        def start_scene(self, name: str, total_km2: float) -> None:
            self.total = total_km2
            super().start_scene(name, total_km2)

        def advance(self, km2: float) -> None:
            self.calls.append((threading.current_thread().name, km2))
            super().advance(km2)

    monkeypatch.setattr(outputs, "_write_strip", recording_write_strip)
    bar = RecordingProgress()
    mapping = PretrainedModel.from_model(model, scene_stats(scene))
    map_scene(mapping, scene, tmp_path / "out", window_size=64, **{**FAST, "progress": bar})  # type: ignore[arg-type]
    assert network_threads == {here}
    assert writer_threads == {"glaciermap-writer"}
    # progress is reported in the calling thread, one call per strip, and adds up to the scene's area
    assert {name for name, _ in bar.calls} == {here} and len(bar.calls) >= 2
    assert sum(km2 for _, km2 in bar.calls) == pytest.approx(bar.total, rel=1e-9)


def test_winograd_convolutions_map_like_direct_ones_and_auto_picks_them_with_avx2(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glaciermap.inference import predictor
    from glaciermap.models import get_model
    from glaciermap.models.winograd import winograd_available

    if not winograd_available():
        pytest.skip("this torch build or CPU has no NNPACK")
    torch.manual_seed(0)
    model = random_batch_norm_statistics(get_model("glavitu", filters=16, transformer_depth=2, img_size=32))
    mapping = PretrainedModel.from_model(model, scene_stats(scene))
    calls: list[int] = []
    nnpack = torch._nnpack_spatial_convolution

    def counting(x: torch.Tensor, *args: Any) -> torch.Tensor:
        calls.append(x.shape[0])
        return nnpack(x, *args)

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", counting)
    probs, summaries = {}, {}
    for convolution in ("direct", "winograd"):
        result = map_scene(
            mapping,
            scene,
            tmp_path / convolution,
            window_size=32,
            batch_size=3,
            convolution=convolution,  # type: ignore[arg-type]
            write_probabilities=True,
            **FAST,  # type: ignore[arg-type]
        )
        summaries[convolution] = result.summary
        probs[convolution] = read(tmp_path / convolution / "probabilities.tif")[0]
        if convolution == "direct":
            assert calls == []
    assert summaries["direct"]["convolution"] == "direct" and summaries["direct"]["channels_last"] is True
    assert (
        summaries["winograd"]["convolution"] == "winograd" and summaries["winograd"]["channels_last"] is False
    )
    # 22 layers (2 per fusion branch, 2 per U-Net encoder level, bridge and decoder level, 4 in SETR's decoder),
    # window by window
    assert len(calls) == 22 * summaries["winograd"]["windows"] and set(calls) == {1}
    valid = probs["direct"] != RASTER_NODATA
    assert valid.any() and np.array_equal(valid, probs["winograd"] != RASTER_NODATA)
    assert 0 < np.abs(probs["direct"][valid] - probs["winograd"][valid]).max() < 1e-4
    # auto: Winograd with AVX2 kernels (the suite keeps it off, tests/conftest.py), for wide networks, in float32
    options = MapOptions(window_size=32, device="cpu")
    assert ScenePredictor(mapping, options).convolution == "direct"
    monkeypatch.setattr(predictor, "cpu_prefers_winograd", lambda: True)
    # this GlaViTU's 16-filter layers are narrow
    assert ScenePredictor(mapping, options).convolution == "direct"
    monkeypatch.setattr(predictor, "wide_enough", lambda model: model is mapping.model)
    chosen = ScenePredictor(mapping, options)
    assert chosen.convolution == "winograd" and not chosen.channels_last
    assert ScenePredictor(mapping, replace(options, precision="bf16")).convolution == "direct"
    assert ScenePredictor(mapping, replace(options, convolution="direct")).convolution == "direct"
    # where auto precision would pick bf16, asking for Winograd keeps float32; bf16 with Winograd is refused
    monkeypatch.setenv(predictor.CPU_BF16_ENV, "auto")
    monkeypatch.setattr(predictor, "cpu_bf16_is_faster", lambda channels_last=True, min_speedup=2.0: True)
    assert ScenePredictor(mapping, options).precision == "bf16"
    forced = ScenePredictor(mapping, replace(options, convolution="winograd"))
    assert (forced.precision, forced.convolution) == ("32", "winograd")
    with pytest.raises(ConfigError, match="in precision bf16"):
        ScenePredictor(mapping, replace(options, convolution="winograd", precision="bf16"))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert predictor.resolve_convolution("auto", cpu, "32", "openvino") == "direct"
    assert predictor.resolve_convolution("auto", cuda, "32", "torch") == "direct"
    with pytest.raises(ConfigError, match="windows run on cuda in precision 32 with backend torch"):
        predictor.resolve_convolution("winograd", cuda, "32", "torch")
