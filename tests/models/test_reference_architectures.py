"""Baselines (spec section 2, Karakoram 3.3.1) and the model registry."""

from __future__ import annotations

import argparse
import json
from types import ModuleType

import pytest
import torch
from timm.layers.cbam import CbamModule

from glaciermap.cli import COMMANDS
from glaciermap.commands import models as models_command
from glaciermap.errors import ConfigError, InputError
from glaciermap.models import SegmentationModel, get_model, list_models
from glaciermap.models.deeplab import DeepLabV3Plus
from glaciermap.models.resunet import FusionResUNet
from glaciermap.models.setr import FusionSETR
from glaciermap.models.unet_cbam import UNetCBAM


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _inputs(model: SegmentationModel, b: int = 2, h: int = 32, w: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {m: torch.rand(b, c, h, w, generator=g) for m, c in model.modalities.items()}


@pytest.mark.parametrize(
    ("name", "keras_total", "bn_stats"),
    [
        ("fusion_resunet", 32_586_370, 14_208),
        ("light_fusion_resunet", 2_052_930, 3_520),
        ("fusion_setr_ln16", 1_935_298, 768),
        ("fusion_setr_b16", 101_721_346, 2_560),
    ],
)
def test_reference_baselines_have_the_reference_parameter_counts(
    name: str, keras_total: int, bn_stats: int
) -> None:
    with torch.device("meta"):
        model = get_model(name)
    stats = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert (_count(model), stats) == (keras_total - bn_stats, bn_stats)


@pytest.mark.parametrize(
    ("name", "kwargs", "size"),
    [
        ("light_fusion_resunet", {}, (32, 48)),
        ("fusion_resunet", {"filters": 8}, (32, 32)),
        ("fusion_setr_ln16", {"depth": 2}, (32, 64)),
        ("deeplabv3plus", {"encoder": "resnet18"}, (64, 64)),
        ("deeplabv3plus", {"encoder": "resnet18", "fusion": False, "modalities": {"optical": 6}}, (32, 32)),
        ("unet_cbam", {"filters": 8}, (32, 48)),
    ],
)
def test_baseline_shapes_and_probabilities(
    name: str, kwargs: dict[str, object], size: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    model = get_model(name, **kwargs).eval()
    x = _inputs(model, 2, *size)
    with torch.no_grad():
        logits = model(x)
        probs = model.predict_proba(x)
        stacked = model(torch.cat(list(x.values()), dim=1))
    k = model.num_classes
    assert set(logits) == {"out"} and logits["out"].shape == (2, k, *size)
    torch.testing.assert_close(probs["out"].sum(dim=1), torch.ones(2, *size))
    torch.testing.assert_close(stacked["out"], logits["out"])


def test_setr_applies_softmax_before_the_last_upsampling() -> None:
    torch.manual_seed(0)
    model = FusionSETR(depth=2).eval()
    x = _inputs(model)
    with torch.no_grad():
        out = model(x)["out"]
        z = model.setr(model.fusion(x))  # half-resolution class scores
    assert z.shape == (2, 2, 16, 16)
    expected = torch.nn.functional.interpolate(torch.softmax(z, 1), scale_factor=2.0, mode="bilinear")
    torch.testing.assert_close(out.exp(), expected)
    torch.testing.assert_close(torch.logsumexp(out, dim=1), torch.zeros(2, 32, 32), atol=1e-5, rtol=0)


def test_unet_cbam_follows_the_karakoram_paper() -> None:
    model = UNetCBAM()
    assert model.modalities == {"optical": 4, "thermal": 1, "dem": 1} and model.num_classes == 3
    assert model.in_channels == 6
    assert sum(isinstance(m, CbamModule) for m in model.modules()) == 5  # 4 encoder levels + bottleneck
    assert [e.block[0].out_channels for e in model.encoders] == [64, 128, 256, 512]
    assert model.bottleneck.block[0].out_channels == 1024
    assert model.dropout.p == 0.5


def test_unet_cbam_dropout_is_active_in_training_and_with_mc_only() -> None:
    torch.manual_seed(0)
    model = UNetCBAM(filters=8)
    x = _inputs(model, h=64, w=64)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (input, output) of the dropout before the bottleneck
    model.dropout.register_forward_hook(lambda mod, args, out: seen.append((args[0], out)))

    def dropped_fraction() -> float:
        inp, out = seen[-1]
        kept = inp != 0
        assert int(kept.sum()) > 500
        return float(((out == 0) & kept).sum() / kept.sum())

    with torch.no_grad():
        model.train()
        model(x)
        train_drop = dropped_fraction()
        model.eval()
        e1, e2 = model(x)["out"], model(x)["out"]
        eval_drop = dropped_fraction()
        model.set_mc_dropout(True)
        model(x)
        mc_drop = dropped_fraction()
        inp, out = seen[-1]
    assert 0.4 < train_drop < 0.6 and 0.4 < mc_drop < 0.6  # rate 0.5 (Karakoram paper 3.3.1)
    assert eval_drop == 0.0
    torch.testing.assert_close(e1, e2)
    torch.testing.assert_close(out[out != 0], 2 * inp[out != 0])  # inverted-dropout scaling


@pytest.mark.parametrize("name", ["light_fusion_resunet", "fusion_setr_ln16"])
def test_reference_baselines_keep_dropout_off_unless_mc(name: str) -> None:
    torch.manual_seed(0)
    model = get_model(name, **({"depth": 2} if "setr" in name else {})).train()
    x = _inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["out"], model(x)["out"])
        model.eval().set_mc_dropout(True)
        assert (model(x)["out"] - model(x)["out"]).abs().max() > 1e-5


def test_deeplab_default_is_resnest101_with_mc_dropout_in_aspp() -> None:
    with torch.device("meta"):
        model = DeepLabV3Plus()
    assert model.hparams["encoder"] == "tu-resnest101e"
    assert model.fusion is not None
    assert 45_000_000 < _count(model) < 55_000_000
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    with pytest.raises(ConfigError, match="encoder"):
        DeepLabV3Plus(encoder="no-such-encoder")


def test_gradients_reach_every_baseline_parameter() -> None:
    torch.manual_seed(0)
    for model in (
        FusionResUNet(filters=8, depth=2),
        FusionSETR(depth=1),
        UNetCBAM(filters=8, depth=2, cbam_reduction=2),
    ):
        model.train()
        out = model(_inputs(model))["out"]
        (out * torch.randn_like(out)).sum().backward()
        missing = [
            n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)
        ]
        assert missing == [], type(model).__name__


def test_registry_lists_documented_entries_and_rebuilds_from_hparams() -> None:
    entries = list_models()
    names = [e.name for e in entries]
    assert names == [
        "glavitu",
        "fusion_resunet",
        "light_fusion_resunet",
        "light_region_resunet",
        "fusion_setr_ln16",
        "fusion_setr_b16",
        "deeplabv3plus",
        "unet_cbam",
    ]
    for entry in entries:
        assert entry.summary and entry.inputs and entry.outputs and entry.citation
    model = get_model("light_fusion_resunet", modalities={"optical": 6, "thermal": 1}, num_classes=3)
    hparams = json.loads(json.dumps(model.hparams))  # checkpoints store them as JSON
    rebuilt = get_model(model.arch, **hparams)
    assert (rebuilt.hparams, _count(rebuilt)) == (model.hparams, _count(model))
    rebuilt.load_state_dict(model.state_dict(), strict=True)


def test_registry_errors() -> None:
    with pytest.raises(ConfigError, match="unknown; available models: glavitu"):
        get_model("segformer")
    with pytest.raises(ConfigError, match="invalid arguments"):
        get_model("unet_cbam", heads=3)
    with pytest.raises(ConfigError, match=r"dropout: expected a rate in \[0, 1\), got 2"):
        get_model("light_fusion_resunet", dropout=2)
    model = get_model("unet_cbam", filters=8)
    with pytest.raises(InputError, match="missing modality thermal"):
        model({"optical": torch.rand(1, 4, 32, 32), "dem": torch.rand(1, 1, 32, 32)})


def _run_command(module: ModuleType, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return int(module.main(parser.parse_args(argv)))


def test_models_command_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert COMMANDS["models"] == "glaciermap.commands.models"
    assert _run_command(models_command, []) == 0
    text = capsys.readouterr().out
    assert "glavitu" in text and "Karakoram" in text and "citation:" in text
    assert _run_command(models_command, ["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert [r["name"] for r in rows] == [e.name for e in list_models()]
    assert rows[2]["defaults"] == {"filters": 32, "depth": 3}


def test_unet_cbam_maps_in_512_px_tiles_by_default() -> None:
    from glaciermap.inference.predictor import default_window_size

    model = get_model("unet_cbam", filters=8)
    assert model.hparams["img_size"] == 512

    class Mapping:  # the attribute default_window_size reads
        pass

    mapping = Mapping()
    mapping.model = model  # type: ignore[attr-defined]
    assert default_window_size(mapping) == 512  # type: ignore[arg-type]
