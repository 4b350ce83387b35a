"""U-Net with CBAM attention: the Karakoram 2 m inventory model (Yang et al. 2026, section 3.3.1).

The paper states: a U-Net (Ronneberger et al. 2015) enhanced with the Convolutional Block Attention Module
(CBAM, Woo et al. 2018); input = pan-sharpened ZY-3 multispectral bands (2 m) with Landsat-derived land
surface temperature (LST) and ZY-3-DEM slope as auxiliary channels; three classes (background, clean ice,
debris-covered ice); dropout 0.5; 512 x 512 tiles. It gives no layer table (its Fig. 3 is not in the text we
have), so the following is **inferred** and documented as such:

* the classic U-Net: 4 poolings, 64/128/256/512 filters, bottleneck 1024, each level two
  (Conv3x3 -> BN -> ReLU), 2x2 transposed-convolution upsampling, concatenation ``[up, skip]``, 1x1 classifier;
* CBAM (channel attention with reduction 16 and avg+max pooling, then 7x7 spatial attention; timm's
  implementation of Woo et al.) after every encoder level and after the bottleneck, so the skip connections
  carry attention-refined features;
* dropout 0.5 before the bottleneck (the contracting path's end, as in Ronneberger et al.), active in training
  as in the paper, and additionally in ``eval()`` when Monte-Carlo dropout is switched on;
* default inputs ``{"optical": 4, "thermal": 1, "dem": 1}``: ZY-3 blue, green, red, NIR; LST; slope.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from timm.layers.cbam import CbamModule
from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.blocks import MCDropout

DEFAULT_MODALITIES: dict[str, int] = {"optical": 4, "thermal": 1, "dem": 1}
"""Pan-sharpened ZY-3 multispectral (blue, green, red, NIR), Landsat LST, slope (Karakoram paper 3.3.1)."""


class DoubleConv(nn.Module):
    """Two (Conv3x3 without bias -> BatchNorm -> ReLU), the U-Net level block (Ronneberger et al. 2015).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.

    Shape:
        (B, C_in, H, W) -> (B, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block; see the class docstring for shapes."""
        return self.block(x)


class UNetCBAM(SegmentationModel):
    """U-Net + CBAM of the Karakoram inventory (Yang et al. 2026, 3.3.1; see the module docstring).

    The modalities are concatenated along channels in ``modalities`` order into one image.

    Args:
        modalities: Ordered ``{modality: channels}`` (default 4 multispectral + LST + slope).
        num_classes: Number of classes (default 3: background, clean ice, debris-covered ice).
        filters: Filters of the first level (doubled at every pooling).
        depth: Number of poolings (1..4; inputs must be multiples of 16).
        dropout: Dropout rate before the bottleneck (0.5 in the paper).
        cbam_reduction: Channel-reduction ratio of CBAM's channel attention (16 in Woo et al.).
        img_size: Tile side the model is trained and applied on (512 in the paper, Sec. 3.3.1); mapping uses
            it as the default window, so scenes are mapped in overlapping 512 px tiles. Any multiple of 16
            works as input.

    Shape:
        inputs (B, C_m, H, W) per modality -> ``{"out": (B, K, H, W)}`` logits.
    """

    arch = "unet_cbam"

    def __init__(
        self,
        modalities: Mapping[str, int] | None = None,
        num_classes: int = 3,
        *,
        filters: int = 64,
        depth: int = 4,
        dropout: float = 0.5,
        cbam_reduction: int = 16,
        img_size: int = 512,
    ) -> None:
        super().__init__(DEFAULT_MODALITIES if modalities is None else modalities, num_classes)
        if not 1 <= depth <= 4:
            raise ConfigError(f"depth: expected 1..4 (inputs are multiples of 16), got {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout: expected a rate in [0, 1), got {dropout}")
        self.hparams = {
            "modalities": dict(self.modalities),
            "num_classes": num_classes,
            "filters": filters,
            "depth": depth,
            "dropout": dropout,
            "cbam_reduction": cbam_reduction,
            "img_size": img_size,
        }
        widths = [filters * 2**i for i in range(depth)]
        self.encoders = nn.ModuleList()
        self.attentions = nn.ModuleList()
        c = self.in_channels
        for w in widths:
            self.encoders.append(DoubleConv(c, w))
            self.attentions.append(CbamModule(w, rd_ratio=1.0 / cbam_reduction))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.dropout = MCDropout(dropout, train_active=True)
        self.bottleneck = DoubleConv(c, 2 * c)
        self.bottleneck_attention = CbamModule(2 * c, rd_ratio=1.0 / cbam_reduction)
        c = 2 * c
        self.upconvs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w in reversed(widths):
            self.upconvs.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.decoders.append(DoubleConv(2 * w, w))
            c = w
        self.head = nn.Conv2d(filters, num_classes, 1)

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Compute logits.

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` or the stacked image.
            location: Ignored (no location encoding).

        Returns:
            ``{"out": (B, K, H, W)}`` logits.
        """
        x = self.stack_inputs(inputs)
        skips = []
        for encoder, attention in zip(self.encoders, self.attentions):
            x = attention(encoder(x))
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck_attention(self.bottleneck(self.dropout(x)))
        for upconv, decoder, skip in zip(self.upconvs, self.decoders, reversed(skips)):
            x = decoder(torch.cat([upconv(x), skip], dim=1))
        return {"out": self.head(x)}
