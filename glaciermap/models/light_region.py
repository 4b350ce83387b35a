"""A light region-encoding model: GlaViTU's fusion and location-encoding blocks around a small residual U-Net.

It keeps what region encoding and inference-time bias optimisation need from GlaViTU (GlaViTU paper,
"Strategies", item 4 and Eqs. 1-2; the authors' reference implementation) and drops the SETR subnet, so that it trains
on a CPU in minutes (``examples/bias_optimisation_cpu.yaml``)::

    inputs per modality -> FusionBlock(f)                         -> F  (B, f, H, W)
    F <- F + LocationEncoder(region vector)[:, :, None, None]      (the same block as GlaViTU's)
    residual U-Net (f, 2f, ..., bottleneck f * 2**depth)           -> U
    1x1 conv f -> K                                                -> "out"

Like :class:`~glaciermap.models.glavitu.GlaViTU` it splits its forward pass into :meth:`forward_features`
(the location-free fusion output) and :meth:`forward_head` (the rest), which bias optimisation uses to cache
the location-free activations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from glaciermap.errors import ConfigError, InputError
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.blocks import FusionBlock, init_keras_
from glaciermap.models.glavitu import GLOBAL_REGION_CODES, UNSEEN, LocationEncoder, region_vector
from glaciermap.models.resunet import DEFAULT_MODALITIES, ResUNet


class LightRegionResUNet(SegmentationModel):
    """Fusion block + GlaViTU's location-encoding block + residual U-Net (see the module docstring).

    Args:
        modalities: Ordered ``{modality: channels}`` (default ``{"optical": 6, "dem": 2}``).
        num_classes: Number of classes K.
        location_encoding: Always ``"region"``; accepted so that configs name the strategy as for GlaViTU
            (the training task then hands the data module's region codes to the model).
        region_codes: Region codes of the region one-hot, in slot order; an "unseen" slot comes last.
        filters: Width f of the fused features and of the U-Net's first level.
        depth: Number of poolings of the U-Net (1..4).
        dropout: Rate of every dropout layer (Monte-Carlo dropout only, as in GlaViTU).

    Raises:
        ConfigError: On an invalid configuration.

    Shape:
        inputs (B, C_m, H, W) per modality (H, W multiples of 16) and a (B, L) region vector, (B,) region
        indices or ``None`` ("unseen") -> ``{"out": (B, K, H, W)}`` logits.
    """

    arch = "light_region_resunet"

    def __init__(
        self,
        modalities: dict[str, int] | None = None,
        num_classes: int = 2,
        *,
        location_encoding: Literal["region"] = "region",
        region_codes: Sequence[str] = GLOBAL_REGION_CODES,
        filters: int = 16,
        depth: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(DEFAULT_MODALITIES if modalities is None else modalities, num_classes)
        if location_encoding != "region":
            raise ConfigError(f"location_encoding: this model only has 'region', got {location_encoding!r}")
        codes = tuple(region_codes)
        if not codes or len(set(codes)) != len(codes) or UNSEEN in codes:
            raise ConfigError(f"region_codes: expected distinct codes other than {UNSEEN!r}, got {codes!r}")
        if not 1 <= depth <= 4:
            raise ConfigError(f"depth: expected 1..4 (inputs are multiples of 16), got {depth}")
        if filters < 1:
            raise ConfigError(f"filters: expected a positive width, got {filters}")
        self.location_encoding: Literal["region"] = "region"
        self.region_codes: tuple[str, ...] = codes
        self.hparams = {
            "modalities": dict(self.modalities),
            "num_classes": num_classes,
            "location_encoding": "region",
            "region_codes": list(codes),
            "filters": filters,
            "depth": depth,
            "dropout": dropout,
        }
        self.fusion = FusionBlock(self.modalities, filters, dropout)
        self.location_encoder = LocationEncoder(self.location_size, filters, dropout)
        self.unet = ResUNet(filters, filters, depth, dropout, out_projection=False)
        self.head = nn.Conv2d(filters, num_classes, 1)
        init_keras_(self)

    @property
    def location_size(self) -> int:
        """Length L of the region vector: number of region codes + 1 ("unseen")."""
        return len(self.region_codes) + 1

    def region_vector(self, codes: Sequence[str | None]) -> Tensor:
        """One-hot region vectors over :attr:`region_codes` (see :func:`~glaciermap.models.glavitu.region_vector`)."""
        return region_vector(codes, self.region_codes)

    def encode_location(self, location: Tensor | None, batch: int) -> Tensor:
        """The (B, L) region vector from ``None`` ("unseen"), (B,) slot indices or (B, L) float vectors.

        Args:
            location: See above.
            batch: Batch size B.

        Returns:
            (B, L) float vectors.

        Raises:
            InputError: On a wrong shape or an index out of range.
        """
        size = self.location_size
        if location is None:
            return self.region_vector([None] * batch).to(self.head.weight)
        if location.ndim == 1 and not location.is_floating_point():
            if location.shape[0] != batch or bool(((location < 0) | (location >= size)).any()):
                raise InputError(
                    f"location: expected {batch} region indices in [0, {size - 1}] ({size - 1} = unseen), "
                    f"got {location.tolist()}"
                )
            return nn.functional.one_hot(location.long(), size).to(self.head.weight)
        if location.shape != (batch, size) or not location.is_floating_point():
            raise InputError(
                f"location: region encoding expects a float ({batch}, {size}) vector or ({batch},) integer "
                f"region indices, got {tuple(location.shape)} {location.dtype}"
            )
        return location

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Compute logits: ``forward_head(forward_features(inputs), location)``.

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` or the stacked image.
            location: Region input, see :meth:`encode_location`.

        Returns:
            ``{"out": (B, K, H, W)}`` logits.

        Raises:
            InputError: On bad inputs or a bad location.
        """
        return self.forward_head(self.forward_features(inputs), location)

    def forward_features(self, inputs: ModelInputs) -> Tensor:
        """The location-free fusion output F, (B, f, H, W).

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` or the stacked image.

        Returns:
            (B, f, H, W) fused features.

        Raises:
            InputError: On missing modalities, wrong channel counts or sizes.
        """
        return self.fusion(self.check_inputs(inputs))

    def forward_head(self, features: Tensor, location: Tensor | None = None) -> dict[str, Tensor]:
        """Location block, residual U-Net and classifier on the output of :meth:`forward_features`.

        Args:
            features: (B, f, H, W) fused features.
            location: Region input, see :meth:`encode_location`.

        Returns:
            ``{"out": (B, K, H, W)}`` logits.

        Raises:
            InputError: On a bad location.
        """
        v = self.encode_location(location, features.shape[0])
        f = features + self.location_encoder(v)[:, :, None, None]
        return {"out": self.head(self.unet(f))}


__all__ = ["LightRegionResUNet"]
