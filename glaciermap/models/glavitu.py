"""GlaViTU: Glacier-VisionTransformer-U-Net (Maslov et al., Nat. Commun. 16:43, 2025).

The architecture of the GlaViTU paper (Methods, "GlaViTU"; Supplementary Figs. 8-10), block for block as in
the authors' reference implementation::

    inputs per modality -> FusionBlock(64)                       -> F  (B, 64, H, W)     Suppl. Fig. 8
    [F <- F + LocationEncoder(location)[:, :, None, None]]                               Suppl. Fig. 9
    SETR subnet (patch 16, E 64, 12 blocks, 4 heads, MLP 256)     -> T;  E1 = T + F      Suppl. Fig. 10
    deep-supervision head: 1x1 conv 64 -> K on E1                 -> "aux"               Methods
    residual U-Net (64/128/256, bottleneck 512, 1x1 64 -> 64)    -> U;  E2 = E1 + U     Suppl. Fig. 10
    main head: 1x1 conv 64 -> K on E2                             -> "out"

The heads return logits; the reference's softmax is applied by :meth:`GlaViTU.predict_proba`. Trainable
parameters for Optical+DEM, K=2: 10,024,516 with the deep-supervision head, 10,024,386 without, 10,029,764
with region encoding, the same counts as the authors' Keras model (whose ``count_params()``
also counts the batch-norm running statistics). Weights of the authors' Keras ``.h5`` files load through
:func:`glaciermap.models.keras.convert_keras_weights`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal, get_args

import torch
from torch import Tensor, nn

from glaciermap.constants import UNSEEN
from glaciermap.errors import ConfigError, InputError
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.blocks import (
    KERAS_LEAKY_SLOPE,
    FusionBlock,
    MCDropout,
    batch_norm_1d,
    init_keras_,
)
from glaciermap.models.resunet import ResUNet
from glaciermap.models.setr import SETR

LocationEncoding = Literal["none", "region", "coordinates"]
"""How GlaViTU is told where a patch lies (GlaViTU paper, Methods, strategies 4 and 5)."""

GLOBAL_REGION_CODES: Final[tuple[str, ...]] = (
    "ALP", "AN", "AWA", "CA", "GR", "HMA", "LL", "NZ", "SA", "SC", "SVAL",
)  # fmt: skip
"""Sorted region codes of the global training set; the one-hot gets one more, last, "unseen" slot.

The paper's 12 positions (Methods, strategy 4); the order is the sorted codes, as the authors' reference
implementation computes it from the training tiles."""

FILTERS: Final[int] = 64
"""Width of the fused features, the transformer tokens and the U-Net's first level (the authors' 64)."""


def region_vector(codes: Sequence[str | None], region_codes: Sequence[str] = GLOBAL_REGION_CODES) -> Tensor:
    """One-hot region vectors for region encoding (GlaViTU paper, Methods, strategy 4).

    Args:
        codes: One region code per sample; ``None`` or ``"unseen"`` selects the last, "unseen" slot.
        region_codes: The model's region codes (``model.region_codes``), in slot order.

    Returns:
        (B, len(region_codes) + 1) float32 one-hot vectors.

    Raises:
        InputError: If a code is neither one of ``region_codes`` nor ``None``/``"unseen"``.
    """
    index = {code: i for i, code in enumerate(region_codes)}
    out = torch.zeros(len(codes), len(region_codes) + 1)
    for row, code in enumerate(codes):
        if code is None or code == UNSEEN:
            out[row, len(region_codes)] = 1.0
        elif code in index:
            out[row, index[code]] = 1.0
        else:
            raise InputError(
                f"region code {code!r}: not one of the model's regions {', '.join(region_codes)} "
                f"(use None or {UNSEEN!r} for a region the model has not seen)"
            )
    return out


def coordinate_vector(lat: Tensor | Sequence[float], lon: Tensor | Sequence[float]) -> Tensor:
    """Coordinate encoding [sin lat, cos lat, sin lon, cos lon] with the angles in radians.

    GlaViTU paper, Methods, strategy 5. Radians as in the authors' training code (their deployment script
    feeds degrees, a bug not reproduced here).

    Args:
        lat: (B,) latitudes of the patch centres in degrees, in [-90, 90].
        lon: (B,) longitudes in degrees.

    Returns:
        (B, 4) float tensor.

    Raises:
        InputError: If the shapes differ or a latitude is outside [-90, 90] or not finite.
    """
    lat_t = torch.as_tensor(lat, dtype=torch.float32)
    lon_t = torch.as_tensor(lon, dtype=torch.float32).to(lat_t.device)
    if lat_t.ndim != 1 or lat_t.shape != lon_t.shape:
        raise InputError(
            f"lat/lon: expected two (B,) arrays, got {tuple(lat_t.shape)} and {tuple(lon_t.shape)}"
        )
    if not bool(torch.isfinite(lat_t).all() & torch.isfinite(lon_t).all()) or bool((lat_t.abs() > 90).any()):
        raise InputError("lat/lon: expected finite degrees with latitude in [-90, 90]")
    lat_r, lon_r = torch.deg2rad(lat_t), torch.deg2rad(lon_t)
    return torch.stack([lat_r.sin(), lat_r.cos(), lon_r.sin(), lon_r.cos()], dim=1)


class LocationEncoder(nn.Module):
    """Location-encoding block (GlaViTU paper, Methods, Supplementary Fig. 9).

    Dense(L -> 64) -> BatchNorm1d -> LeakyReLU(0.3) -> Dense(64 -> 64) -> BatchNorm1d -> LeakyReLU(0.3)
    -> Dropout (MC only). BatchNorm uses the Keras epsilon 1e-3; in ``train()`` mode it needs batches of at
    least two samples.

    Args:
        in_features: L = number of regions + 1 (region encoding) or 4 (coordinate encoding).
        filters: Output width.
        dropout: Dropout rate (MC only).

    Shape:
        (B, L) -> (B, filters).
    """

    def __init__(self, in_features: int, filters: int = FILTERS, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, filters)
        self.bn1 = batch_norm_1d(filters)
        self.fc2 = nn.Linear(filters, filters)
        self.bn2 = batch_norm_1d(filters)
        self.act = nn.LeakyReLU(KERAS_LEAKY_SLOPE)
        self.dropout = MCDropout(dropout)

    def forward(self, v: Tensor) -> Tensor:
        """Encode; see the class docstring for shapes."""
        v = self.act(self.bn1(self.fc1(v)))
        v = self.act(self.bn2(self.fc2(v)))
        return self.dropout(v)


class GlaViTU(SegmentationModel):
    """GlaViTU, exactly as the authors' reference implementation (see the module docstring).

    Args:
        modalities: Ordered ``{modality: channels}`` (default ``{"optical": 6, "dem": 2}``); one fusion branch
            per modality, in this order (the order matters for converted Keras weights).
        num_classes: Number of classes K.
        location_encoding: ``"none"``, ``"region"`` (one-hot over ``region_codes`` + "unseen") or
            ``"coordinates"`` (sin/cos of latitude and longitude).
        region_codes: Region codes of the region one-hot, in slot order; stored with the model (``hparams``).
        deep_supervision: Build the deep-supervision head (the reference's training model has it, and the
            authors' ``.h5`` files contain it); when built, ``forward`` also returns ``"aux"``.
        dropout: Rate of every dropout layer. As in the reference, dropout is off in training and inference
            alike; :meth:`set_mc_dropout` switches it on (Monte-Carlo dropout).
        img_size: Input side the position embedding is learned for (the reference's 384). Other sizes that
            are multiples of 16 work through interpolation of the embedding.
        filters: Width of the fused features, the transformer tokens (MLP ``4 * filters``) and the U-Net's
            first level (the authors' 64). Smaller widths make a small GlaViTU (e.g. 16 for CPU training);
            weights of the authors' models need the defaults.
        transformer_depth: Transformer blocks of the SETR subnet (the authors' 12).
        num_heads: Attention heads (the authors' 4); must divide ``filters``.
        unet_depth: Levels of the residual U-Net (the authors' 3).

    Raises:
        ConfigError: On an invalid configuration.

    Example:
        >>> model = GlaViTU({"optical": 6, "dem": 2}, num_classes=2).eval()
        >>> out = model({"optical": torch.rand(1, 6, 64, 64), "dem": torch.rand(1, 2, 64, 64)})
        >>> sorted(out), tuple(out["out"].shape)
        (['aux', 'out'], (1, 2, 64, 64))
    """

    arch = "glavitu"

    def __init__(
        self,
        modalities: Mapping[str, int] | None = None,
        num_classes: int = 2,
        *,
        location_encoding: LocationEncoding = "none",
        region_codes: Sequence[str] = GLOBAL_REGION_CODES,
        deep_supervision: bool = True,
        dropout: float = 0.1,
        img_size: int = 384,
        filters: int = FILTERS,
        transformer_depth: int = 12,
        num_heads: int = 4,
        unet_depth: int = 3,
    ) -> None:
        super().__init__({"optical": 6, "dem": 2} if modalities is None else modalities, num_classes)
        if filters < 1 or num_heads < 1 or filters % num_heads or transformer_depth < 1 or unet_depth < 1:
            raise ConfigError(
                f"filters {filters}, num_heads {num_heads}, transformer_depth {transformer_depth}, unet_depth "
                f"{unet_depth}: expected positive values with num_heads dividing filters"
            )
        if location_encoding not in get_args(LocationEncoding):
            raise ConfigError(
                f"location_encoding: expected one of {', '.join(get_args(LocationEncoding))}, "
                f"got {location_encoding!r}"
            )
        codes = tuple(region_codes)
        if not codes or len(set(codes)) != len(codes) or UNSEEN in codes:
            raise ConfigError(f"region_codes: expected distinct codes other than {UNSEEN!r}, got {codes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout: expected a rate in [0, 1), got {dropout}")
        self.location_encoding: LocationEncoding = location_encoding
        self.region_codes: tuple[str, ...] = codes
        self.deep_supervision = deep_supervision
        self.hparams = {
            "modalities": dict(self.modalities),
            "num_classes": num_classes,
            "location_encoding": location_encoding,
            "region_codes": list(codes),
            "deep_supervision": deep_supervision,
            "dropout": dropout,
            "img_size": img_size,
            "filters": filters,
            "transformer_depth": transformer_depth,
            "num_heads": num_heads,
            "unet_depth": unet_depth,
        }

        self.location_encoder: LocationEncoder | None = None
        if location_encoding != "none":
            self.location_encoder = LocationEncoder(self.location_size, filters, dropout)
        self.fusion = FusionBlock(self.modalities, filters, dropout)
        self.setr = SETR(
            filters,
            filters,
            patch_size=16,
            embed_dim=filters,
            depth=transformer_depth,
            num_heads=num_heads,
            mlp_dim=4 * filters,
            pup_filters=filters,
            img_size=img_size,
            dropout=dropout,
        )
        self.aux_head = nn.Conv2d(filters, num_classes, 1) if deep_supervision else None
        self.unet = ResUNet(filters, filters, depth=unet_depth, dropout=dropout, out_projection=True)
        self.head = nn.Conv2d(filters, num_classes, 1)
        init_keras_(self)
        self.setr.reset_parameters()

    @property
    def location_size(self) -> int:
        """Length L of the location vector: regions + 1 ("unseen"), or 4 for coordinates, 0 for none."""
        if self.location_encoding == "region":
            return len(self.region_codes) + 1
        return 4 if self.location_encoding == "coordinates" else 0

    def region_vector(self, codes: Sequence[str | None]) -> Tensor:
        """One-hot region vectors over this model's :attr:`region_codes` (see :func:`region_vector`)."""
        return region_vector(codes, self.region_codes)

    def encode_location(self, location: Tensor | None, batch: int) -> Tensor | None:
        """Turn the ``location`` argument of :meth:`forward` into the (B, L) vector the encoder takes.

        Accepted forms:

        * region encoding: ``None`` (every sample "unseen", where the authors' deployment script crashed),
          (B,) integer slot indices (``len(region_codes)`` = unseen), or (B, L) float vectors (one-hot or
          soft, e.g. from bias optimisation, GlaViTU paper Eqs. 1-2);
        * coordinate encoding: (B, 2) latitude/longitude in degrees, or (B, 4) already-encoded vectors.

        Args:
            location: See above; ignored when ``location_encoding == "none"``.
            batch: Batch size B of the image inputs.

        Returns:
            (B, L) float vectors, or ``None`` without location encoding.

        Raises:
            InputError: If the location is missing (coordinates) or has the wrong shape or values.
        """
        if self.location_encoding == "none":
            return None
        size = self.location_size
        if self.location_encoding == "region":
            if location is None:
                return self.region_vector([None] * batch).to(self.head.weight)
            if location.ndim == 1 and not location.is_floating_point():
                if location.shape[0] != batch or bool(((location < 0) | (location >= size)).any()):
                    raise InputError(
                        f"location: expected {batch} region indices in [0, {size - 1}] "
                        f"({size - 1} = unseen), got {location.tolist()}"
                    )
                return nn.functional.one_hot(location.long(), size).to(self.head.weight)
            if location.shape != (batch, size) or not location.is_floating_point():
                raise InputError(
                    f"location: region encoding expects a float ({batch}, {size}) vector or ({batch},) "
                    f"integer region indices, got {tuple(location.shape)} {location.dtype}"
                )
            return location
        if location is None:
            raise InputError(
                "location: this GlaViTU uses coordinate encoding and needs the patch-centre latitude and "
                f"longitude, shape ({batch}, 2) in degrees"
            )
        if location.shape == (batch, 2) and location.is_floating_point():
            return coordinate_vector(location[:, 0], location[:, 1]).to(location)
        if location.shape == (batch, 4) and location.is_floating_point():
            return location
        raise InputError(
            f"location: coordinate encoding expects ({batch}, 2) latitude/longitude in degrees or ({batch}, 4) "
            f"encoded vectors, got {tuple(location.shape)} {location.dtype}"
        )

    def forward(self, inputs: ModelInputs, location: Tensor | None = None) -> dict[str, Tensor]:
        """Compute the logits of both heads.

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` (or the stacked (B, sum C_m, H, W) image); H and W
                multiples of 16.
            location: Location input for location-encoding models, see :meth:`encode_location`.

        Returns:
            ``{"out": (B, K, H, W)}`` main-head logits, plus ``"aux"`` (B, K, H, W) deep-supervision logits
            when the model has that head.

        Raises:
            InputError: On missing modalities, wrong channel counts or sizes, or a bad location.
        """
        return self.forward_head(self.forward_features(inputs), location)

    def forward_features(self, inputs: ModelInputs) -> Tensor:
        """The activations before the location block: the fusion block's output F (as in the authors' reference implementation).

        They do not depend on the location input, so inference-time bias optimisation (GlaViTU paper
        Eqs. 1-2) computes them once per window and reuses them at every step;
        ``forward_head(forward_features(x), loc)`` equals ``forward(x, loc)``.

        Args:
            inputs: ``{modality: (B, C_m, H, W)}`` (or the stacked (B, sum C_m, H, W) image); H and W
                multiples of 16.

        Returns:
            (B, filters, H, W) fused features F (64 for the authors' widths).

        Raises:
            InputError: On missing modalities, wrong channel counts or sizes.
        """
        return self.fusion(self.check_inputs(inputs))

    def forward_head(self, features: Tensor, location: Tensor | None = None) -> dict[str, Tensor]:
        """Everything after :meth:`forward_features`: location block, SETR subnet, residual U-Net, heads.

        Args:
            features: (B, filters, H, W) output of :meth:`forward_features`.
            location: Location input for location-encoding models, see :meth:`encode_location`.

        Returns:
            The same dict as :meth:`forward`.

        Raises:
            InputError: On a bad location.
        """
        f = features
        if self.location_encoder is not None:
            v = self.encode_location(location, f.shape[0])
            assert v is not None
            f = f + self.location_encoder(v)[:, :, None, None]
        e1 = self.setr(f) + f
        out: dict[str, Tensor] = {}
        if self.aux_head is not None:
            out["aux"] = self.aux_head(e1)
        e2 = e1 + self.unet(e1)
        out["out"] = self.head(e2)
        return out


def count_trainable(model: nn.Module) -> int:
    """Number of trainable parameters (the Keras count of the authors' model less batch-norm statistics)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "GLOBAL_REGION_CODES",
    "UNSEEN",
    "GlaViTU",
    "LocationEncoder",
    "LocationEncoding",
    "coordinate_vector",
    "count_trainable",
    "region_vector",
]
