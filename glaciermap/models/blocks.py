"""Building blocks shared by GlaViTU and the fusion baselines (GlaViTU paper, Methods, "GlaViTU").

The numerics follow the authors' Keras reference implementation exactly: BatchNormalization epsilon 1e-3 and
momentum 0.99 (torch momentum 0.01), LeakyReLU slope 0.2 in the fusion block, squeeze-and-excitation and
residual U-Net (``tf.nn.leaky_relu``), 0.3 where Keras' ``LeakyReLU()`` layer is used, and the bottom/right
padding of the 2x2 convolutions of the up-convolutions.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.models.folding import (
    ConvLeakyReLU,
    FoldedBatchNorm,
    TransposedUpConv,
    fold_conv_bn,
)

KERAS_BN_EPS = 1e-3
"""Keras ``BatchNormalization`` / ``LayerNormalization`` default epsilon, 1e-3 (torch's default is 1e-5)."""
KERAS_BN_MOMENTUM = 0.01
"""Torch momentum equivalent to Keras' ``momentum=0.99``."""
TF_LEAKY_SLOPE = 0.2
"""Negative slope of ``tf.nn.leaky_relu`` (fusion block, SE, residual U-Net)."""
KERAS_LEAKY_SLOPE = 0.3
"""Negative slope of ``tf.keras.layers.LeakyReLU()`` (location-encoding block, single ConvBNAct)."""


def batch_norm_2d(channels: int) -> nn.BatchNorm2d:
    """``BatchNorm2d`` with the Keras defaults (eps 1e-3, momentum 0.99 in Keras terms)."""
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def batch_norm_1d(channels: int) -> nn.BatchNorm1d:
    """``BatchNorm1d`` with the Keras defaults (eps 1e-3, momentum 0.99 in Keras terms)."""
    return nn.BatchNorm1d(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def init_keras_(module: nn.Module) -> None:
    """Initialise weights the way Keras does by default, as the authors' reference implementation does.

    Glorot-uniform kernels and zero biases for every ``Conv2d`` and ``Linear`` (torch's fan computation for
    convolutions equals Keras'), ones/zeros for normalisation layers. Modules that need something else (patch
    embedding, position embedding) override it afterwards in their own ``reset_parameters``.

    Args:
        module: The module to initialise in place (recursively).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.LayerNorm):
            m.reset_parameters()


class MCDropout(nn.Module):
    """Dropout whose activity is set explicitly, for Monte-Carlo dropout at inference.

    The authors' code calls every dropout layer with ``training=<inference_dropout flag>`` instead of the
    Keras training phase, so with the shipped config dropout is off in training *and* inference (the
    released weights were therefore trained without dropout). ``train_active=False`` reproduces that;
    ``train_active=True`` gives the usual PyTorch behaviour (active in ``train()``). Either way
    :attr:`mc_enabled` (set through ``SegmentationModel.set_mc_dropout``) forces sampling on in every mode.

    Args:
        p: Drop probability.
        spatial: Drop whole channels (Keras ``SpatialDropout2D``, ``F.dropout2d``) instead of elements.
        train_active: Whether dropout is active in ``train()`` mode when MC dropout is off.

    Raises:
        ConfigError: If ``p`` is not in [0, 1).

    Shape:
        Any; for ``spatial=True`` the input must be (B, C, H, W).
    """

    def __init__(self, p: float, *, spatial: bool = False, train_active: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout: expected a rate in [0, 1), got {p}")
        self.p = p
        self.spatial = spatial
        self.train_active = train_active
        self.mc_enabled = False

    @property
    def active(self) -> bool:
        """Whether the next forward pass drops anything."""
        return self.p > 0.0 and (self.mc_enabled or (self.train_active and self.training))

    def forward(self, x: Tensor) -> Tensor:
        """Apply dropout if :attr:`active`, else return ``x`` unchanged."""
        if not self.active:
            return x
        if self.spatial:
            return F.dropout2d(x, self.p, training=True)
        return F.dropout(x, self.p, training=True)

    def extra_repr(self) -> str:
        """The dropout settings shown in the module's ``repr``."""
        return f"p={self.p}, spatial={self.spatial}, train_active={self.train_active}"


class ConvBNActX2(nn.Module):
    """Two (Conv3x3 with bias -> BN -> LeakyReLU 0.2) then spatial dropout.

    The convolutional branch of the fusion block and of the residual U-Net (GlaViTU paper, Supplementary
    Figs. 8 and 10), as in the authors' reference implementation.

    Args:
        in_channels: Input channels C_in.
        out_channels: Output channels C.
        dropout: Spatial-dropout rate (inactive unless MC dropout is on, see :class:`MCDropout`).

    Shape:
        (B, C_in, H, W) -> (B, C, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = batch_norm_2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = batch_norm_2d(out_channels)
        self.act = nn.LeakyReLU(TF_LEAKY_SLOPE)
        self.dropout = MCDropout(dropout, spatial=True)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block; see the class docstring for shapes."""
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        return self.dropout(x)

    def folded(self) -> ConvBNActX2:
        """A copy with both batch norms folded into their convolutions and the activations fused to them.

        For evaluation mode only (see :mod:`glaciermap.models.folding`).
        """
        out = copy.deepcopy(self).eval()
        slope = self.act.negative_slope
        out.conv1 = ConvLeakyReLU(fold_conv_bn(self.conv1, self.bn1), slope)  # type: ignore[assignment]
        out.conv2 = ConvLeakyReLU(fold_conv_bn(self.conv2, self.bn2), slope)  # type: ignore[assignment]
        out.bn1, out.bn2 = FoldedBatchNorm(), FoldedBatchNorm()  # type: ignore[assignment]
        out.act = nn.Identity()  # type: ignore[assignment]  # applied by ConvLeakyReLU
        return out


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation without channel reduction (Hu et al., CVPR 2018).

    One per convolutional branch of the fusion block (GlaViTU paper, Methods, "GlaViTU"); without channel
    reduction as in the authors' reference implementation.

    s = sigmoid(W2 LeakyReLU_0.2(W1 GAP(x) + b1) + b2); y = x * s.

    Args:
        channels: Channels C (both dense layers are C -> C).

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels)
        self.fc2 = nn.Linear(channels, channels)
        self.act = nn.LeakyReLU(TF_LEAKY_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        """Gate the channels of ``x``; see the class docstring for shapes."""
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(self.act(self.fc1(s))))
        return x * s[:, :, None, None]


class FusionBranch(nn.Module):
    """One modality's branch of the fusion block: :class:`ConvBNActX2` then :class:`SqueezeExcitation`.

    Args:
        in_channels: Channels of the modality.
        filters: Output channels F.
        dropout: Spatial-dropout rate (MC only).

    Shape:
        (B, C_m, H, W) -> (B, F, H, W).
    """

    def __init__(self, in_channels: int, filters: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = ConvBNActX2(in_channels, filters, dropout)
        self.se = SqueezeExcitation(filters)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the branch; see the class docstring for shapes."""
        return self.se(self.conv(x))


class FusionBlock(nn.Module):
    """Per-modality branches summed together (GlaViTU paper, Methods and Supplementary Fig. 8).

    F = sum over modalities m of SE_m(ConvBNActX2_m(x_m)); no concatenation, no normalisation after the sum.

    Args:
        modalities: Ordered ``{modality: channels}``; the branch order follows it (it matters for weights
            converted from Keras).
        filters: Output channels F of every branch.
        dropout: Spatial-dropout rate of the branches (MC only).

    Shape:
        ``{m: (B, C_m, H, W)}`` -> (B, F, H, W).
    """

    def __init__(self, modalities: Mapping[str, int], filters: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(
            {name: FusionBranch(channels, filters, dropout) for name, channels in modalities.items()}
        )

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Fuse the modalities; see the class docstring for shapes."""
        out: Tensor | None = None
        for name, branch in self.branches.items():
            y = branch(inputs[name])
            out = y if out is None else out + y
        assert out is not None  # the ModuleDict is never empty (validated by the models)
        return out


class ResidualBlock(nn.Module):
    """Residual block of the residual U-Net (GlaViTU paper, Supplementary Fig. 10).

    out = ConvBNActX2(x) + Conv1x1_no_bias(x); the projection is applied even when C_in == C, and there is no
    activation after the addition, as in the authors' reference implementation.

    Args:
        in_channels: Input channels C_in.
        out_channels: Output channels C.
        dropout: Spatial-dropout rate (MC only).

    Shape:
        (B, C_in, H, W) -> (B, C, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = ConvBNActX2(in_channels, out_channels, dropout)
        self.proj = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block; see the class docstring for shapes."""
        return self.conv(x) + self.proj(x)


class UpConv(nn.Module):
    """Nearest-neighbour x2 upsampling, Conv2x2 without bias ("same": pad bottom/right), BN.

    The up-convolution of the authors' reference implementation.

    Keras' ``padding="same"`` for an even kernel pads 0 at the top/left and 1 at the bottom/right; this is
    done explicitly with ``F.pad`` so that converted weights give Keras' numbers.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.

    Shape:
        (B, C_in, H, W) -> (B, C_out, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 2, bias=False)
        self.bn = batch_norm_2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample; see the class docstring for shapes."""
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.bn(self.conv(F.pad(x, (0, 1, 0, 1))))

    def folded(self) -> TransposedUpConv:
        """The same up-convolution as one transposed convolution with the batch norm folded in."""
        return TransposedUpConv.from_upconv(self.conv, self.bn)


def glorot_bound(fan_in: int, fan_out: int) -> float:
    """Half-width of the Glorot-uniform distribution, sqrt(6 / (fan_in + fan_out))."""
    return math.sqrt(6.0 / (fan_in + fan_out))
