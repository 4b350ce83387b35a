"""Per-band normalisation statistics and the normalisation step.

The statistics travel with the weights: :class:`NormStats` is a small, JSON-serialisable object (see
:meth:`NormStats.to_dict`) that the data module hands to the training task, which stores it in checkpoints.
The statistics live in the torch-free :mod:`glaciermap.transforms.stats` and are re-exported here.

Two methods are offered (``NormStats.method``):

* ``"zscore"`` (default): ``(x - mean) / std`` per band. Scenes' statistics merge exactly (count-weighted
  pooled mean and variance, :func:`merge_stats`), one outlier pixel barely moves them, and every modality
  ends up on the same unit scale, which suits encoders pretrained on standardised inputs.
* ``"minmax"``: ``(x - min) / (max - min)`` per band, to roughly ``[0, 1]``. This is what the GlaViTU
  reference does (section 4.4 of the GlaViTU reference notes) with dataset-wide constants; use it with
  those constants (``NormStats.from_dict``) to reuse its pretrained weights. Minima and maxima from the data
  are sensitive to single outliers, hence not the default.
* ``"reference"``: the GlaViTU reference preprocessing (GlaViTU paper, Methods; our reference notes section
  4.4): per-channel min-max as ``"minmax"``, with SAR backscatter bands (:data:`LOG10_BANDS`, linear sigma0)
  first converted with ``log10(x + 1e-6)``. :func:`reference_norm_stats` returns the published dataset-wide
  constants (:data:`glaciermap.transforms.reference.REFERENCE_MINMAX`) for any modalities; the
  authors' pretrained weights (``glaciermap convert-keras``) expect exactly this.

Invalid pixels are set to a fill value *after* normalisation by the datasets (0.0 by default: the band
mean for z-score, the band minimum for min-max).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

import torch
from torch import Tensor, nn

from glaciermap.constants import BANDS
from glaciermap.errors import ConfigError, InputError
from glaciermap.transforms.stats import (
    EPS,
    LOG10_BANDS,
    LOG10_OFFSET,
    ModalityStats,
    NormMethod,
    NormStats,
    RunningStats,
    merge_stats,
)

__all__ = [
    "EPS",
    "LOG10_BANDS",
    "LOG10_OFFSET",
    "ModalityStats",
    "NormMethod",
    "NormStats",
    "Normalize",
    "RunningStats",
    "merge_stats",
    "reference_norm_stats",
]


class Normalize(nn.Module):
    """Normalise the bands of one modality with fixed statistics.

    ``zscore``: ``(x - mean) / max(std, EPS)``; ``minmax``: ``(x - min) / max(max - min, EPS)``;
    ``reference``: ``minmax`` after ``log10(x + 1e-6)`` on the bands in :data:`LOG10_BANDS`.

    Args:
        stats: Statistics of the modality (one value per channel, in channel order).
        method: ``"zscore"``, ``"minmax"`` or ``"reference"``.
    """

    shift: Tensor
    scale: Tensor
    log_mask: Tensor

    def __init__(self, stats: ModalityStats, method: NormMethod = "zscore") -> None:
        super().__init__()
        if method == "zscore":
            shift, scale = stats.mean, stats.std
        elif method in ("minmax", "reference"):
            shift = stats.min
            scale = tuple(hi - lo for lo, hi in zip(stats.min, stats.max))
        else:
            raise ConfigError(f"normalisation method is {method!r}; expected one of {get_args(NormMethod)}")
        self.method = method
        self.bands = stats.bands
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer(
            "scale", torch.tensor([max(s, EPS) for s in scale], dtype=torch.float32).view(-1, 1, 1)
        )
        log = [method == "reference" and b in LOG10_BANDS for b in stats.bands]
        self.log10 = any(log)
        self.register_buffer("log_mask", torch.tensor(log, dtype=torch.bool).view(-1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise.

        Args:
            x: ``(C, H, W)`` or ``(B, C, H, W)`` float values in the units of the bands.

        Returns:
            The normalised tensor, same shape, float32.

        Raises:
            InputError: If the channel count is not the number of bands.
        """
        if x.ndim < 3 or x.shape[-3] != len(self.bands):
            raise InputError(
                f"tensor of shape {tuple(x.shape)} has no channel axis of {len(self.bands)} "
                f"({', '.join(self.bands)}); expected (C, H, W) or (B, C, H, W)"
            )
        x = x.float()
        if self.log10:
            x = torch.where(self.log_mask, torch.log10(x + LOG10_OFFSET), x)
        return (x - self.shift) / self.scale

    def extra_repr(self) -> str:
        """Show method and bands in ``repr``."""
        return f"method={self.method}, bands={self.bands}"


def reference_norm_stats(modalities: Sequence[str] | Mapping[str, Any] | None = None) -> NormStats:
    """The GlaViTU reference normalisation: the published dataset-wide min-max constants, method ``"reference"``.

    The constants are those of the GlaViTU reference implementation's dataset statistics
    (``utils/dataset_stats.pickle``; our reference notes section 4.4), tabulated in :data:`glaciermap.transforms.reference.REFERENCE_MINMAX`. SAR backscatter minima and maxima are in ``log10`` units
    (the ``"reference"`` method converts the linear sigma0 first); optical bands are TOA reflectance, elevation
    metres, slope degrees, thermal kelvin, coherence in ``[0, 1]``.

    Args:
        modalities: Modality keys (or a ``{modality: ...}`` mapping, e.g. a model's ``modalities``), in order;
            default: all modalities of the table.

    Returns:
        Statistics with ``min``/``max`` from the table (``mean``/``std`` are the mid-range and half-range,
        given only so the object is complete; ``count`` is 0), ``method="reference"``.

    Raises:
        ConfigError: If a modality has no published constants.
    """
    from glaciermap.transforms.reference import REFERENCE_MINMAX, reference_stats  # the one table

    canonical = [m for m in REFERENCE_MINMAX if m in BANDS]
    names = canonical if modalities is None else list(modalities)
    unknown = [m for m in names if m not in canonical]
    if unknown:
        raise ConfigError(
            f"no published GlaViTU normalisation constants for modality {unknown[0]!r}; available: "
            f"{', '.join(canonical)}"
        )
    return reference_stats(names).with_method("reference")
