"""SETR with the progressive-upsampling (PUP) decoder: GlaViTU's transformer subnet and the SETR baselines.

Zheng et al., "Rethinking semantic segmentation from a sequence-to-sequence perspective with transformers"
(CVPR 2021), as simplified in the GlaViTU paper (Methods, "GlaViTU": "simplified building blocks from
SETR") and in the authors' reference implementation: a ViT encoder without class
token and without a final LayerNorm, pre-norm blocks whose MLP has GELU on *both* layers, and a PUP decoder
with no non-linearities.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.blocks import (
    KERAS_BN_EPS,
    FusionBlock,
    MCDropout,
    batch_norm_2d,
    glorot_bound,
    init_keras_,
)
from glaciermap.models.folding import FoldedBatchNorm, fold_conv_bn

DEFAULT_MODALITIES: dict[str, int] = {"optical": 6, "dem": 2}


def upsample2x_bilinear(x: Tensor) -> Tensor:
    """Keras ``UpSampling2D(2, interpolation="bilinear")``: half-pixel centres, edges clamped.

    The Keras layer of the authors' reference implementation; ``F.interpolate(align_corners=False)`` matches.

    Args:
        x: (B, C, H, W).

    Returns:
        (B, C, 2H, 2W).
    """
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class PatchEmbedding(nn.Module):
    """Linear embedding of non-overlapping P x P patches (the authors' Keras ``extract_patches`` + ``Dense``).

    A ``Conv2d`` with kernel = stride = P is the same map; its Glorot initialisation uses the fans of the
    Keras dense kernel (P*P*C_in, E).

    Args:
        in_channels: Channels C_in of the feature map.
        embed_dim: Token width E.
        patch_size: Patch side P.

    Shape:
        (B, C_in, H, W) -> (B, E, H/P, W/P).
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)

    def reset_parameters(self) -> None:
        """Glorot-uniform kernel with the Keras dense fans, zero bias."""
        fan_in = self.proj.in_channels * self.proj.kernel_size[0] * self.proj.kernel_size[1]
        bound = glorot_bound(fan_in, self.proj.out_channels)
        nn.init.uniform_(self.proj.weight, -bound, bound)
        assert self.proj.bias is not None
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Embed the patches; see the class docstring for shapes."""
        return self.proj(x)


class PositionEmbedding(nn.Module):
    """Learned absolute position embedding on a ``grid x grid`` token grid, interpolated to other grids.

    The reference learns one vector per token of the 24 x 24 grid of a 384 x 384 input (the paper's patch
    size), tokens in row-major order. For another grid (h, w) the table is resampled as an image with bicubic
    interpolation (``align_corners=False``, anti-aliased when shrinking), as timm does for ViTs; on the
    training grid it is used unchanged, so at 384 x 384 the model is the reference's exactly.

    Args:
        grid: Side of the token grid the embedding is learned for (384 / 16 = 24).
        embed_dim: Token width E.

    Shape:
        tokens (B, h*w, E) with their grid (h, w) -> (B, h*w, E).
    """

    def __init__(self, grid: int, embed_dim: int) -> None:
        super().__init__()
        self.grid = grid
        self.weight = nn.Parameter(torch.empty(grid * grid, embed_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras initialisation N(0, 0.05^2), as in the authors' reference implementation."""
        nn.init.normal_(self.weight, std=0.05)

    def resized(self, h: int, w: int) -> Tensor:
        """The embedding table for an ``h x w`` token grid.

        Args:
            h: Grid rows.
            w: Grid columns.

        Returns:
            (h*w, E), row-major; the learned table itself when (h, w) == (grid, grid).
        """
        if (h, w) == (self.grid, self.grid):
            return self.weight
        table = self.weight.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        antialias = h < self.grid or w < self.grid
        table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False, antialias=antialias)
        return table.permute(0, 2, 3, 1).reshape(h * w, -1)

    def forward(self, tokens: Tensor, h: int, w: int) -> Tensor:
        """Add the embedding; see the class docstring for shapes."""
        return tokens + self.resized(h, w)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention as Keras ``MultiHeadAttention(num_heads, key_dim=E/heads)``.

    The attention of the authors' reference implementation.

    Separate q, k, v and output projections with biases, scale 1/sqrt(head_dim), no attention dropout
    (Vaswani et al. 2017). Head h uses channels ``h*d : (h+1)*d`` of each projection.

    Args:
        embed_dim: Token width E.
        num_heads: Number of heads; E must be divisible by it.

    Shape:
        (B, N, E) -> (B, N, E).
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ConfigError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)
        self.value = nn.Linear(embed_dim, embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Attend; see the class docstring for shapes."""
        b, n, e = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.reshape(b, n, self.num_heads, e // self.num_heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)))
        return self.out(y.transpose(1, 2).reshape(b, n, e))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block, as in the authors' reference implementation.

    t = t + MHA(LN1(t)); t = t + Drop(GELU(W2 Drop(GELU(W1 LN2(t))))). LayerNorm epsilon is Keras' 1e-3, GELU
    the exact (erf) one, and -- unusually -- the second MLP layer has a GELU too.

    Args:
        embed_dim: Token width E.
        num_heads: Attention heads.
        mlp_dim: Hidden width of the MLP.
        dropout: Dropout rate after each MLP layer (MC only).

    Shape:
        (B, N, E) -> (B, N, E).
    """

    def __init__(self, embed_dim: int, num_heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dim, eps=KERAS_BN_EPS)
        self.attn = MultiHeadSelfAttention(embed_dim, num_heads)
        self.norm2 = nn.LayerNorm(embed_dim, eps=KERAS_BN_EPS)
        self.fc1 = nn.Linear(embed_dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, embed_dim)
        self.act = nn.GELU()
        self.drop1 = MCDropout(dropout)
        self.drop2 = MCDropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block; see the class docstring for shapes."""
        x = x + self.attn(self.norm1(x))
        m = self.drop1(self.act(self.fc1(self.norm2(x))))
        return x + self.drop2(self.act(self.fc2(m)))


class PUPDecoder(nn.Module):
    """Progressive-upsampling decoder without non-linearities (SETR-PUP, Zheng et al. 2021).

    Without non-linearities as in the authors' reference implementation.

    Three times (Conv3x3 -> BN -> bilinear x2), then Conv3x3 -> BN, then Conv1x1 (bias) to ``out_channels``
    and, if ``final_upsample``, a last bilinear x2: a 1/16-resolution map comes back at full resolution.

    Args:
        in_channels: Channels of the token map (E).
        filters: Filters of the 3x3 convolutions.
        out_channels: Channels of the final 1x1 convolution.
        final_upsample: Whether to apply the last bilinear x2 (the SETR baselines apply it after softmax).

    Shape:
        (B, E, H/16, W/16) -> (B, out, H, W) (or (B, out, H/2, W/2) without the final upsample).
    """

    def __init__(
        self, in_channels: int, filters: int, out_channels: int, final_upsample: bool = True
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(in_channels if i == 0 else filters, filters, 3, padding=1) for i in range(4)]
        )
        self.bns = nn.ModuleList([batch_norm_2d(filters) for _ in range(4)])
        self.out = nn.Conv2d(filters, out_channels, 1)
        self.final_upsample = final_upsample

    def forward(self, x: Tensor) -> Tensor:
        """Decode; see the class docstring for shapes."""
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = bn(conv(x))
            if i < 3:
                x = upsample2x_bilinear(x)
        x = self.out(x)
        return upsample2x_bilinear(x) if self.final_upsample else x

    def folded(self) -> PUPDecoder:
        """A copy with the four batch norms folded into their convolutions (evaluation mode only)."""
        out = copy.deepcopy(self).eval()
        out.convs = nn.ModuleList([fold_conv_bn(c, b) for c, b in zip(self.convs, self.bns)])
        out.bns = nn.ModuleList([FoldedBatchNorm() for _ in self.bns])
        return out


class SETR(nn.Module):
    """Transformer subnet: patch embedding, position embedding, pre-norm blocks, PUP decoder.

    GlaViTU's transformer subnet (GlaViTU paper, Supplementary Fig. 10): patch 16, width 64, 12 blocks,
    4 heads, MLP 256, as in the authors' reference implementation.

    Args:
        in_channels: Channels of the input feature map.
        out_channels: Channels of the decoder output.
        patch_size: Patch side P (16: the PUP decoder upsamples by exactly 16).
        embed_dim: Token width E.
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_dim: MLP hidden width.
        pup_filters: Filters of the PUP decoder.
        img_size: Input side the position embedding is learned for (grid = img_size / P).
        dropout: Dropout rate of the MLPs (MC only).
        final_upsample: See :class:`PUPDecoder`.

    Shape:
        (B, C_in, H, W) -> (B, out, H, W); H, W multiples of P.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        patch_size: int = 16,
        embed_dim: int = 64,
        depth: int = 12,
        num_heads: int = 4,
        mlp_dim: int = 256,
        pup_filters: int = 64,
        img_size: int = 384,
        dropout: float = 0.0,
        final_upsample: bool = True,
    ) -> None:
        super().__init__()
        if patch_size != 16:
            raise ConfigError(f"patch_size: the PUP decoder upsamples by 16, got patch size {patch_size}")
        if img_size % patch_size:
            raise ConfigError(f"img_size: expected a multiple of {patch_size}, got {img_size}")
        self.patch_size = patch_size
        self.patch_embed = PatchEmbedding(in_channels, embed_dim, patch_size)
        self.pos_embed = PositionEmbedding(img_size // patch_size, embed_dim)
        self.blocks = nn.ModuleList(
            [TransformerBlock(embed_dim, num_heads, mlp_dim, dropout) for _ in range(depth)]
        )
        self.decoder = PUPDecoder(embed_dim, pup_filters, out_channels, final_upsample)

    def reset_parameters(self) -> None:
        """Keras-like initialisation of the whole subnet, as the authors' reference implementation has."""
        init_keras_(self)
        self.patch_embed.reset_parameters()
        self.pos_embed.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """Encode and decode; see the class docstring for shapes."""
        t = self.patch_embed(x)
        b, e, h, w = t.shape
        tokens = self.pos_embed(t.flatten(2).transpose(1, 2), h, w)  # row-major tokens (B, h*w, E)
        for block in self.blocks:
            tokens = block(tokens)
        t = tokens.transpose(1, 2).reshape(b, e, h, w)
        return self.decoder(t)


class FusionSETR(SegmentationModel):
    """SETR-PUP baselines of the GlaViTU authors' reference implementation.

    FusionBlock(f) -> SETR (patch 16) whose PUP decoder ends in a 1x1 convolution to K classes; the reference
    applies softmax at half resolution and *then* the last bilinear x2. That order is kept: the model returns
    ``log(upsample(softmax(z)))`` as its logits, which are exact log-probabilities (``softmax`` of them gives
    back the upsampled probabilities), clamped at 1e-30 before the log.

    Presets (registry): ``fusion_setr_ln16`` (f=32, E=64, depth 24, 4 heads, MLP 256, PUP 64; 1,934,530
    trainable) and ``fusion_setr_b16`` (f=64, E=768, depth 12, 12 heads, MLP 3072, PUP 256; 101,718,786).

    Args:
        modalities: Ordered ``{modality: channels}``.
        num_classes: Number of classes K.
        fusion_filters: Filters f of the fusion block.
        embed_dim: Token width E.
        depth: Transformer blocks.
        num_heads: Attention heads.
        mlp_dim: MLP hidden width.
        pup_filters: PUP decoder filters.
        img_size: Input side the position embedding is learned for.
        dropout: Dropout rate (inactive unless MC dropout is switched on, as in the reference).

    Shape:
        inputs (B, C_m, H, W) per modality -> ``{"out": (B, K, H, W)}`` logits; H, W multiples of 16.
    """

    arch = "fusion_setr_ln16"

    def __init__(
        self,
        modalities: Mapping[str, int] | None = None,
        num_classes: int = 2,
        *,
        fusion_filters: int = 32,
        embed_dim: int = 64,
        depth: int = 24,
        num_heads: int = 4,
        mlp_dim: int = 256,
        pup_filters: int = 64,
        img_size: int = 384,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(DEFAULT_MODALITIES if modalities is None else modalities, num_classes)
        self.hparams = {
            "modalities": dict(self.modalities),
            "num_classes": num_classes,
            "fusion_filters": fusion_filters,
            "embed_dim": embed_dim,
            "depth": depth,
            "num_heads": num_heads,
            "mlp_dim": mlp_dim,
            "pup_filters": pup_filters,
            "img_size": img_size,
            "dropout": dropout,
        }
        self.fusion = FusionBlock(self.modalities, fusion_filters, dropout)
        self.setr = SETR(
            fusion_filters,
            num_classes,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            pup_filters=pup_filters,
            img_size=img_size,
            dropout=dropout,
            final_upsample=False,
        )
        init_keras_(self)
        self.setr.reset_parameters()

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Compute logits (log-probabilities, see the class docstring).

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` or the stacked image.
            location: Ignored (no location encoding).

        Returns:
            ``{"out": (B, K, H, W)}``.
        """
        z = self.setr(self.fusion(self.check_inputs(inputs)))
        p = upsample2x_bilinear(torch.softmax(z, dim=1))
        return {"out": torch.log(p.clamp_min(1e-30))}
