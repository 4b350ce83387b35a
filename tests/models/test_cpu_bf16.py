"""Convolutions whose bf16 kernel is wrong on this CPU run in float32 (glaciermap.models.cpu_bf16)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from glaciermap.models import GlaViTU, fold_for_inference
from glaciermap.models import cpu_bf16 as guard
from glaciermap.models.folding import ConvLeakyReLU


def _relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def test_a_shape_is_judged_against_float32_arithmetic_on_the_same_bf16_numbers() -> None:
    # full GlaViTU's shapes are right on every CPU measured (bf16 rounding only)
    assert guard.bf16_convolution_is_exact(64, 64, (3, 3), (1, 1), (1, 1), (1, 1), 1, False)
    assert guard.bf16_convolution_is_exact(128, 64, (3, 3), (2, 2), (1, 1), (1, 1), 1, True)
    assert guard.bf16_convolution_is_exact(64, 64, (16, 16), (16, 16), (0, 0), (1, 1), 1, False)


def test_flagged_convolutions_run_in_float32_and_the_rest_in_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # right in bf16: kept
        ConvLeakyReLU(nn.Conv2d(8, 8, 5, padding=2), 0.1),  # flagged: wrapped as a whole
        nn.Sequential(nn.Conv2d(8, 4, 5, padding=2)),  # flagged, nested
    ).eval()
    monkeypatch.setattr(guard, "bf16_convolution_is_exact", lambda *shape: shape[2] != (5, 5))  # 5x5 wrong
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        reference = net(x)
    guarded = fold_for_inference(net)
    keys = list(guarded.state_dict())
    assert guard.guard_cpu_bf16(guarded) == ["1", "2.0"]
    assert guard.is_float32_only(guarded[1]) and guard.is_float32_only(guarded[2][0])
    assert not guard.is_float32_only(guarded[0]) and not guard.is_float32_only(guarded[1].conv)
    assert list(guarded.state_dict()) == keys and isinstance(guarded[1], ConvLeakyReLU)  # nothing renamed
    assert guard.guard_cpu_bf16(guarded) == ["1", "2.0"]  # applying it again changes nothing
    guarded = copy.deepcopy(guarded)  # copies keep it (inference copies are deep copies)
    assert guard.is_float32_only(guarded[1]) and guarded[1].forward.__self__ is guarded[1]
    seen: dict[str, torch.dtype] = {}
    for name in ("0", "1", "2"):
        guarded.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, o.dtype)  # type: ignore[misc]
        )
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = guarded(x)
    assert seen == {"0": torch.bfloat16, "1": torch.float32, "2": torch.float32}
    assert got.dtype == torch.float32 and _relative(reference, got) < 2e-2
    with torch.no_grad():  # without autocast the wrappers change nothing
        assert torch.allclose(guarded(x), reference, atol=1e-5)


def test_small_glavitu_in_bf16_matches_float32_on_this_cpu() -> None:
    """On a CPU with AMX, oneDNN 3.12 gets small GlaViTU's patch embedding (16 channels, 16 x 16 kernel)
    wrong in bf16; guarded, the network agrees with float32 to bf16 rounding on any CPU."""
    torch.manual_seed(0)
    model = GlaViTU(filters=16, transformer_depth=2, unet_depth=2, img_size=64).eval()
    g = torch.Generator().manual_seed(1)
    x = {"optical": torch.rand(1, 6, 64, 64, generator=g), "dem": torch.rand(1, 2, 64, 64, generator=g)}
    plain, guarded = fold_for_inference(model), fold_for_inference(model)
    wrapped = guard.guard_cpu_bf16(guarded)
    with torch.inference_mode():
        want = model(x)["out"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            unguarded, got = plain(x)["out"].float(), guarded(x)["out"].float()
    assert _relative(want, got) < 0.05
    if _relative(want, unguarded) > 0.2:  # the kernel is wrong on this CPU: the guard found it
        assert "setr.patch_embed.proj" in wrapped
