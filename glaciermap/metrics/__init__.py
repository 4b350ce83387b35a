"""Accuracy metrics of the GlaViTU and Karakoram papers.

* :mod:`~glaciermap.metrics.pixel`: per-class IoU, precision, recall, F1, overall accuracy and mean IoU from
  a streaming confusion matrix (GlaViTU Eqs. 6-9, Karakoram Eqs. 4-6).
* :mod:`~glaciermap.metrics.objects`: matching glacier outlines (intersection > 50% of each), detection
  precision / recall / F1 by size class, area deviation (GlaViTU Eq. 10).
* :mod:`~glaciermap.metrics.boundary`: the PoLiS boundary distance (GlaViTU Eq. 11).
* :mod:`~glaciermap.metrics.evaluation` and :mod:`~glaciermap.metrics.report`: ``glaciermap evaluate``.
"""

from glaciermap.metrics.boundary import Polis, polis, sample_boundary
from glaciermap.metrics.objects import (
    SIZE_CLASSES,
    GlacierMatching,
    area_deviation,
    detection_scores,
    match_glaciers,
    size_class,
)
from glaciermap.metrics.pixel import ConfusionMatrix, PixelMetrics, pixel_metrics, pixel_metrics_from_rasters

__all__ = [
    "SIZE_CLASSES",
    "ConfusionMatrix",
    "GlacierMatching",
    "PixelMetrics",
    "Polis",
    "area_deviation",
    "detection_scores",
    "match_glaciers",
    "pixel_metrics",
    "pixel_metrics_from_rasters",
    "polis",
    "sample_boundary",
    "size_class",
]
