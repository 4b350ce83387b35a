"""The weights registry: members, get_model(weights=...), model cards checked against their records."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glaciermap.errors import ConfigError, InputError
from glaciermap.models import VarioNet, get_classifier, get_model, get_weight, list_weights
from glaciermap.models.pretrained import PretrainedModel, file_sha256
from glaciermap.models.resunet import FusionResUNet
from glaciermap.models.weights import CARDS_DIR, WEIGHTS, Weights, check_card


def test_registry_members_describe_their_files() -> None:
    assert [w.name for w in list_weights()] == list(WEIGHTS) and "synthetic_cpu" in WEIGHTS
    for w in list_weights():
        assert isinstance(w, Weights) and (w.repo_id is None) == (w.revision is None)
        if w.repo_id is None:
            assert file_sha256(w.path()) == w.sha256
        assert w.trained_on and w.licence and w.paper and w.card
        if w.kind == "classifier":
            net, meta = w.load_classifier()
            assert meta["model"] == w.model and tuple(meta["class_names"]) == w.classes
            assert meta["task"] == "split_image_classification" and not net.training
            continue
        model = w.load()
        assert model.bands == w.bands and model.class_names == w.classes
        assert model.norm is not None and model.norm.method == w.normalisation
        assert model.metadata["model"] == w.model and tuple(model.region_codes) == w.regions
        assert w.trained_on and w.licence and w.paper and w.card
    assert "synthetic" in get_weight("synthetic_cpu").trained_on
    assert list_weights("glavitu") == []
    with pytest.raises(ConfigError, match="weights 'nope': unknown"):
        get_weight("nope")


def test_get_model_with_weights_returns_the_pretrained_model() -> None:
    model = get_model("light_fusion_resunet", weights="synthetic_cpu")
    assert isinstance(model, PretrainedModel) and isinstance(model.model, FusionResUNet)
    x = {m: torch.rand(1, c, 32, 32) for m, c in model.modalities.items()}
    with torch.no_grad():
        assert model(x)["out"].shape == (1, 3, 32, 32)
    assert isinstance(get_model("light_fusion_resunet", weights=get_weight("synthetic_cpu")), PretrainedModel)
    with pytest.raises(ConfigError, match="are for model 'light_fusion_resunet', not 'glavitu'"):
        get_model("glavitu", weights="synthetic_cpu")
    with pytest.raises(ConfigError, match="cannot change pretrained weights"):
        get_model("light_fusion_resunet", weights="synthetic_cpu", filters=8)


def test_classifier_weights_load_by_name_like_the_glacier_weights() -> None:
    assert [w.name for w in list_weights(kind="classifier")] == ["crevasse_varionet_synthetic"]
    assert "crevasse_varionet_synthetic" not in [w.name for w in list_weights(kind="segmentation")]
    record = get_weight("crevasse_varionet_synthetic")
    assert record.kind == "classifier" and list_weights("varionet_eq7") == [record]
    model = get_classifier("varionet_eq7", weights="crevasse_varionet_synthetic")
    same, _ = record.load_classifier()
    assert isinstance(model, VarioNet) and not model.training
    image, vario = torch.rand(2, 1, 201, 268) * 255, torch.rand(2, 159)
    with torch.no_grad():
        logits = model(image, vario)
        assert logits.shape == (2, 11) and torch.equal(logits, same(image, vario))
    with pytest.raises(ConfigError, match="are for model 'varionet_eq7', not 'vario_mlp'"):
        get_classifier("vario_mlp", weights="crevasse_varionet_synthetic")
    with pytest.raises(ConfigError, match="cannot change pretrained weights"):
        get_classifier("varionet_eq7", weights=record, width=8)
    with pytest.raises(ConfigError, match="split-image classifier; load them with load_classifier"):
        record.load()
    with pytest.raises(ConfigError, match=r"segmentation model; load them with load\(\)"):
        get_weight("synthetic_cpu").load_classifier()
    with pytest.raises(ConfigError, match="are for model 'varionet_eq7', not 'light_fusion_resunet'"):
        get_model("light_fusion_resunet", weights="crevasse_varionet_synthetic")


def test_a_classifier_record_that_disagrees_with_its_file_is_an_error(tmp_path: Path) -> None:
    from dataclasses import replace

    record = get_weight("crevasse_varionet_synthetic")
    with pytest.raises(InputError, match="holds a 'varionet_eq7', the registry says 'varionet_eq6'"):
        replace(record, model="varionet_eq6").load_classifier()
    with pytest.raises(InputError, match="sha256"):
        replace(record, sha256="0" * 64).load_classifier()


def test_every_member_has_a_card_that_agrees_with_it() -> None:
    cards = sorted(p.stem for p in CARDS_DIR.glob("*.md"))
    assert cards == sorted(WEIGHTS)
    for w in list_weights():
        assert check_card(CARDS_DIR / w.card) == w


def test_a_card_that_disagrees_is_a_clear_error(tmp_path: Path) -> None:
    text = (CARDS_DIR / "synthetic_cpu.md").read_text()
    sha = get_weight("synthetic_cpu").sha256
    cases = {
        "sha": (text.replace(f'sha256: "{sha}"', 'sha256: "' + "0" * 64 + '"'), "sha256 is .0000"),
        "classes": (
            text.replace("classes: [background, clean_ice, debris_ice]", "classes: [a, b, c]"),
            "classes",
        ),
        "bands": (text.replace("thermal: [thermal]", "thermal: [lst]"), "bands"),
        "keys": (text.replace("pipeline_tag: image-segmentation\n", ""), "lacks pipeline_tag"),
        "front": (text.split("---\n", 2)[2], "no YAML front matter"),
    }
    for name, (content, match) in cases.items():
        assert content != text, name
        path = tmp_path / f"{name}.md"
        path.write_text(content)
        with pytest.raises(InputError, match=match):
            check_card(path)


def test_hubconf_builds_models_through_torch_hub() -> None:
    root = Path(__file__).resolve().parents[2]
    model = torch.hub.load(str(root), "synthetic_cpu", source="local", trust_repo=True)
    assert isinstance(model, PretrainedModel) and model.class_names == get_weight("synthetic_cpu").classes
    crevasses = torch.hub.load(str(root), "crevasse_varionet_synthetic", source="local", trust_repo=True)
    assert isinstance(crevasses, VarioNet) and not crevasses.training
    random_glavitu = torch.hub.load(
        str(root), "glavitu", source="local", modalities={"optical": 6}, num_classes=2
    )
    assert random_glavitu.modalities == {"optical": 6}


def test_the_classifier_card_names_its_file_and_sha256() -> None:
    import hashlib

    from glaciermap.models.hub import BUNDLED_DIR

    text = (CARDS_DIR / "crevasse_varionet_synthetic.md").read_text()
    digest = hashlib.sha256(
        (BUNDLED_DIR / "crevasse_varionet_synthetic.safetensors").read_bytes()
    ).hexdigest()
    assert f"`{digest}`" in text and "synthetic crevasse scenes only" in text
