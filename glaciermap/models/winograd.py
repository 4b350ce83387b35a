"""Winograd convolutions for the 3x3 layers of an inference copy, on CPUs without AVX-512.

A 3x3 convolution computed tile by tile with Winograd's minimal filtering algorithm F(m x m, 3 x 3) needs
``(m + 2)^2`` multiplications per ``m x m`` output tile and channel pair instead of ``9 m^2`` (Lavin and Gray,
"Fast Algorithms for Convolutional Neural Networks", CVPR 2016, Eq. 7 and section 4): 1.7x fewer at m = 6,
the tile of NNPACK's CPU kernels, which every standard PyTorch build ships (``torch._nnpack_spatial_convolution``).
The result is the same convolution up to float32 rounding, a little larger than a direct convolution's
(relative error about 1e-5 per layer; GlaViTU's logits moved by at most 1.2e-4 on a scale of 30, as much as
folding the batch norms moves them, with the same class everywhere; ``benchmarks/RESULTS.md``, "Winograd
convolutions").

Where it pays: NNPACK has AVX2 kernels and no AVX-512 ones. On a CPU whose PyTorch kernels stop at AVX2
(issue 20's 2-core runner) it computed GlaViTU's 3x3 layers 1.4-2x faster than oneDNN's direct kernels, and a
whole forward pass 1.3x faster; with AVX-512 the whole map ran at 0.79x with Winograd, so
:func:`cpu_prefers_winograd` chooses it only where ATen's kernels are AVX2 ones (x86 without AVX-512; other CPUs are unmeasured). NNPACK takes contiguous (NCHW) tensors, and a network
with Winograd layers ran 1.14x faster contiguous than channels-last, so mapping switches layout with it. Narrow
layers (below 64 channels) ran slower that way than channels-last direct ones, so mapping also asks that most of
the network's 3x3 layers be wide (:func:`wide_enough`).

:func:`use_winograd` swaps every eligible layer of a network (3x3, stride 1, no dilation, one group, zero
padding) for :class:`WinogradConv2d` or, after a folded batch norm, :class:`WinogradConvLeakyReLU`. Each
computes with NNPACK only in float32 on the CPU, with no gradient asked for, outside autocast and when the
pass is not recorded (ONNX export, TorchScript, torch.compile), and while torch's thread count is the one NNPACK's
thread pool was made with (torch sizes that pool once, at NNPACK's first use); otherwise it runs the layer it
replaced. Batches are convolved one window at a time: NNPACK's batched path measured 1.4-3x slower than a loop.
"""

from __future__ import annotations

import functools
import os
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.models.folding import ConvLeakyReLU, _tracing

__all__ = [
    "WINOGRAD_ENV",
    "WinogradConv2d",
    "WinogradConvLeakyReLU",
    "cpu_prefers_winograd",
    "use_winograd",
    "wide_enough",
    "winograd_available",
]

WINOGRAD_ENV: Final[str] = "GLACIERMAP_WINOGRAD"
"""Environment variable: ``off`` keeps ``convolution="auto"`` on direct convolutions on every CPU (maps identical
across machines, as the test suite needs); ``auto`` (the default) lets :func:`cpu_prefers_winograd` decide."""


def winograd_available() -> bool:
    """Whether this torch build's NNPACK convolution runs here and agrees with ``F.conv2d``.

    Checked once per process on a small random input (it also initialises NNPACK, which its convolution does
    not do itself), so a build without NNPACK, or a CPU it does not support, keeps direct convolutions.
    """
    return _nnpack_threads() is not None


@functools.cache
def _nnpack_threads() -> int | None:
    """Threads of NNPACK's pool, or ``None`` without a working NNPACK.

    torch creates that pool at NNPACK's first convolution, with ``torch.get_num_threads()`` threads, and never
    resizes it; the first convolution is this probe's, so the pool has the thread count of now.
    """
    try:
        if not torch.backends.nnpack.is_available():
            return None
        threads = torch.get_num_threads()
        g = torch.Generator().manual_seed(0)
        x, w, b = torch.randn(1, 8, 13, 11, generator=g), torch.randn(5, 8, 3, 3, generator=g), torch.randn(5)
        with torch.no_grad():
            got = torch._nnpack_spatial_convolution(x, w, b, [1, 1], [1, 1])
            agree = torch.allclose(got, F.conv2d(x, w, b, padding=1), rtol=1e-4, atol=1e-4)
    except (AttributeError, RuntimeError):
        return None
    return threads if agree else None


def cpu_prefers_winograd() -> bool:
    """Whether ``convolution="auto"`` computes 3x3 layers with Winograd on this CPU (module docstring).

    True where ATen's CPU kernels are AVX2 ones (``torch.backends.cpu.get_cpu_capability()``, which honours
    ``ATEN_CPU_CAPABILITY``: an x86 CPU without AVX-512, the case measured), NNPACK works
    (:func:`winograd_available`) and ``$GLACIERMAP_WINOGRAD`` is not ``off``. Other CPUs (AVX-512, ARM, x86
    without AVX2) keep direct convolutions: unmeasured there, so not assumed faster.

    Raises:
        ConfigError: If ``$GLACIERMAP_WINOGRAD`` is neither ``auto`` nor ``off``.
    """
    setting = os.environ.get(WINOGRAD_ENV, "auto").strip().lower() or "auto"
    if setting not in ("auto", "off"):
        raise ConfigError(
            f"{WINOGRAD_ENV} is {setting!r}; expected 'auto' (Winograd on CPUs without AVX-512) or 'off'"
        )
    capability = torch.backends.cpu.get_cpu_capability().upper()
    return setting == "auto" and capability == "AVX2" and winograd_available()


WIDE_CHANNELS: Final[int] = 64
"""Input and output channels from which a 3x3 layer counts as wide (:func:`wide_enough`)."""

WIDE_SHARE: Final[float] = 0.75
"""Share of a network's eligible 3x3 layers that must be wide for ``convolution="auto"`` to pick Winograd."""


def wide_enough(net: nn.Module, channels: int = WIDE_CHANNELS, share: float = WIDE_SHARE) -> bool:
    """Whether enough of ``net``'s 3x3 layers are wide for Winograd to beat channels-last direct convolutions.

    Measured with AVX2 only (``benchmarks/RESULTS.md``, "Winograd convolutions"): NNPACK on contiguous tensors
    beat oneDNN's channels-last kernels from 64 input and output channels on (64 -> 64 at 96-384 px: 1.5-1.8x;
    256 -> 512 at 96 px: 3x), and lost below (16 -> 16 at 384 px: 0.5x, 6 -> 64 at 384 px: 0.9x), so a network
    of narrow layers ran slower with Winograd: the bundled 16-filter residual U-Net at 0.6-0.7x, where GlaViTU (20
    of its 22 such layers at 64 channels or more) ran 1.3x faster.

    Args:
        net: The network.
        channels: Smallest input and output width of a wide layer.
        share: Smallest share of wide layers among the eligible ones.

    Returns:
        True if at least ``share`` of the eligible 3x3 layers (:func:`use_winograd`) are wide.
    """
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and _eligible(m)]
    wide = [c for c in convs if min(c.in_channels, c.out_channels) >= channels]
    return bool(convs) and len(wide) >= share * len(convs)


def _eligible(conv: nn.Module) -> bool:
    """A 3x3 convolution NNPACK computes: stride 1, no dilation, one group, zero padding given as integers."""
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )


def _runs_winograd(x: Tensor, weight: Tensor) -> bool:
    """Whether this call may use NNPACK: float32 on the CPU, no gradient, no autocast, not recorded."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.dim() == 4
        and not torch.is_autocast_enabled("cpu")
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not _tracing()
        and _nnpack_threads() == torch.get_num_threads()
    )


def _winograd(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """NNPACK's convolution of ``x`` (B, C, H, W), one window at a time, contiguous output."""
    bias = conv.bias if conv.bias is not None else x.new_zeros(conv.out_channels)
    padding = [int(p) for p in conv.padding]  # type: ignore[union-attr]  # eligible: integer padding
    weight, x = conv.weight.contiguous(), x.contiguous()
    outs = [
        torch._nnpack_spatial_convolution(x[i : i + 1], weight, bias, padding, [1, 1]) for i in range(len(x))
    ]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


class WinogradConv2d(nn.Module):
    """A 3x3 convolution computed with Winograd (NNPACK) where it may, else the convolution itself.

    Args:
        conv: The convolution (see :func:`use_winograd` for which ones qualify); its parameters are shared.

    Shape:
        Those of ``conv``; the output is contiguous (NCHW) on the Winograd path.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        """Convolve; see the class docstring."""
        if _runs_winograd(x, self.conv.weight):
            return _winograd(x, self.conv)
        return self.conv(x)


class WinogradConvLeakyReLU(nn.Module):
    """:class:`~glaciermap.models.folding.ConvLeakyReLU` with its convolution computed by Winograd where it may.

    On the Winograd path the leaky ReLU runs in place on the convolution's output; otherwise the replaced
    module runs (oneDNN's fused call or the two plain ops).

    Args:
        layer: The fused convolution + leaky ReLU to replace; its parameters are shared.

    Shape:
        Those of ``layer.conv``.
    """

    def __init__(self, layer: ConvLeakyReLU) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        """Convolve and activate; see the class docstring."""
        if _runs_winograd(x, self.layer.conv.weight):
            return F.leaky_relu_(_winograd(x, self.layer.conv), self.layer.slope)
        return self.layer(x)


def use_winograd(net: nn.Module) -> int:
    """Swap, in place, every eligible 3x3 layer of an inference copy for its Winograd twin.

    Eligible are plain ``nn.Conv2d`` layers with a 3x3 kernel, stride 1, no dilation, one group and zero
    padding given as integers, alone or inside a :class:`~glaciermap.models.folding.ConvLeakyReLU`. Meant for
    the copies of :func:`~glaciermap.models.folding.fold_for_inference`; the twins share the parameters.

    Args:
        net: The network; modified in place.

    Returns:
        The number of layers swapped.

    Raises:
        ConfigError: If NNPACK does not work in this torch build or on this CPU (:func:`winograd_available`).
    """
    if not winograd_available():
        raise ConfigError(
            "convolution 'winograd' needs NNPACK, which this torch build or CPU does not provide; "
            "use convolution 'direct' or 'auto'"
        )
    return _swap(net)


def _swap(module: nn.Module) -> int:
    """Swap the eligible children of ``module`` and, below the others, theirs; the number swapped."""
    swapped = 0
    for name, child in list(module.named_children()):
        if isinstance(child, WinogradConv2d | WinogradConvLeakyReLU):
            continue  # swapped already
        twin: nn.Module | None = None
        if isinstance(child, ConvLeakyReLU) and _eligible(child.conv):
            twin = WinogradConvLeakyReLU(child)
        elif _eligible(child):
            twin = WinogradConv2d(child)  # type: ignore[arg-type]  # _eligible checked the type
        if twin is None:
            swapped += _swap(child)
        else:
            setattr(module, name, twin)
            swapped += 1
    return swapped
