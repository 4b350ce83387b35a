"""``glaciermap models list|info NAME``: architectures and registered weights."""

from __future__ import annotations

import json

import pytest

from glaciermap import cli


def test_models_list_shows_architectures_and_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert (
        "glavitu" in out
        and "Pretrained weights" in out
        and "synthetic_cpu  (segmentation: light_fusion_resunet, bundled)" in out
        and "crevasse_varionet_synthetic  (classifier: varionet_eq7, bundled)" in out
    )
    assert cli.main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [w["name"] for w in data["weights"]] == ["synthetic_cpu", "crevasse_varionet_synthetic"]
    assert [w["kind"] for w in data["weights"]] == ["segmentation", "classifier"]


def test_models_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "info", "synthetic_cpu", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == ["background", "clean_ice", "debris_ice"] and info["repo_id"] is None
    assert cli.main(["models", "info", "light_fusion_resunet"]) == 0
    assert "synthetic_cpu" in capsys.readouterr().out
    assert cli.main(["models", "info", "crevasse_varionet_synthetic", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "classifier" and info["model"] == "varionet_eq7" and len(info["classes"]) == 11
    assert cli.main(["models", "info", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope' is neither an architecture" in err and len(err.strip().splitlines()) == 1
