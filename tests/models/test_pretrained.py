"""Loading SegmentationTask checkpoints for mapping, the calibrator seam, and bad checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from glaciermap.baselines import band_ratio_model
from glaciermap.constants import IMAGE_FILL
from glaciermap.errors import InputError
from glaciermap.inference.mapping import map_scene
from glaciermap.models import pretrained as ckpt_module
from glaciermap.models.pretrained import (
    PretrainedModel,
    calibrator_from_dict,
    load_pretrained,
    register_calibrator,
)
from tests.data.checkpoints import PointwiseModel, normalised_scene, read, save_tiny_checkpoint, scene_stats
from tests.data.scenes import write_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene(
        tmp_path_factory.mktemp("ck") / "s64",
        size=(64, 64),
        modalities=("optical", "dem", "thermal"),
        labels=False,
        nodata_box=(0, 4, 0, 4),
    )


@pytest.fixture(scope="module")
def checkpoint(scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", scene_stats(scene))


def test_load_pretrained_rebuilds_model_and_preprocessing(checkpoint: Path, scene: Path) -> None:
    mapping = load_pretrained(checkpoint)
    raw = torch.load(checkpoint, weights_only=True)
    state = {k.removeprefix("model."): v for k, v in raw["state_dict"].items() if k.startswith("model.")}
    for key, value in mapping.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert not mapping.model.training
    assert mapping.bands == {
        "optical": ("blue", "green", "red", "nir", "swir1", "swir2"),
        "dem": ("elevation", "slope"),
    }
    assert mapping.class_names == ("background", "glacier")
    assert mapping.norm is not None and mapping.norm.to_dict() == scene_stats(scene).to_dict()
    assert mapping.calibrator is None
    assert mapping.info["model"] == "light_fusion_resunet" and mapping.info["checkpoint"] == str(checkpoint)
    assert mapping.metadata == raw["glaciermap"]


def test_map_with_a_checkpoint_equals_the_model_on_the_normalised_scene(
    checkpoint: Path, scene: Path, tmp_path: Path
) -> None:
    """One window covering the scene exactly: the mapper must feed the model what training fed it."""
    result = map_scene(
        checkpoint,
        scene,
        tmp_path,
        window_size=64,
        overlap=0.0,
        write_probabilities=True,
        device="cpu",
        progress=False,
    )
    assert result.summary["windows"] == 1
    mapping = load_pretrained(checkpoint)
    assert mapping.norm is not None
    image, invalid = normalised_scene(scene, mapping.norm)
    with torch.no_grad():
        expected = torch.softmax(mapping.model(torch.from_numpy(image)[None])["out"], dim=1)[0].numpy()
    probs = read(tmp_path / "probabilities.tif")[0]
    np.testing.assert_allclose(probs[:, ~invalid], expected[:, ~invalid], atol=1e-5)
    assert invalid[:4, :4].all() and (read(tmp_path / "classes.tif")[0][0][invalid] == 255).all()
    assert result.summary["model"]["model"] == "light_fusion_resunet"
    assert (tmp_path / "quicklook.png").stat().st_size > 1000


class _Squash:
    """A toy calibrator: c -> c^2."""

    def __call__(self, confidence: np.ndarray) -> np.ndarray:
        return confidence**2


def test_checkpoint_calibrator_is_loaded_and_applied(checkpoint: Path, scene: Path, tmp_path: Path) -> None:
    register_calibrator("test_square", lambda entry: _Squash())
    raw = torch.load(checkpoint, weights_only=True)
    raw["glaciermap"]["calibrator"] = {"kind": "test_square"}
    calibrated_ckpt = tmp_path / "calibrated.ckpt"
    torch.save(raw, calibrated_ckpt)
    assert isinstance(load_pretrained(calibrated_ckpt).calibrator, _Squash)
    # Applying it: a cheap pointwise model carrying the same calibrator.
    mapping = PretrainedModel.from_model(PointwiseModel(), scene_stats(scene), calibrator=_Squash())
    result = map_scene(mapping, scene, tmp_path / "out", window_size=32, device="cpu", progress=False)
    confidence = read(tmp_path / "out" / "confidence.tif")[0][0]
    calibrated = read(tmp_path / "out" / "calibrated_confidence.tif")[0][0]
    valid = confidence != -9999
    assert valid.sum() == 64 * 64 - 16
    np.testing.assert_allclose(calibrated[valid], confidence[valid] ** 2, rtol=1e-6)
    assert (calibrated[~valid] == -9999).all()
    assert result.summary["mean_calibrated_confidence"] == pytest.approx(
        float(np.mean(confidence[valid].astype(np.float64) ** 2)), rel=1e-5
    )
    assert "calibrated_confidence.tif" in result.summary["outputs"]


def test_lazy_calibrator_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ckpt_module.CALIBRATOR_KINDS, "lazy_square", f"{__name__}:_make_squash")
    assert isinstance(calibrator_from_dict({"kind": "lazy_square"}), _Squash)
    with pytest.raises(InputError, match="calibrator kind 'nope' is unknown"):
        calibrator_from_dict({"kind": "nope"}, "checkpoint x.ckpt")


def _make_squash(entry: dict[str, Any]) -> _Squash:
    return _Squash()


def test_bad_checkpoints_raise_input_errors(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_pretrained(tmp_path / "missing.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        load_pretrained(corrupt)
    raw = torch.load(checkpoint, weights_only=True)
    cases: dict[str, tuple[Any, str]] = {
        "no_meta": ({k: v for k, v in raw.items() if k != "glaciermap"}, "no 'glaciermap' metadata"),
        "no_stats": (
            {**raw, "glaciermap": {**raw["glaciermap"], "norm_stats": None}},
            "no normalisation statistics",
        ),
        "bad_model": (
            {**raw, "glaciermap": {**raw["glaciermap"], "model": "nope"}},
            "cannot rebuild model 'nope'",
        ),
        "bad_weights": (
            {**raw, "state_dict": {k: v for k, v in list(raw["state_dict"].items())[1:]}},
            "weights do not fit",
        ),
        "bad_calibrator": (
            {**raw, "glaciermap": {**raw["glaciermap"], "calibrator": {"kind": "unknown"}}},
            "calibrator kind 'unknown'",
        ),
    }
    for name, (content, match) in cases.items():
        path = tmp_path / f"{name}.ckpt"
        torch.save(content, path)
        with pytest.raises(InputError, match=match):
            load_pretrained(path)


def test_band_ratio_mapping_model() -> None:
    mapping = band_ratio_model()
    assert mapping.norm is None and mapping.bands == {
        "optical": ("blue", "green", "red", "nir", "swir1", "swir2")
    }
    assert mapping.info == {"model": "band_ratio", "ratio_threshold": 3.2, "blue_threshold": 0.17}


def test_fill_value_is_the_training_datasets() -> None:
    import inspect

    from glaciermap.datasets.scene import SceneDataset

    dataset_fill = inspect.signature(SceneDataset.__init__).parameters["fill_value"].default
    assert band_ratio_model().fill_value == dataset_fill == IMAGE_FILL
