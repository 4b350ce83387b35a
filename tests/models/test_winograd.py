"""Winograd (NNPACK) twins of 3x3 layers (glaciermap.models.winograd): same function, used only where they may."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.models import GlaViTU, winograd
from glaciermap.models.folding import ConvLeakyReLU, fold_for_inference
from glaciermap.models.winograd import (
    WINOGRAD_ENV,
    WinogradConv2d,
    WinogradConvLeakyReLU,
    cpu_prefers_winograd,
    use_winograd,
    wide_enough,
    winograd_available,
)
from tests.data.checkpoints import random_batch_norm_statistics

pytestmark = pytest.mark.skipif(not winograd_available(), reason="this torch build or CPU has no NNPACK")


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _conv(cin: int, cout: int, bias: bool = True, **kwargs: object) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(cin, cout, 3, bias=bias, **kwargs).eval()  # type: ignore[arg-type]


def _nnpack_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Record the input shape of every NNPACK call."""
    calls: list[tuple[int, ...]] = []
    original = torch._nnpack_spatial_convolution

    def recording(x: Tensor, *args: object) -> Tensor:
        calls.append(tuple(x.shape))
        return original(x, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", recording)
    return calls


@pytest.mark.parametrize(("bias", "padding"), [(True, 1), (False, 1), (True, 0), (True, 2)])
def test_winograd_convolution_equals_the_direct_one_window_by_window(
    bias: bool, padding: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = _conv(16, 8, bias=bias, padding=padding)
    x = torch.randn(3, 16, 21, 19, generator=torch.Generator().manual_seed(1))
    calls = _nnpack_calls(monkeypatch)
    twin = WinogradConv2d(conv)
    with torch.no_grad():
        got, want = twin(x), conv(x)
        got_cl = twin(x.contiguous(memory_format=torch.channels_last))
    assert calls == [(1, 16, 21, 19)] * 6  # one call per window, channels-last input made contiguous
    assert got.shape == want.shape and got.is_contiguous()
    assert 0 < _relative(got, want) < 1e-4  # Winograd's rounding, not the same kernel
    torch.testing.assert_close(got_cl, got)
    assert twin.conv is conv  # the parameters are shared


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_winograd_convolution_falls_back_where_nnpack_may_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    conv = _conv(4, 4, padding=1)
    twin = WinogradConv2d(conv)
    x = torch.randn(2, 4, 12, 12, generator=torch.Generator().manual_seed(2))
    calls = _nnpack_calls(monkeypatch)
    # a gradient asked for: the convolution itself, which back-propagates
    xg = x.clone().requires_grad_(True)
    out = twin(xg)
    torch.testing.assert_close(out, conv(xg), rtol=0, atol=0)
    out.sum().backward()
    assert xg.grad is not None and conv.weight.grad is not None
    # CPU bf16 autocast: the convolution as autocast computes it
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        auto = twin(x)
        assert auto.dtype == torch.bfloat16
        torch.testing.assert_close(auto, conv(x), rtol=0, atol=0)
    # another thread count than NNPACK's pool was made with: torch's own kernels, with the threads asked for
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), conv(x), rtol=0, atol=0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    # float64 and TorchScript tracing: plain convolution
    with torch.no_grad():
        torch.testing.assert_close(twin.double()(x.double()), conv(x.double()), rtol=0, atol=0)
    twin.float()
    with torch.no_grad():
        traced = torch.jit.trace(twin, x, check_trace=False)
    torch.testing.assert_close(traced(x), conv(x), rtol=0, atol=0)
    assert calls == []


def test_winograd_leaky_relu_twin_matches_the_fused_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = ConvLeakyReLU(_conv(8, 16, padding=1), 0.2)
    twin = WinogradConvLeakyReLU(layer)
    x = torch.randn(2, 8, 17, 23, generator=torch.Generator().manual_seed(3))
    calls = _nnpack_calls(monkeypatch)
    with torch.no_grad():
        got, want = twin(x), layer(x)
    assert len(calls) == 2 and (want < 0).any()  # the negative slope is exercised
    assert 0 < _relative(got, want) < 1e-4
    torch.testing.assert_close(got, F.leaky_relu(layer.conv(x), 0.2), rtol=1e-4, atol=1e-5)
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(twin(xg), layer(xg), rtol=0, atol=0)  # with a gradient: the layer itself
    assert len(calls) == 2


def test_use_winograd_swaps_exactly_the_eligible_layers() -> None:
    net = nn.Sequential(
        _conv(3, 8, padding=1),  # swapped
        ConvLeakyReLU(_conv(8, 8, padding=1), 0.1),  # swapped as a whole
        _conv(8, 8, padding=1, stride=2),  # stride 2: kept
        _conv(8, 8, padding=2, dilation=2),  # dilated: kept
        _conv(8, 8, padding=1, padding_mode="replicate"),  # not zero padding: kept
        _conv(8, 8, padding="same"),  # padding given as a string: kept
        nn.Conv2d(8, 8, 1),  # 1x1: kept
        nn.Conv2d(8, 8, 3, padding=1, groups=2),  # grouped: kept
        nn.Sequential(_conv(8, 4, padding=1)),  # nested: swapped
    ).eval()
    x = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = net(x)
    assert use_winograd(net) == 3
    kinds = [type(m).__name__ for m in net]
    assert kinds[:2] == ["WinogradConv2d", "WinogradConvLeakyReLU"]
    assert kinds[2:8] == ["Conv2d"] * 6 and type(net[8][0]) is WinogradConv2d
    assert use_winograd(net) == 0  # twins are not wrapped again
    with torch.no_grad():
        assert 0 < _relative(net(x), want) < 1e-4


def test_glavitu_with_winograd_computes_the_same_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = random_batch_norm_statistics(GlaViTU(filters=16, transformer_depth=2, unet_depth=3, img_size=64))
    folded = fold_for_inference(model)
    fast = fold_for_inference(model)
    swapped = use_winograd(fast)
    # every 3x3 layer: 2 per fusion branch, 2 per U-Net encoder level, bridge and decoder level, 4 in SETR's decoder
    assert swapped == sum(1 for m in folded.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert swapped == 2 * 2 + 2 * (3 + 1 + 3) + 4
    x = {
        "optical": torch.rand(2, 6, 64, 64, generator=torch.Generator().manual_seed(5)),
        "dem": torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(6)),
    }
    calls = _nnpack_calls(monkeypatch)
    with torch.inference_mode():
        want, got = folded(x)["out"], fast(x)["out"]
    assert len(calls) == 2 * swapped
    assert 0 < _relative(got, want) < 1e-4
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_only_networks_of_mostly_wide_layers_are_wide_enough() -> None:
    assert wide_enough(GlaViTU(img_size=64))  # 20 of its 22 3x3 layers have 64 channels or more
    assert not wide_enough(GlaViTU(filters=16, transformer_depth=1, img_size=64))

    def net(*widths: tuple[int, int]) -> nn.Module:
        return nn.Sequential(*(ConvLeakyReLU(nn.Conv2d(i, o, 3, padding=1), 0.2) for i, o in widths))

    assert wide_enough(net((64, 64), (64, 128), (128, 64), (16, 64)))  # 3 of 4
    assert not wide_enough(net((64, 64), (64, 128), (32, 64), (16, 64)))  # 2 of 4
    assert not wide_enough(
        nn.Sequential(nn.Conv2d(64, 64, 1), nn.Conv2d(64, 64, 3, stride=2))
    )  # none eligible
    assert wide_enough(net((32, 32), (32, 32)), channels=32) and not wide_enough(
        net((64, 64), (8, 8)), share=0.6
    )


def test_auto_prefers_winograd_only_with_avx2_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WINOGRAD_ENV, "auto")  # the suite keeps it off (tests/conftest.py)
    for capability, expected in (("AVX2", True), ("AVX512", False), ("DEFAULT", False), ("SVE256", False)):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        assert cpu_prefers_winograd() is expected
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setenv(WINOGRAD_ENV, "off")
    assert cpu_prefers_winograd() is False
    monkeypatch.setenv(WINOGRAD_ENV, "sometimes")
    with pytest.raises(ConfigError, match="GLACIERMAP_WINOGRAD is 'sometimes'; expected 'auto'"):
        cpu_prefers_winograd()
    monkeypatch.setenv(WINOGRAD_ENV, "auto")
    # no NNPACK: direct convolutions, and swapping refuses
    monkeypatch.setattr(winograd, "winograd_available", lambda: False)
    assert cpu_prefers_winograd() is False
    with pytest.raises(ConfigError, match="needs NNPACK"):
        use_winograd(nn.Sequential(_conv(3, 3, padding=1)))


def test_the_nnpack_probe_refuses_a_build_whose_convolution_disagrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        torch, "_nnpack_spatial_convolution", lambda x, w, b, p, s: F.conv2d(x, w, b, padding=p) + 1
    )
    winograd._nnpack_threads.cache_clear()
    try:
        assert winograd_available() is False
    finally:
        monkeypatch.undo()
        winograd._nnpack_threads.cache_clear()
    assert winograd_available() is True
