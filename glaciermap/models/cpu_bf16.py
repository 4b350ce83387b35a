"""Convolutions whose bf16 result this CPU gets wrong run in float32 instead.

On a CPU with AMX (Intel Xeon 4th generation and later), the bf16 convolutions of the oneDNN that torch 2.14.1
ships (v3.12) return wrong numbers for some shapes. Measured on 2026-12-01 on such a CPU: 41 of 462 shapes, all
with 4 to 24 input channels and kernels of 4, 8 or 16 pixels, differed from float32 by 78-144 % of their largest
output, for example small GlaViTU's 16 x 16 patch embedding over 16 channels (``filters=16``), while full GlaViTU's
convolutions (2, 6 and 64 or more input channels) agree to bf16 rounding. With AMX switched off
(``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``) every shape tested agrees (``benchmarks/RESULTS.md``, "Precision on
a CPU with AMX").

Such a wrong map would still exit 0, so before a network runs in bf16 on a CPU, :func:`guard_cpu_bf16` checks
each distinct convolution shape once per process (:func:`bf16_convolution_is_exact`: a bf16 convolution of
random numbers against float32 arithmetic on the same bf16-rounded numbers) and wraps every convolution that
fails (:func:`float32_only`) to run in float32 with autocast off. The rest of the network keeps bf16.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glaciermap.models.folding import ConvLeakyReLU

__all__ = [
    "BF16_TOLERANCE",
    "FLOAT32_ONLY",
    "bf16_convolution_is_exact",
    "float32_only",
    "guard_cpu_bf16",
    "is_float32_only",
    "wrong_bf16_convolutions",
]

FLOAT32_ONLY = "_glaciermap_float32_only"
"""Instance attribute that marks a module run in float32 by :func:`float32_only`."""

BF16_TOLERANCE = 2e-2
"""Largest error of a bf16 convolution, relative to its largest output, that counts as bf16 rounding (a correct
kernel stays below 5e-3; the wrong ones measured 0.75 and more)."""


def float32_only(module: nn.Module) -> None:
    """Make ``module`` run in float32 with autocast off (its tensor inputs cast to float32); returns float32.

    The module's own ``forward`` is replaced on the instance, so its class, parameters and ``state_dict`` keys
    stay as they were (a trained model's checkpoints still load) and copies made with ``copy.deepcopy`` keep
    the replacement. Works under autocast (``bf16-mixed``); the module's weights must be float32.

    Args:
        module: The module, typically a convolution whose bf16 kernel is wrong on this CPU; modified in place.
    """
    module.__dict__["forward"] = types.MethodType(_float32_forward, module)
    module.__dict__[FLOAT32_ONLY] = True


def is_float32_only(module: nn.Module) -> bool:
    """Whether :func:`float32_only` was applied to ``module``."""
    return bool(module.__dict__.get(FLOAT32_ONLY, False))


def _float32_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    floats = [a.float() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
    with torch.autocast("cpu", enabled=False):
        return type(self).forward(self, *floats, **kwargs)


@functools.cache
def bf16_convolution_is_exact(
    in_channels: int,
    out_channels: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    transposed: bool,
) -> bool:
    """Whether this CPU's bf16 convolution of this shape agrees with float32 arithmetic on the same numbers.

    A seeded random input of 1 x ``in_channels`` x S x S pixels (S: 32, or 4 kernel extents when larger) and
    random weights, rounded to bf16, go through the bf16 kernel under autocast and, as the reference, through
    the float32 kernel; the shape passes when the largest difference is below :data:`BF16_TOLERANCE` of the
    largest reference output. Cached per shape, a few milliseconds each.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel: Kernel height and width.
        stride: Strides.
        padding: Integer paddings.
        dilation: Dilations.
        groups: Groups.
        transposed: A transposed convolution (``ConvTranspose2d``, no output padding).

    Returns:
        Whether the bf16 result is right.
    """
    g = torch.Generator().manual_seed(0)
    side = max(32, 4 * max(d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)))
    x = torch.randn(1, in_channels, side, side, generator=g).bfloat16().float()
    shape = (in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups)
    w = torch.randn(*shape, *kernel, generator=g).bfloat16().float()
    conv = F.conv_transpose2d if transposed else F.conv2d
    with torch.no_grad():
        want = conv(x, w, None, stride, padding, dilation=dilation, groups=groups)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = conv(x, w, None, stride, padding, dilation=dilation, groups=groups).float()
    scale = float(want.abs().max())
    return scale == 0.0 or float((got - want).abs().max()) <= BF16_TOLERANCE * scale


def _exact(conv: nn.Module) -> bool:
    """:func:`bf16_convolution_is_exact` for a ``Conv2d`` / ``ConvTranspose2d`` module (others: True)."""
    if not isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) or isinstance(conv.padding, str):
        return True
    return bf16_convolution_is_exact(
        conv.in_channels,
        conv.out_channels,
        (conv.kernel_size[0], conv.kernel_size[1]),
        (conv.stride[0], conv.stride[1]),
        (int(conv.padding[0]), int(conv.padding[1])),
        (conv.dilation[0], conv.dilation[1]),
        conv.groups,
        isinstance(conv, nn.ConvTranspose2d),
    )


def guard_cpu_bf16(net: nn.Module) -> list[str]:
    """Run, in place, each convolution of ``net`` whose bf16 kernel is wrong on this CPU in float32.

    Meant for a network about to run under CPU bf16 autocast (an inference copy from
    :func:`~glaciermap.models.folding.fold_for_inference`, or a model trained with ``bf16-mixed``); covers
    ``nn.Conv2d``, ``nn.ConvTranspose2d`` and :class:`ConvLeakyReLU` (as a whole, so its fused call runs in
    float32 too) through :func:`float32_only`. Elsewhere (other modules, functional convolutions) nothing
    changes. Applying it twice changes nothing more.

    Args:
        net: The network; modified in place (not its parameters or ``state_dict`` keys).

    Returns:
        The names of the modules now run in float32, in ``named_modules`` order (empty where every shape is
        right), including those guarded before.
    """
    wrong = set(wrong_bf16_convolutions(net))  # leaves out modules already run in float32
    for name, module in net.named_modules():
        if name in wrong:
            float32_only(module)
    return [name for name, module in net.named_modules() if is_float32_only(module)]


def wrong_bf16_convolutions(net: nn.Module) -> list[str]:
    """The convolutions of ``net`` whose bf16 kernel this CPU gets wrong (what :func:`guard_cpu_bf16` guards).

    A :class:`ConvLeakyReLU` is judged by its convolution and named as a whole; modules already run in float32
    are left out.

    Args:
        net: The network; not modified.

    Returns:
        Module names in ``named_modules`` order.
    """
    wrong: list[str] = []
    judged_with_parent: set[str] = set()
    for name, module in net.named_modules():
        if name in judged_with_parent:
            continue
        conv = module
        if isinstance(module, ConvLeakyReLU):
            conv = module.conv
            judged_with_parent.add(f"{name}.conv" if name else "conv")
        if not is_float32_only(module) and not _exact(conv):
            wrong.append(name)
    return wrong
