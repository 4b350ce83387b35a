"""The authors' weights end to end: ``convert-keras`` writes pretrained weights that ``map`` uses as is.

The shared Keras fixture (random weights, see ../shared/fixtures/README.md) is converted with the CLI, with
one of the authors' calibrators attached. The converted model takes raw physical values: fed the fixture's
normalised inputs mapped back to physical units with the published min-max constants, it reproduces the
fixture's Keras probabilities to the parity test's tolerance; ``glaciermap map --checkpoint OUT`` maps a
synthetic scene with no other model argument.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from glaciermap import cli
from glaciermap.calibration import KernelRidgeCalibrator
from glaciermap.constants import RASTER_NODATA, SCENE_FILES
from glaciermap.models import get_model
from glaciermap.models.glavitu import GlaViTU
from glaciermap.models.pretrained import PretrainedModel, load_pretrained
from glaciermap.synthetic.generate import generate_scene
from glaciermap.transforms.normalisation import reference_norm_stats


@pytest.fixture(scope="module")
def converted(keras_fixture: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    h5, _ = keras_fixture
    out = tmp_path_factory.mktemp("keras") / "glavitu_fixture.safetensors"
    status = cli.main(
        ["convert-keras", str(h5), str(out), "--modalities", "optical", "dem", "--calibrator", "global"]
    )
    assert status == 0
    return out


@pytest.mark.slow
def test_converted_model_takes_raw_values_and_matches_keras(
    converted: Path, keras_fixture: tuple[Path, Path]
) -> None:
    _, io_path = keras_fixture
    io = np.load(io_path)
    model = load_pretrained(converted)
    assert isinstance(model, PretrainedModel) and isinstance(model.model, GlaViTU)
    assert model.norm is not None and model.norm.method == "reference"
    assert model.class_names == ("background", "glacier")
    assert isinstance(model.calibrator, KernelRidgeCalibrator)
    assert model.metadata["provenance"]["source"] == "keras"
    assert model.metadata["provenance"]["calibrator"] == "the authors' glavitu_global calibrator"
    ref = reference_norm_stats(["optical", "dem"])
    raw = {}
    for m in ("optical", "dem"):
        s = ref.modalities[m]
        lo = torch.tensor(s.min).view(1, -1, 1, 1)
        hi = torch.tensor(s.max).view(1, -1, 1, 1)
        raw[m] = (torch.from_numpy(io[m]).double() * (hi - lo) + lo).float()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        with torch.inference_mode():
            probs = model.predict_proba(raw)
    finally:
        torch.set_num_threads(threads)
    expected = torch.from_numpy(io["main_probs"])
    assert float((probs - expected).abs().max()) <= 1e-4


@pytest.mark.slow
def test_map_with_converted_weights_needs_no_other_argument(converted: Path, tmp_path: Path) -> None:
    """One 384 x 384 window: the mapped probabilities are the converted model's on the raw scene."""
    scene = generate_scene(tmp_path / "scene", size=(384, 384), seed=1)
    out = tmp_path / "out"
    status = cli.main(
        [
            *("map", "--checkpoint", str(converted), "--scene", str(scene), "--out", str(out)),
            *("--device", "cpu", "--overlap", "0", "--probabilities", "--quiet", "--no-quicklook"),
        ]
    )
    assert status == 0
    assert (out / "calibrated_confidence.tif").is_file()  # the attached authors' calibrator was applied
    with rasterio.open(out / "probabilities.tif") as src:
        mapped = src.read()
    model = load_pretrained(converted)
    raw = {}
    for m in model.bands:
        with rasterio.open(scene / SCENE_FILES[m]) as src:
            raw[m] = torch.from_numpy(src.read().astype(np.float32))[None]
    with torch.inference_mode():
        expected = model.predict_proba(raw)[0].numpy()
    valid = mapped[0] != RASTER_NODATA
    assert valid.mean() > 0.9
    np.testing.assert_allclose(mapped[:, valid], expected[:, valid], atol=1e-4)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    assert not summary or "glavitu" in json.dumps(summary)


def test_insar_track_modalities_are_expressible() -> None:
    from glaciermap.commands.convert_keras import parse_modalities

    mods = parse_modalities(["optical", "dem", "co_pol_sar", "cross_pol_sar", "in_sar"])
    assert mods == {"optical": 6, "dem": 2, "sar": 2, "sar_cross": 2, "insar": 2}
    model = GlaViTU(mods, num_classes=2)
    stats = reference_norm_stats(list(mods))
    pretrained = PretrainedModel.from_model(model, stats)
    x = {m: torch.rand(1, c, 32, 32) for m, c in mods.items()}
    normalised = pretrained.normalise(x)
    sar = stats.modalities["sar"]
    expected = (torch.log10(x["sar"][:, :1] + 1e-6) - sar.min[0]) / (sar.max[0] - sar.min[0])
    torch.testing.assert_close(normalised["sar"][:, :1], expected)
    coh = stats.modalities["insar"]
    torch.testing.assert_close(
        normalised["insar"][:, :1], (x["insar"][:, :1] - coh.min[0]) / (coh.max[0] - coh.min[0])
    )


def test_a_sar_track_scene_folder_maps_with_the_reference_normalisation(tmp_path: Path) -> None:
    """A scene folder with sar_cross.tif is read like the other modalities (GlaViTU paper's SAR track)."""
    from glaciermap.datasets.scene_folder import inspect_scene
    from glaciermap.inference.mapping import map_scene
    from tests.data.scenes import write_scene

    scene = write_scene(
        tmp_path / "s", modalities=("optical", "dem", "sar", "sar_cross", "insar"), labels=False
    )
    assert {"sar", "sar_cross", "insar"} <= set(
        inspect_scene(scene, ["sar", "sar_cross", "insar"], labels="optional").rasters
    )
    mods = {"optical": 6, "sar": 2, "sar_cross": 2, "insar": 2}
    network = get_model("light_fusion_resunet", modalities=mods, num_classes=2, filters=8)
    model = PretrainedModel.from_model(network, reference_norm_stats(list(mods)))
    result = map_scene(
        model, scene, tmp_path / "out", window_size=32, device="cpu", progress=False, quicklook=False
    )
    assert result.summary["windows"] >= 1
