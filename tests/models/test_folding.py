"""Inference copies with batch norm folded (glaciermap.models.folding): same function, model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.models import GlaViTU
from glaciermap.models.blocks import UpConv
from glaciermap.models.folding import (
    FoldedBatchNorm,
    TransposedUpConv,
    fold_conv_bn,
    fold_for_inference,
)
from glaciermap.models.light_region import LightRegionResUNet
from glaciermap.models.unet_cbam import UNetCBAM
from tests.data.checkpoints import random_batch_norm_statistics


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def _inputs(size: int, batch: int = 2) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "optical": torch.rand(batch, 6, size, size, generator=g),
        "dem": torch.rand(batch, 2, size, size, generator=g),
    }


def test_glavitu_folded_computes_the_same_logits_and_leaves_the_model_untouched() -> None:
    torch.manual_seed(0)
    model = random_batch_norm_statistics(GlaViTU(filters=16, transformer_depth=2, unet_depth=3, img_size=64))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # a model in training mode is copied into evaluation mode and stays as it was
    folded = fold_for_inference(model)
    assert model.training and not folded.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert (
        sum(isinstance(m, FoldedBatchNorm) for m in folded.modules()) == 2 * 2 + 4 + 2 * 7
    )  # branches, PUP, U-Net
    assert sum(isinstance(m, TransposedUpConv) for m in folded.modules()) == 3
    x = _inputs(64)
    with torch.inference_mode():
        want, got = model.eval()(x), folded(x)
    for head in ("out", "aux"):
        assert want[head].abs().max() > 1.0  # the statistics matter: a fold that ignored them would differ
        assert _relative(want[head], got[head]) < 2e-5
    with torch.inference_mode():  # the split used by bias optimisation survives the copy
        split = folded.forward_head(folded.forward_features(x))
    assert torch.allclose(split["out"], got["out"], atol=1e-6)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # the CPU bf16 path, fused
        want_bf16, got_bf16 = model(x)["out"].float(), folded(x)["out"].float()
    assert (
        _relative(want_bf16, got_bf16) < 0.1
    )  # bf16 rounding (against float32: tests/models/test_cpu_bf16.py)


@pytest.mark.parametrize(("height", "width"), [(5, 7), (8, 8), (1, 3)])
def test_transposed_upconv_equals_upsample_pad_conv_bn(height: int, width: int) -> None:
    torch.manual_seed(0)
    up = random_batch_norm_statistics(UpConv(5, 3)).eval()
    fast = up.folded()
    x = torch.randn(2, 5, height, width)
    with torch.no_grad():
        want, got = up(x), fast(x)
    assert got.shape == want.shape == (2, 3, 2 * height, 2 * width)
    assert torch.allclose(got, want, atol=1e-5)  # the last row and column use the zero padding as UpConv does


def test_sequential_conv_bn_pairs_fold_in_unet_cbam() -> None:
    torch.manual_seed(0)
    model = random_batch_norm_statistics(
        UNetCBAM({"optical": 6, "dem": 2}, filters=8, depth=2, img_size=64)
    ).eval()
    folded = fold_for_inference(model)
    # the U-Net blocks fold; timm's CBAM spatial gate (a 1-channel BatchNormAct2d) is copied as it is
    assert not any(type(m) is nn.BatchNorm2d for m in folded.modules())
    assert sum(isinstance(m, FoldedBatchNorm) for m in folded.modules()) == 2 * (
        2 + 1 + 2
    )  # 5 double convolutions
    x = _inputs(64)
    with torch.no_grad():
        assert _relative(model(x)["out"], folded(x)["out"]) < 2e-5


def test_folded_copy_keeps_location_input_and_mc_dropout() -> None:
    torch.manual_seed(0)
    model = random_batch_norm_statistics(
        LightRegionResUNet(region_codes=("A", "B"), filters=8, depth=2)
    ).eval()
    folded = fold_for_inference(model)
    x, region = _inputs(32), torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    with torch.no_grad():
        assert _relative(model(x, region)["out"], folded(x, region)["out"]) < 2e-5
        folded.set_mc_dropout(True)
        a, b = folded(x, region)["out"], folded(x, region)["out"]
    assert not torch.equal(a, b)  # the dropout layers are still there and sample
    assert not model.mc_dropout


def test_folded_copy_refuses_training() -> None:
    folded = fold_for_inference(GlaViTU(filters=8, transformer_depth=1, unet_depth=1, img_size=32))
    folded.train()
    with pytest.raises(ConfigError, match="inference copy with batch norm folded"):
        folded(_inputs(32, batch=2))


def test_fold_conv_bn_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="Conv2d and a BatchNorm2d of the same width"):
        fold_conv_bn(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5))
    with pytest.raises(ConfigError, match="Linear -> BatchNorm2d"):
        fold_conv_bn(nn.Linear(3, 4), nn.BatchNorm2d(4))
    conv, bn = nn.Conv2d(3, 4, 3, bias=False), random_batch_norm_statistics(nn.BatchNorm2d(4)).eval()
    fused = fold_conv_bn(conv, bn)
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(fused(x), bn(conv(x)), atol=1e-6)
    assert conv.bias is None  # the inputs are not modified


def test_conv_leaky_relu_fuses_on_the_cpu_in_float32_and_bf16_and_falls_back_for_gradients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from glaciermap.models import folding

    assert folding.fused_cpu_convolution() == torch.backends.mkldnn.is_available()
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    block = folding.ConvLeakyReLU(conv, 0.3)
    calls: list[int] = []
    fused = folding._conv_leaky_relu
    monkeypatch.setattr(folding, "_conv_leaky_relu", lambda *a: calls.append(1) or fused(*a))
    x = torch.randn(2, 4, 11, 13)
    with torch.no_grad():
        want = nn.functional.leaky_relu(conv(x), 0.3)
        for layout in (torch.contiguous_format, torch.channels_last):
            got = block.to(memory_format=layout)(x.contiguous(memory_format=layout))
            assert torch.allclose(got, want, atol=1e-5)
    assert len(calls) == (2 if folding.fused_cpu_convolution() else 0)
    # a gradient through the input (bias optimisation) takes the plain ops, and autograd works
    xg = x.clone().requires_grad_(True)
    block(xg).sum().backward()
    assert xg.grad is not None and len(calls) == (2 if folding.fused_cpu_convolution() else 0)
    with torch.no_grad():  # float64 (e.g. a numerical check) takes the plain ops
        assert block.double()(x.double()).dtype == torch.float64
        block.float()
    bf16_fused = folding.fused_cpu_convolution(torch.bfloat16)  # probed once, before counting calls
    calls.clear()
    with (
        torch.no_grad(),
        torch.autocast("cpu", dtype=torch.bfloat16),
    ):  # bf16 autocast: the fused call in bf16
        got = block(x)
        with monkeypatch.context() as patch:
            patch.setattr(folding, "fused_cpu_convolution", lambda dtype=torch.float32: False)
            plain = block(x)
    assert got.dtype == plain.dtype == torch.bfloat16
    assert len(calls) == (1 if bf16_fused else 0)
    assert _relative(plain.float(), got.float()) < 1e-2  # bf16 rounding
    assert _relative(want, got.float()) < 2e-2
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):  # other autocast dtypes: plain ops
        assert block(x).dtype == torch.float16
    assert len(calls) == (1 if bf16_fused else 0)
