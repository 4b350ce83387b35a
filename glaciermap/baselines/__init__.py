"""Non-learnt baselines: the band-ratio rule of the GlaViTU paper (``red / swir1 > th1 and blue > th2``)."""

from glaciermap.baselines.band_ratio import (
    PAPER_BLUE_THRESHOLD,
    PAPER_RATIO_THRESHOLD,
    BandRatio,
    BandRatioFit,
    BandRatioHistogram,
    band_ratio_classes,
    band_ratio_mask,
    fit_band_ratio,
)

__all__ = [
    "PAPER_BLUE_THRESHOLD",
    "PAPER_RATIO_THRESHOLD",
    "BandRatio",
    "BandRatioFit",
    "BandRatioHistogram",
    "band_ratio_classes",
    "band_ratio_mask",
    "fit_band_ratio",
]
