"""The GlaViTU reference normalisation: per-channel min-max with the published constants, SAR in log10.

GlaViTU reference notes section 4.4 (``utils/dataset_stats.pickle`` of the authors' code): every channel is
mapped with ``x_norm = (x - min) / (max - min)`` using dataset-wide constants of the tile benchmark, after
SAR backscatter has been converted with ``log10(sigma0_linear + 1e-6)`` (so the minimum -6 is sigma0 = 0).
No clipping is applied afterwards. The benchmark's HDF5 tiles are stored already normalised this way, and
weights converted from the authors' Keras checkpoints expect it, so the constants must be kept exactly.

The normalisation is named :data:`REFERENCE_NORMALISATION` (``"glavitu_reference"``); :func:`reference_stats`
returns it as :class:`~glaciermap.transforms.normalisation.NormStats` (method ``"minmax"``) so that it
travels with checkpoints like any other statistics, and :class:`ReferenceNormalize` applies it, including the
SAR log10 step that plain min-max statistics cannot express.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import torch
from torch import Tensor, nn

from glaciermap.constants import BANDS
from glaciermap.errors import ConfigError
from glaciermap.transforms.normalisation import EPS, ModalityStats, NormStats

REFERENCE_NORMALISATION: Final[str] = "glavitu_reference"
"""Name of the reference normalisation (accepted wherever a named normalisation is asked for)."""

SAR_LOG_OFFSET: Final[float] = 1e-6
"""Offset added to linear sigma0 before log10 (GlaViTU reference notes 4.4)."""

REFERENCE_MINMAX: Final[dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "optical": (
        (
            -0.003735552541911602,
            -0.01996774598956108,
            -0.018574437126517296,
            -0.02698885276913643,
            -0.025462698191404343,
            -0.02451178804039955,
        ),
        (2.0468, 2.1253, 2.2303, 2.6781, 2.1246, 2.1602),
    ),
    "dem": ((-103.29675627387357, 0.0), (8349.427068840781, 88.97835244066131)),
    "thermal": ((0.0,), (322.08056640625,)),
    "sar": ((-6.0, -6.0), (1.757612490680689, 15.635085643187638)),
    "cross_pol_sar": ((-6.0, -6.0), (1.3885907807268798, 15.905003697873322)),
    "insar": ((0.0, 0.0), (0.9999993812691861, 0.9999996309312701)),
}
"""``(mins, maxs)`` per modality in canonical band order (GlaViTU reference notes 4.4, table of
``dataset_stats.pickle``). Units: optical TOA reflectance; elevation m, slope degrees; thermal K; ``sar``
(co-polarised, ascending/descending) and ``cross_pol_sar`` log10 of linear sigma0; ``insar`` coherence.
``cross_pol_sar`` is the tile benchmark's name of the cross-polarised feature group; ``sar_cross`` is the same
constants under glaciermap's modality key."""
REFERENCE_MINMAX["sar_cross"] = REFERENCE_MINMAX["cross_pol_sar"]

LOG_MODALITIES: Final[frozenset[str]] = frozenset({"sar", "cross_pol_sar", "sar_cross"})
"""Modalities converted with ``log10(x + 1e-6)`` before min-max (backscatter)."""

_BANDS: Final[dict[str, tuple[str, ...]]] = {
    **BANDS,
    "cross_pol_sar": ("cross_pol_asc", "cross_pol_desc"),
}


def reference_band_names(modality: str) -> tuple[str, ...]:
    """Band names of a modality of the reference normalisation.

    Args:
        modality: A canonical modality or ``"cross_pol_sar"``.

    Returns:
        The band names in channel order.

    Raises:
        ConfigError: If the modality has no reference constants.
    """
    if modality not in REFERENCE_MINMAX:
        raise ConfigError(
            f"the {REFERENCE_NORMALISATION} normalisation has no constants for {modality!r}; expected one of "
            f"{', '.join(REFERENCE_MINMAX)}"
        )
    return _BANDS[modality]


def reference_stats(modalities: Sequence[str] = ("optical", "dem")) -> NormStats:
    """The reference constants as min-max :class:`NormStats` (they travel with checkpoints).

    ``mean`` and ``std`` are set to the centre and half-range of ``[min, max]`` so that the object is
    complete; only ``min`` and ``max`` are used by the ``"minmax"`` method. ``count`` is 0 (the constants
    are not pixel statistics of the data at hand). For ``sar``/``cross_pol_sar`` the constants apply to
    log10 values: use :class:`ReferenceNormalize` (or take the log first).

    Args:
        modalities: Modalities to include, in order.

    Returns:
        The statistics with ``method="minmax"``.

    Raises:
        ConfigError: If a modality has no reference constants.
    """
    out: dict[str, ModalityStats] = {}
    for modality in modalities:
        names = reference_band_names(modality)
        lo, hi = REFERENCE_MINMAX[modality]
        out[modality] = ModalityStats(
            bands=names,
            mean=tuple((a + b) / 2 for a, b in zip(lo, hi, strict=True)),
            std=tuple((b - a) / 2 for a, b in zip(lo, hi, strict=True)),
            min=lo,
            max=hi,
            count=0,
        )
    return NormStats(modalities=out, method="minmax")


class ReferenceNormalize(nn.Module):
    """Apply the reference normalisation to one modality (GlaViTU reference notes 4.4).

    ``x_norm = (f(x) - min) / (max - min)`` with ``f = log10(x + 1e-6)`` for backscatter and the identity
    otherwise; no clipping.

    Args:
        modality: A canonical modality or ``"cross_pol_sar"``.
        bands: Subset of the modality's bands, in channel order (default: all).

    Raises:
        ConfigError: If the modality or a band has no reference constants.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, modality: str, bands: Sequence[str] | None = None) -> None:
        super().__init__()
        names = reference_band_names(modality)
        chosen = tuple(bands) if bands is not None else names
        unknown = [b for b in chosen if b not in names]
        if unknown:
            raise ConfigError(
                f"band {unknown[0]!r} is not a band of {modality!r}; expected {', '.join(names)}"
            )
        lo, hi = REFERENCE_MINMAX[modality]
        idx = [names.index(b) for b in chosen]
        self.modality = modality
        self.bands = chosen
        self.log = modality in LOG_MODALITIES
        self.register_buffer("shift", torch.tensor([lo[i] for i in idx], dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer(
            "scale", torch.tensor([max(hi[i] - lo[i], EPS) for i in idx], dtype=torch.float32).view(-1, 1, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Normalise.

        Args:
            x: ``(C, H, W)`` or ``(B, C, H, W)`` in the units of the bands (linear sigma0 for backscatter).

        Returns:
            The normalised float32 tensor, same shape.

        Raises:
            ConfigError: If the channel count is not the number of bands.
        """
        if x.ndim < 3 or x.shape[-3] != len(self.bands):
            raise ConfigError(
                f"tensor of shape {tuple(x.shape)} has no channel axis of {len(self.bands)} "
                f"({', '.join(self.bands)}); expected (C, H, W) or (B, C, H, W)"
            )
        y = x.float()
        if self.log:
            y = torch.log10(y + SAR_LOG_OFFSET)
        return (y - self.shift) / self.scale

    def extra_repr(self) -> str:
        """Show modality, bands and the log step in ``repr``."""
        return f"modality={self.modality}, bands={self.bands}, log10={self.log}"
