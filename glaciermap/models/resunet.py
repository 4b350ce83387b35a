"""Residual U-Net: the GlaViTU convolutional subnet and the fusion ResUNet baselines.

The subnet of the GlaViTU paper (Methods and Supplementary Fig. 10); the baselines are those of the authors'
reference implementation.

:class:`ResUNet` is the feature subnet (no classifier). :class:`FusionResUNet` is the baseline model of the
authors' code: FusionBlock -> ResUNet -> 1x1 classifier. With the defaults (64 filters, 4 poolings) it is the
reference ``FusionResUNet``; with ``filters=32, depth=3`` it is ``LightFusionResUNet`` (registry names
``fusion_resunet`` and ``light_fusion_resunet``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.blocks import FusionBlock, ResidualBlock, UpConv, init_keras_

DEFAULT_MODALITIES: dict[str, int] = {"optical": 6, "dem": 2}


class ResUNet(nn.Module):
    """Residual U-Net feature extractor (Ronneberger et al. 2015 with He et al. 2016 residuals).

    GlaViTU's convolutional subnet (GlaViTU paper, Supplementary Fig. 10).

    Encoder: ``depth`` residual blocks with filters f, 2f, 4f, ... each followed by 2x2 max pooling; bottleneck
    residual block with f * 2**depth filters; decoder: per level an :class:`~glaciermap.models.blocks.UpConv`,
    concatenation ``[upsampled, skip]`` and a residual block; finally a 1x1 convolution with bias and no
    activation (f -> f) when ``out_projection`` is on (GlaViTU's subnet has it).

    Args:
        in_channels: Input channels.
        filters: Filters f of the first level.
        depth: Number of poolings (3 in GlaViTU: 64/128/256, bottleneck 512).
        dropout: Spatial-dropout rate of the residual blocks (MC only).
        out_projection: Whether to end with the linear 1x1 convolution f -> f.

    Shape:
        (B, C_in, H, W) -> (B, f, H, W); H and W must be multiples of 2**depth.
    """

    def __init__(
        self,
        in_channels: int,
        filters: int = 64,
        depth: int = 3,
        dropout: float = 0.0,
        out_projection: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"ResUNet depth: expected >= 1, got {depth}")
        widths = [filters * 2**i for i in range(depth)]
        self.encoders = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.encoders.append(ResidualBlock(c, w, dropout))
            c = w
        self.bottleneck = ResidualBlock(c, filters * 2**depth, dropout)
        c = filters * 2**depth
        self.upconvs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w in reversed(widths):
            self.upconvs.append(UpConv(c, w))
            self.decoders.append(ResidualBlock(2 * w, w, dropout))
            c = w
        self.out = nn.Conv2d(filters, filters, 1) if out_projection else None

    def forward(self, x: Tensor) -> Tensor:
        """Extract features; see the class docstring for shapes."""
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for upconv, decoder, skip in zip(self.upconvs, self.decoders, reversed(skips)):
            x = decoder(torch.cat([upconv(x), skip], dim=1))
        if self.out is not None:
            x = self.out(x)
        return x


class FusionResUNet(SegmentationModel):
    """Fusion residual U-Net baseline of the GlaViTU authors' reference implementation.

    FusionBlock(f) -> ResUNet(f, depth) -> 1x1 convolution to K classes (softmax in :meth:`predict_proba`).
    Reference counts (Optical+DEM, K=2, trainable = Keras total minus BN statistics): ``FusionResUNet``
    (f=64, depth 4) 32,572,162; ``LightFusionResUNet`` (f=32, depth 3) 2,049,410.

    Args:
        modalities: Ordered ``{modality: channels}``.
        num_classes: Number of classes K.
        filters: Filters f of the fusion block and the first U-Net level.
        depth: Number of poolings of the U-Net.
        dropout: Spatial-dropout rate (inactive unless MC dropout is switched on, as in the reference).

    Shape:
        inputs (B, C_m, H, W) per modality -> ``{"out": (B, K, H, W)}`` logits; H, W multiples of 16.
    """

    arch = "fusion_resunet"

    def __init__(
        self,
        modalities: Mapping[str, int] | None = None,
        num_classes: int = 2,
        *,
        filters: int = 64,
        depth: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(DEFAULT_MODALITIES if modalities is None else modalities, num_classes)
        if not 1 <= depth <= 4:
            raise ConfigError(f"depth: expected 1..4 (inputs are multiples of 16), got {depth}")
        self.hparams = {
            "modalities": dict(self.modalities),
            "num_classes": num_classes,
            "filters": filters,
            "depth": depth,
            "dropout": dropout,
        }
        self.fusion = FusionBlock(self.modalities, filters, dropout)
        self.unet = ResUNet(filters, filters, depth, dropout, out_projection=False)
        self.head = nn.Conv2d(filters, num_classes, 1)
        init_keras_(self)

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Compute logits.

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` or the stacked image.
            location: Ignored (no location encoding).

        Returns:
            ``{"out": (B, K, H, W)}`` logits.
        """
        x = self.fusion(self.check_inputs(inputs))
        return {"out": self.head(self.unet(x))}
