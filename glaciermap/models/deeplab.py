"""DeepLabv3+ baseline (Chen et al., ECCV 2018) built on segmentation-models-pytorch.

The GlaViTU authors' ``DeepLabV3Plus`` (in their reference implementation) is FusionBlock(64) -> a stem-less
ResNeSt-101 -> ASPP (rates 6/12/18) -> DeepLabv3+ head, with LeakyReLU 0.3 and Keras BN epsilons. This module
keeps its structure where a library block fits instead of re-writing the backbone:

* the same :class:`~glaciermap.models.blocks.FusionBlock` (64 filters) in front (``fusion=True``, default), or
  the modalities concatenated into one image (``fusion=False``, the plain DeepLabv3+ of the glacier papers);
* ``smp.DeepLabV3Plus`` with a ResNeSt-101 encoder (``tu-resnest101e`` from timm), output stride 16, ASPP
  rates 6/12/18, 256 decoder channels, no pretrained weights.

Deviations from the reference (documented, not hidden): smp's encoder keeps ResNeSt's deep stem, uses ReLU and
PyTorch BN defaults, and its head has no extra 1x1 ConvBNAct after the last upsampling, so the parameter
count differs (49.5 M vs the reference's 51.0 M trainable for Optical+DEM) and the authors' DeepLab weights cannot be loaded.
smp's ASPP dropout is replaced by a :class:`~glaciermap.models.blocks.MCDropout` with the reference's
semantics (off unless Monte-Carlo dropout is switched on).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from glaciermap.errors import ConfigError
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.blocks import FusionBlock, MCDropout

DEFAULT_MODALITIES: dict[str, int] = {"optical": 6, "dem": 2}


def _replace_dropout(module: nn.Module, p: float) -> None:
    """Replace every ``nn.Dropout`` inside ``module`` by an :class:`MCDropout` of rate ``p`` (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Dropout):
            setattr(module, name, MCDropout(p))
        else:
            _replace_dropout(child, p)


class DeepLabV3Plus(SegmentationModel):
    """DeepLabv3+ baseline (see the module docstring for how it relates to the reference).

    Args:
        modalities: Ordered ``{modality: channels}``.
        num_classes: Number of classes K.
        encoder: smp encoder name (``tu-<timm name>`` or an smp encoder); default ResNeSt-101.
        fusion: Put the GlaViTU fusion block (64 filters) in front, as the reference does; otherwise feed
            the concatenated modalities to the encoder.
        dropout: Rate of the ASPP dropout (inactive unless Monte-Carlo dropout is switched on).
        atrous_rates: ASPP dilation rates at output stride 16.

    Shape:
        inputs (B, C_m, H, W) per modality -> ``{"out": (B, K, H, W)}`` logits; H, W multiples of 16.
    """

    arch = "deeplabv3plus"

    def __init__(
        self,
        modalities: Mapping[str, int] | None = None,
        num_classes: int = 2,
        *,
        encoder: str = "tu-resnest101e",
        fusion: bool = True,
        dropout: float = 0.1,
        atrous_rates: tuple[int, int, int] = (6, 12, 18),
    ) -> None:
        super().__init__(DEFAULT_MODALITIES if modalities is None else modalities, num_classes)
        import segmentation_models_pytorch as smp

        self.hparams = {
            "modalities": dict(self.modalities),
            "num_classes": num_classes,
            "encoder": encoder,
            "fusion": fusion,
            "dropout": dropout,
            "atrous_rates": list(atrous_rates),
        }
        self.fusion = FusionBlock(self.modalities, 64, dropout) if fusion else None
        try:
            self.net = smp.DeepLabV3Plus(
                encoder_name=encoder,
                encoder_weights=None,
                encoder_output_stride=16,
                decoder_channels=256,
                decoder_atrous_rates=tuple(atrous_rates),
                in_channels=64 if fusion else self.in_channels,
                classes=num_classes,
            )
        except (KeyError, ValueError, RuntimeError) as err:
            raise ConfigError(
                f"encoder: segmentation-models-pytorch cannot build {encoder!r}: {err}"
            ) from None
        _replace_dropout(self.net, dropout)

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Compute logits.

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` or the stacked image.
            location: Ignored (no location encoding).

        Returns:
            ``{"out": (B, K, H, W)}`` logits.
        """
        x = self.fusion(self.check_inputs(inputs)) if self.fusion is not None else self.stack_inputs(inputs)
        return {"out": self.net(x)}
