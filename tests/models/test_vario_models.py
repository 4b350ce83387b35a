"""VarioMLP, ResNet-18 (1-channel) and VarioNet: shapes, Eq. 6 / Eq. 7 weights, freezing, registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glaciermap.errors import ConfigError
from glaciermap.models import (
    ResNet18,
    VarioMLP,
    VarioNet,
    adaptive_weights,
    confidence,
    get_classifier,
    list_classifiers,
)


def test_vario_mlp_widths_and_shape() -> None:
    model = VarioMLP(159, num_classes=11, hidden=(5, 2))
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(159, 795), (795, 318), (318, 11)]
    acts = [m for m in model.net if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 2 and all(a.negative_slope == 0.01 for a in acts)
    assert model(None, torch.zeros(3, 1, 159)).shape == (3, 11)


def test_resnet18_one_channel_both_modes() -> None:
    raw = ResNet18(num_classes=5, input_mode="raw")
    assert raw.net.conv1.in_channels == 1 and raw.net.fc.out_features == 5
    image = torch.full((2, 1, 30, 40), 255.0)
    assert raw.preprocess(image).shape == (2, 1, 30, 40)
    norm = ResNet18(num_classes=5, input_mode="normalised", size=(32, 48))
    x = norm.preprocess(image)
    assert x.shape == (2, 1, 32, 48)
    assert torch.allclose(x, torch.full_like(x, (1.0 - 0.485) / 0.229), atol=1e-5)
    raw.eval()
    norm.eval()
    assert raw(image).shape == (2, 5) and norm(image).shape == (2, 5)


def test_adaptive_weights_by_hand() -> None:
    # softmax of [ln 3, 0] = [0.75, 0.25]; of [0, 0] = [0.5, 0.5]; of [ln 9, 0] = [0.9, 0.1]
    z_r = torch.tensor([[torch.log(torch.tensor(3.0)), 0.0], [0.0, 0.0]])
    z_v = torch.tensor([[0.0, 0.0], [torch.log(torch.tensor(9.0)), 0.0]])
    alpha, beta = adaptive_weights(z_v, z_r, "eq6")
    assert torch.allclose(beta, torch.tensor([[0.75], [0.5]]))
    assert torch.allclose(alpha, torch.tensor([[0.25], [0.5]]))
    alpha, beta = adaptive_weights(z_v, z_r, "eq7")
    # beta = (c_R + 1 - c_V) / 2: (0.75 + 0.5) / 2, (0.5 + 0.1) / 2
    assert torch.allclose(beta, torch.tensor([[0.625], [0.3]]))
    assert torch.allclose(alpha, torch.tensor([[0.375], [0.7]]))
    # legacy: one batch-wide maximum (0.75 for ResNet, 0.9 for VarioMLP)
    _, beta = adaptive_weights(z_v, z_r, "eq6", batch_max=True)
    assert torch.allclose(beta, torch.tensor([[0.75], [0.75]]))
    _, beta = adaptive_weights(z_v, z_r, "eq7", batch_max=True)
    assert torch.allclose(beta, torch.tensor([[0.425], [0.425]]))
    assert not confidence(z_r.requires_grad_()).requires_grad


def _varionet(**kwargs: object) -> VarioNet:
    return VarioNet(vario_features=24, num_classes=4, hidden=(2,), **kwargs)  # type: ignore[arg-type]


def test_varionet_shapes_head_and_fusion() -> None:
    torch.manual_seed(0)
    model = _varionet(fusion="eq7").eval()
    image, vario = torch.rand(3, 1, 30, 40) * 255, torch.rand(3, 24)
    out = model.forward_details(image, vario)
    assert out["logits"].shape == (3, 4) and out["beta"].shape == (3, 1)
    z_v = model.vario_mlp(None, vario * 0.1)
    z_r = model.resnet(image)
    alpha, beta = adaptive_weights(z_v, z_r, "eq7")
    fused = alpha * z_v.softmax(1) + beta * z_r.softmax(1)
    block = model.blocks[0]
    expected = model.out(torch.relu(block.b(torch.relu(block.a(fused))) + block.skip(fused)))
    assert torch.allclose(out["logits"], expected, atol=1e-6)
    assert (block.a.in_features, block.a.out_features, model.out.in_features) == (4, 64, 64)


def test_varionet_discrete_weights_learnable_or_fixed() -> None:
    learn = _varionet()
    assert isinstance(learn.fusion_weights, nn.Parameter)
    assert learn.fusion_weights.tolist() == pytest.approx([0.45, 0.55])
    fixed = _varionet(learn_fusion_weights=False, alpha=0.15, beta=0.85)
    assert "fusion_weights" not in dict(fixed.named_parameters())
    out = fixed.eval().forward_details(torch.rand(2, 1, 30, 40), torch.rand(2, 24))
    assert out["alpha"].flatten().tolist() == pytest.approx([0.15, 0.15])
    assert out["beta"].flatten().tolist() == pytest.approx([0.85, 0.85])


def test_stage1_freezes_subnetworks_in_eval_mode() -> None:
    model = _varionet()
    model.freeze_subnetworks(True)
    model.train()
    assert not model.resnet.training and not model.vario_mlp.training and model.blocks.training
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fusion_weights", "blocks", "out"}
    model.freeze_subnetworks(True, train_mode=True)  # legacy: BN statistics keep updating
    assert model.resnet.training
    model.freeze_subnetworks(False)
    assert model.resnet.training and all(p.requires_grad for p in model.parameters())


def test_classifier_registry() -> None:
    names = [e.name for e in list_classifiers()]
    assert names == ["vario_mlp", "resnet18", "varionet", "varionet_eq6", "varionet_eq7"]
    model = get_classifier("varionet_eq6", vario_features=24, num_classes=4)
    assert isinstance(model, VarioNet) and model.fusion == "eq6"
    with pytest.raises(ConfigError, match="unknown"):
        get_classifier("nope")
    with pytest.raises(ConfigError, match="invalid arguments"):
        get_classifier("vario_mlp", wrong=1)


def test_narrow_resnet18_widths() -> None:
    model = ResNet18(num_classes=11, input_mode="normalised", size=(32, 43), width=16)
    net = model.net
    assert net.conv1.out_channels == 16 and net.conv1.in_channels == 1
    assert [net.layer1[0].conv1.out_channels, net.layer2[0].conv1.out_channels] == [16, 32]
    assert [net.layer3[0].conv1.out_channels, net.layer4[1].conv2.out_channels] == [64, 128]
    assert net.fc.in_features == 128 and sum(p.numel() for p in model.parameters()) == 701_947
    assert sum(p.numel() for p in ResNet18(num_classes=11).parameters()) == 11_175_883
    assert model.eval()(torch.rand(2, 1, 201, 268) * 255).shape == (2, 11)
