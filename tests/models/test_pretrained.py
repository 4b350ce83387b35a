"""PretrainedModel: loading checkpoints and released weights, raw-value forward, hub round trips, calibrators."""

from __future__ import annotations

import dataclasses
import json
import shutil
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
from glaciermap.models.glavitu import GlaViTU
from glaciermap.models.hub import WEIGHTS_FORMAT, export_weights
from glaciermap.models.pretrained import (
    PretrainedModel,
    calibrator_from_dict,
    file_sha256,
    glavitu_calibrator,
    load_pretrained,
    register_calibrator,
)
from glaciermap.models.resunet import FusionResUNet
from glaciermap.models.weights import CARD_KEYS, WEIGHTS, _front_matter, get_weight
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


# ---------------------------------------------------------------------------------------------------------
# The pretrained-model object: raw values in, one layout, hub round trips


def test_forward_takes_raw_values_and_fills_invalid_pixels(checkpoint: Path) -> None:
    model = load_pretrained(checkpoint)
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model.norm is not None and set(model.normaliser) == {"optical", "dem"}
    torch.manual_seed(0)
    raw = {"optical": torch.rand(1, 6, 32, 32) * 0.5, "dem": torch.rand(1, 2, 32, 32) * 3000}
    raw["dem"][0, 1, 3, 5] = float("nan")
    raw["optical"][0, 0, 7, 7] = -9999.0
    expected = {}
    for m, x in raw.items():
        s = model.norm.modalities[m]
        mean = torch.tensor(s.mean).view(1, -1, 1, 1)
        std = torch.tensor(s.std).view(1, -1, 1, 1)
        z = (x - mean) / std
        z[:, :, 3, 5] = IMAGE_FILL
        z[:, :, 7, 7] = IMAGE_FILL
        expected[m] = z
    with torch.no_grad():
        got = model(raw)["out"]
        want = model.model(expected)["out"]
        stacked = model(torch.cat([raw["optical"], raw["dem"]], dim=1))["out"]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(stacked, got, rtol=0, atol=0)
    with pytest.raises(InputError, match="lack modality 'dem'"):
        model({"optical": raw["optical"]})


def test_pretrained_file_and_training_checkpoint_give_identical_maps(
    checkpoint: Path, scene: Path, tmp_path: Path
) -> None:
    weights = export_weights(checkpoint, tmp_path / "tiny.safetensors")
    options = {
        "window_size": 64,
        "overlap": 0.0,
        "write_probabilities": True,
        "device": "cpu",
        "progress": False,
    }
    map_scene(checkpoint, scene, tmp_path / "ckpt", quicklook=False, **options)
    map_scene(weights, scene, tmp_path / "st", quicklook=False, **options)
    for name in ("classes.tif", "probabilities.tif", "confidence.tif"):
        np.testing.assert_array_equal(read(tmp_path / "ckpt" / name)[0], read(tmp_path / "st" / name)[0])
    meta = load_pretrained(weights).metadata
    assert meta["provenance"]["source"] == "training" and meta["provenance"]["epoch"] == meta["epoch"]


def _logits(model: PretrainedModel) -> torch.Tensor:
    torch.manual_seed(1)
    x = {"optical": torch.rand(2, 6, 32, 32), "dem": torch.rand(2, 2, 32, 32) * 1000}
    with torch.no_grad():
        return model(x)["out"]


def test_save_pretrained_from_pretrained_round_trip_is_exact(checkpoint: Path, tmp_path: Path) -> None:
    model = load_pretrained(checkpoint)
    folder = model.save_pretrained(tmp_path / "folder")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["bands"]["dem"] == ["elevation", "slope"]
    assert (folder / "README.md").read_text().startswith("---\nlibrary_name: glaciermap\n")
    front = _front_matter(folder / "README.md")
    assert set(CARD_KEYS) <= set(front) and front["glaciermap"]["sha256"] == file_sha256(
        folder / "model.safetensors"
    )
    assert front["glaciermap"]["classes"] == list(model.class_names)
    again = PretrainedModel.from_pretrained(folder)
    assert torch.equal(_logits(again), _logits(model))
    assert again.norm == model.norm and again.class_names == model.class_names
    # The model classes load their own weights and refuse another architecture's.
    assert isinstance(FusionResUNet.from_pretrained(folder).model, FusionResUNet)
    with pytest.raises(InputError, match="not a GlaViTU"):
        GlaViTU.from_pretrained(folder)
    # A sha256 file beside the weights is checked.
    (folder / "model.safetensors.sha256").write_text("0" * 64 + "  model.safetensors\n")
    with pytest.raises(InputError, match=r"sha256 .* does not match"):
        PretrainedModel.from_pretrained(folder)


def _hub_cache(root: Path, folder: Path, repo: str, commit: str) -> Path:
    """A Hugging Face hub cache holding ``folder`` as ``repo`` at ``commit`` (what a download leaves)."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        shutil.copy(f, snapshot / f.name)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return root


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_from_pretrained_reads_a_local_hub_cache_offline(
    checkpoint: Path, tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_pretrained(checkpoint)
    folder = model.save_pretrained(tmp_path / "folder")
    commit = "a" * 40
    cache = _hub_cache(tmp_path / "hub", folder, "glaciermap/tiny", commit)
    sha = file_sha256(folder / "model.safetensors")
    for revision in (None, commit):
        loaded = PretrainedModel.from_pretrained(
            "glaciermap/tiny", revision=revision, cache_dir=cache, sha256=sha
        )
        assert torch.equal(_logits(loaded), _logits(model))
    with pytest.raises(InputError, match="not in the hub cache"):
        PretrainedModel.from_pretrained("glaciermap/tiny", revision="b" * 40, cache_dir=cache)
    with pytest.raises(InputError, match=r"sha256 .* does not match"):
        PretrainedModel.from_pretrained("glaciermap/tiny", cache_dir=cache, sha256="f" * 64)
    # A registry member with that repository pins the sha256 when none is given.
    record = dataclasses.replace(
        get_weight("synthetic_cpu"), name="tiny", repo_id="glaciermap/tiny", revision=commit
    )
    monkeypatch.setitem(
        WEIGHTS, "tiny", dataclasses.replace(record, file="model.safetensors", sha256="e" * 64)
    )
    with pytest.raises(InputError, match=r"sha256 .* does not match"):
        PretrainedModel.from_pretrained("glaciermap/tiny", revision=commit, cache_dir=cache)
    monkeypatch.setitem(WEIGHTS, "tiny", dataclasses.replace(record, file="model.safetensors", sha256=sha))
    assert torch.equal(
        _logits(PretrainedModel.from_pretrained("glaciermap/tiny", cache_dir=cache)), _logits(model)
    )
    snapshot = cache / "models--glaciermap--tiny" / "snapshots" / commit / "model.safetensors"
    snapshot.write_bytes(snapshot.read_bytes()[:1000])
    with pytest.raises(InputError, match="corrupted or not the released one"):  # registry sha256
        PretrainedModel.from_pretrained("glaciermap/tiny", cache_dir=cache)
    monkeypatch.delitem(WEIGHTS, "tiny")
    with pytest.raises(InputError, match="not a readable safetensors"):  # no sha256 known: the reader
        PretrainedModel.from_pretrained("glaciermap/tiny", cache_dir=cache)


def test_push_to_hub_uploads_the_saved_folder(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import HfApi

    uploaded: dict[str, Any] = {}

    def upload_folder(self: HfApi, **kwargs: Any) -> str:
        uploaded.update(kwargs, files=sorted(p.name for p in Path(kwargs["folder_path"]).iterdir()))
        return "commit-info"

    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: None)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert load_pretrained(checkpoint).push_to_hub("me/tiny", revision="v1") == "commit-info"
    assert uploaded["repo_id"] == "me/tiny" and uploaded["revision"] == "v1"
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]


def test_malformed_metadata_is_one_clear_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file(
        {"w": torch.zeros(1)}, str(path), metadata={"format": WEIGHTS_FORMAT, "glaciermap": "{not json"}
    )
    with pytest.raises(InputError, match="metadata is not valid JSON"):
        load_pretrained(path)
    save_file({"w": torch.zeros(1)}, str(path), metadata={"format": WEIGHTS_FORMAT, "glaciermap": "{}"})
    with pytest.raises(InputError, match="lacks model, model_hparams, bands, class_names"):
        load_pretrained(path)


def test_authors_calibrators_reproduce_the_reference_table() -> None:
    conf = np.array([0, 0.02, 0.05, 0.1, 0.15, 0.5, 0.9, 1.0], dtype=np.float32)
    table = {
        "global": [0.000, 0.725, 0.832, 0.926, 0.975, 0.977, 0.977, 1.000],
        "global_insar": [0.000, 0.741, 0.874, 0.978, 0.981, 1.000, 1.000, 1.000],
        "regionencoding": [0.000, 0.740, 0.846, 0.968, 0.998, 0.737, 0.213, 1.000],
    }
    for name, expected in table.items():
        entry = glavitu_calibrator(name)
        assert entry["kind"] == "krr" and len(entry["support"]) == len(entry["dual_coef"]) > 2
        np.testing.assert_allclose(
            calibrator_from_dict(json.loads(json.dumps(entry)))(conf), expected, atol=6e-4
        )
