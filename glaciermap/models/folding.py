"""Inference copies of the networks: batch norm folded into the convolutions before it.

In evaluation mode a batch norm is an affine map per channel, y = s * x + (beta - s * mu) with
s = gamma / sqrt(var + eps) (Ioffe and Szegedy, ICML 2015, Algorithm 2), so it folds into the convolution that
feeds it: W' = s * W, b' = s * (b - mu) + beta. The copy computes the same function with one pass over the
activations less per batch norm; on a CPU, GlaViTU's batch norms take 9 % of a forward pass (measured, see
``benchmarks/RESULTS.md``, "CPU backends").

Where a folded convolution is followed by a leaky ReLU (GlaViTU's and the residual U-Net's
:class:`~glaciermap.models.blocks.ConvBNActX2`), :class:`ConvLeakyReLU` computes both in one oneDNN call on a
CPU (a convolution with an activation post-op, the call torch.compile's CPU backend emits for the same
pattern), in float32 or under bf16 autocast; elsewhere, or with gradients, it runs the two ops as before.

The up-convolution of the residual U-Net (nearest x2 upsampling, then a 2x2 convolution padded bottom/right,
:class:`~glaciermap.models.blocks.UpConv`) is rewritten as the one stride-2 transposed 3x3 convolution it
equals (:class:`TransposedUpConv`): 9 instead of 16 multiply-adds per input pixel and channel pair, and no
upsampled or padded copy of the input.

:func:`fold_for_inference` leaves the model it is given untouched and returns a copy in evaluation mode.
A folded batch norm is replaced by :class:`FoldedBatchNorm`, which refuses ``train()`` mode: the copy is for
inference only, and training it would silently skip the normalisation.
"""

from __future__ import annotations

import copy
import functools
import itertools
from typing import Protocol, TypeVar, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights

from glaciermap.errors import ConfigError

__all__ = [
    "ConvLeakyReLU",
    "Foldable",
    "FoldedBatchNorm",
    "TransposedUpConv",
    "fold_conv_bn",
    "fold_for_inference",
    "fused_cpu_convolution",
]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


@runtime_checkable
class Foldable(Protocol):
    """A module that knows its own inference replacement (used by :func:`fold_for_inference`)."""

    def folded(self) -> nn.Module:
        """An equivalent module for evaluation mode, built from this one's weights and statistics."""
        ...


class FoldedBatchNorm(nn.Module):
    """Stands where a batch norm was folded into the convolution before it: identity, inference only.

    Raises:
        ConfigError: When called in ``train()`` mode.
    """

    def __init__(self) -> None:
        super().__init__()
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x``; refuse training mode."""
        if self.training:
            raise ConfigError(
                "this network is an inference copy with batch norm folded into its convolutions "
                "(glaciermap.models.folding); train the original model instead"
            )
        return x


def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> nn.Conv2d:
    """A convolution computing ``bn(conv(x))`` of the evaluation-mode batch norm (module docstring).

    Args:
        conv: The ``Conv2d`` (with or without bias).
        bn: The ``BatchNorm2d`` applied to its output, with running statistics.

    Returns:
        A new ``Conv2d`` with bias; ``conv`` and ``bn`` are not modified.

    Raises:
        ConfigError: If the modules are not a ``Conv2d`` and a ``BatchNorm2d`` with running statistics of the
            convolution's width.
    """
    if not (
        isinstance(conv, nn.Conv2d)
        and isinstance(bn, nn.BatchNorm2d)
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == conv.out_channels
    ):
        raise ConfigError(
            f"{type(conv).__name__} -> {type(bn).__name__}: expected a Conv2d and a BatchNorm2d of the same "
            "width with running statistics to fold"
        )
    return fuse_conv_bn_eval(copy.deepcopy(conv).eval(), copy.deepcopy(bn).eval())


class ConvLeakyReLU(nn.Module):
    """``leaky_relu(conv(x), slope)``, in one oneDNN call on a CPU when no gradient is needed.

    The fused call (``torch.ops.mkldnn._convolution_pointwise`` with a ``leaky_relu`` post-op) is used when
    :func:`fused_cpu_convolution` finds it works in this torch build for the dtype at hand, the weight is
    float32 on the CPU, the input is float32 with autocast off or the pass runs under CPU bf16 autocast (then
    input, weight and bias are cast to bf16 first, as autocast casts them for the convolution), nothing asks
    for a gradient and the pass is not being recorded (ONNX export, TorchScript, torch.compile see the two
    plain ops); otherwise the two ops run one after the other. Both give the same numbers up to float32
    rounding (tested to 1e-5), or bf16 rounding under autocast.

    Args:
        conv: The convolution (zero padding, integer padding).
        slope: Negative slope of the leaky ReLU.

    Shape:
        Those of ``conv``.
    """

    def __init__(self, conv: nn.Conv2d, slope: float) -> None:
        super().__init__()
        self.conv = conv
        self.slope = float(slope)
        self._fusable = conv.padding_mode == "zeros" and not isinstance(conv.padding, str)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve and activate; see the class docstring."""
        conv = self.conv
        dtype = _fused_dtype(x, conv.weight)
        if (
            dtype is not None
            and self._fusable
            and not (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad))
            and not _tracing()
            and fused_cpu_convolution(dtype)
        ):
            return _conv_leaky_relu(x, conv, self.slope, dtype)
        return F.leaky_relu(conv(x), self.slope)

    def extra_repr(self) -> str:
        """The slope shown in the module's ``repr``."""
        return f"slope={self.slope}"


def _tracing() -> bool:
    """Whether the forward pass is being recorded (ONNX export, TorchScript, torch.compile): keep plain ops."""
    tracing = torch.jit.is_tracing()  # type: ignore[attr-defined]  # public, not re-exported for mypy
    return bool(tracing or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling())


def _fused_dtype(x: Tensor, weight: Tensor) -> torch.dtype | None:
    """The dtype the fused call computes in: float32, bf16 under CPU bf16 autocast, else ``None`` (no fusion)."""
    if x.device.type != "cpu" or weight.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    if not torch.is_autocast_enabled("cpu"):
        return torch.float32 if x.dtype == torch.float32 else None
    autocast_dtype = torch.get_autocast_dtype("cpu")
    if autocast_dtype == torch.bfloat16 and x.dtype in (torch.float32, torch.bfloat16):
        return torch.bfloat16
    return None


def _conv_leaky_relu(x: Tensor, conv: nn.Conv2d, slope: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """The fused call in ``dtype``: input, weight and bias cast as autocast would cast them for the convolution."""
    padding = [int(p) for p in conv.padding]  # type: ignore[union-attr]
    bias = conv.bias
    return torch.ops.mkldnn._convolution_pointwise(  # type: ignore[no-any-return]
        x.to(dtype),
        conv.weight.to(dtype),
        None if bias is None else bias.to(dtype),
        padding,
        list(conv.stride),
        list(conv.dilation),
        conv.groups,
        "leaky_relu",
        [slope],
        "",
    )


def fused_cpu_convolution(dtype: torch.dtype = torch.float32) -> bool:
    """Whether this torch build's fused CPU convolution + leaky ReLU runs in ``dtype`` and agrees with the two ops.

    Checked once per process and dtype on a small random input (channels-last and not), against the plain ops
    (under bf16 autocast for ``torch.bfloat16``, within bf16 rounding), so a torch build without oneDNN, or one
    whose internal op has changed, falls back to the unfused ops instead of failing.
    """
    return _probe_fused(dtype)


@functools.cache
def _probe_fused(dtype: torch.dtype) -> bool:
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)
        conv, x = nn.Conv2d(3, 4, 3, padding=1), torch.randn(2, 3, 9, 7, generator=g)
        bf16 = dtype == torch.bfloat16
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            want = F.leaky_relu(conv(x), 0.2).float()
            for layout in (torch.contiguous_format, torch.channels_last):
                got = _conv_leaky_relu(
                    x.contiguous(memory_format=layout), conv.to(memory_format=layout), 0.2, dtype
                )
                if got.dtype != dtype or not torch.allclose(got.float(), want, atol=3e-2 if bf16 else 1e-5):
                    return False
    except (AttributeError, RuntimeError, TypeError):
        return False
    return True


class TransposedUpConv(nn.Module):
    """Nearest x2 upsampling + 2x2 convolution (padded bottom/right) + batch norm as one transposed conv.

    Per axis, with the 2-tap kernel [w0, w1] of the convolution on the upsampled input u (u[2i] = u[2i+1] =
    x[i]): output 2i = (w0 + w1) x[i] and output 2i+1 = w0 x[i] + w1 x[i+1], with x[H] = 0 (the padding). That is
    a transposed convolution of stride 2, padding 1 and output padding 1 with the 3-tap kernel
    [w1, w0 + w1, w0]; in 2-D the kernel is that map applied along both axes. The batch norm is folded first.

    Args:
        weight: (C_out, C_in, 2, 2) weight of the 2x2 convolution.
        bias: (C_out,) bias after folding the batch norm.

    Shape:
        (B, C_in, H, W) -> (B, C_out, 2H, 2W).
    """

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        out_channels, in_channels = weight.shape[:2]
        self.conv = nn.ConvTranspose2d(
            in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, device=weight.device
        )
        with torch.no_grad():
            kernel = _three_taps(_three_taps(weight.detach(), 2), 3)  # (C_out, C_in, 3, 3)
            self.conv.weight.copy_(kernel.transpose(0, 1))  # ConvTranspose2d wants (C_in, C_out, kh, kw)
            self.conv.bias.copy_(bias.detach())  # type: ignore[union-attr]

    @classmethod
    def from_upconv(cls, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> TransposedUpConv:
        """Build from the 2x2 convolution and the batch norm of an up-convolution (evaluation mode)."""
        if bn.running_mean is None or bn.running_var is None:
            raise ConfigError("up-convolution batch norm: expected running statistics to fold")
        weight, bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        return cls(weight, bias)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample; see the class docstring for shapes."""
        return self.conv(x)


def _three_taps(w: Tensor, dim: int) -> Tensor:
    """[w0, w1] along ``dim`` -> [w1, w0 + w1, w0] (see :class:`TransposedUpConv`)."""
    w0, w1 = w.select(dim, 0), w.select(dim, 1)
    return torch.stack([w1, w0 + w1, w0], dim=dim)


def fold_for_inference(model: ModuleT) -> ModuleT:
    """An evaluation-mode copy of ``model`` with every foldable batch norm folded (module docstring).

    Folded are: modules that implement :class:`Foldable` (GlaViTU's and the residual U-Net's blocks, the SETR
    decoder, the up-convolutions) and, in any ``nn.Sequential``, a ``Conv2d`` directly followed by a
    ``BatchNorm2d`` (the U-Net+CBAM blocks, segmentation-models-pytorch decoders). Everything else is copied
    as it is, so the copy keeps the model's methods and attributes (``forward_features``, MC dropout, ...).

    Args:
        model: Any network; not modified.

    Returns:
        The folded copy, in evaluation mode, on the model's device.
    """
    replacements: dict[int, nn.Module] = {}
    _collect(model, replacements)
    # deepcopy with the replacements in its memo copies everything once and puts each replacement where the
    # module it replaces was
    folded = copy.deepcopy(model, memo=dict(replacements))
    return folded.eval()


def _collect(module: nn.Module, out: dict[int, nn.Module]) -> None:
    """Map ``id`` of each foldable module under ``module`` (outermost first) to its folded replacement."""
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, bn = module._modules[first], module._modules[second]
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                out[id(conv)] = fold_conv_bn(conv, bn)
                out[id(bn)] = FoldedBatchNorm()
    for child in module.children():
        if id(child) in out:
            continue
        if isinstance(child, Foldable) and not isinstance(child, nn.Sequential):
            out[id(child)] = child.folded()
        else:
            _collect(child, out)
