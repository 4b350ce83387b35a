"""Non-learnt baselines: the band-ratio rule of the GlaViTU paper (``red / swir1 > th1 and blue > th2``)."""

from glaciermap.baselines.band_ratio import (
    BAND_RATIO,
    PAPER_BLUE_THRESHOLD,
    PAPER_RATIO_THRESHOLD,
    BandRatio,
    BandRatioFit,
    BandRatioHistogram,
    band_ratio_classes,
    band_ratio_mask,
    band_ratio_model,
    fit_band_ratio,
)

__all__ = [
    "BAND_RATIO",
    "PAPER_BLUE_THRESHOLD",
    "PAPER_RATIO_THRESHOLD",
    "BandRatio",
    "BandRatioFit",
    "BandRatioHistogram",
    "band_ratio_classes",
    "band_ratio_mask",
    "band_ratio_model",
    "fit_band_ratio",
]
