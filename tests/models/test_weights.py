"""The weights registry: members, get_model(weights=...), model cards checked against their records."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glaciermap.errors import ConfigError, InputError
from glaciermap.models import get_model, get_weight, list_weights
from glaciermap.models.pretrained import PretrainedModel, file_sha256
from glaciermap.models.resunet import FusionResUNet
from glaciermap.models.weights import CARDS_DIR, WEIGHTS, Weights, check_card


def test_registry_members_describe_their_files() -> None:
    assert [w.name for w in list_weights()] == list(WEIGHTS) and "synthetic_cpu" in WEIGHTS
    for w in list_weights():
        assert isinstance(w, Weights) and (w.repo_id is None) == (w.revision is None)
        if w.repo_id is None:
            assert file_sha256(w.path()) == w.sha256
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


def test_every_member_has_a_card_that_agrees_with_it() -> None:
    classifier_cards = {"crevasse_varionet_synthetic"}  # split-image classifier: checked below
    cards = sorted(p.stem for p in CARDS_DIR.glob("*.md") if p.stem not in classifier_cards)
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
    assert f"`{digest}`" in text and "synthetic crevasse world only" in text
