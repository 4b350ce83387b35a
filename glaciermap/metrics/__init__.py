"""Accuracy metrics of the GlaViTU and Karakoram papers.

* :mod:`~glaciermap.metrics.pixel`: per-class IoU, precision, recall, F1, overall accuracy and mean IoU from
  a streaming confusion matrix (GlaViTU Eqs. 6-9, Karakoram Eqs. 4-6).
* :mod:`~glaciermap.metrics.objects`: matching glacier outlines (intersection > 50% of each), detection
  precision / recall / F1 by size class, area deviation (GlaViTU Eq. 10).
* :mod:`~glaciermap.metrics.boundary`: the PoLiS boundary distance (GlaViTU Eq. 11).
* :mod:`~glaciermap.metrics.calibration`: expected calibration error (GlaViTU Eq. 5), reliability table and
  diagram, Brier score, NLL.
* :mod:`~glaciermap.metrics.seams`: the seam score of a sliding-window map (jumps across window borders
  against jumps elsewhere).

Only pure metrics live here: they import nothing from datasets, inventory, baselines or the synthetic world.
``glaciermap evaluate``, the application that reads predictions and references and writes reports, is
:mod:`glaciermap.evaluation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glaciermap.lazy import lazy_exports

if TYPE_CHECKING:
    from glaciermap.metrics.boundary import Polis, polis, sample_boundary
    from glaciermap.metrics.calibration import (
        ReliabilityTable,
        brier_score,
        expected_calibration_error,
        negative_log_likelihood,
        plot_reliability_diagram,
        reliability_table,
    )
    from glaciermap.metrics.objects import (
        SIZE_CLASSES,
        GlacierMatching,
        area_deviation,
        detection_scores,
        match_glaciers,
        size_class,
    )
    from glaciermap.metrics.pixel import (
        ConfusionMatrix,
        PixelMetrics,
        pixel_metrics,
        pixel_metrics_from_rasters,
    )
    from glaciermap.metrics.seams import SeamScore, seam_score

_MODULES = {
    "boundary": ("Polis", "polis", "sample_boundary"),
    "calibration": (
        "ReliabilityTable",
        "brier_score",
        "expected_calibration_error",
        "negative_log_likelihood",
        "plot_reliability_diagram",
        "reliability_table",
    ),
    "objects": (
        "SIZE_CLASSES",
        "GlacierMatching",
        "area_deviation",
        "detection_scores",
        "match_glaciers",
        "size_class",
    ),
    "pixel": ("ConfusionMatrix", "PixelMetrics", "pixel_metrics", "pixel_metrics_from_rasters"),
    "seams": ("SeamScore", "seam_score"),
}
__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())

__all__ = [
    "SIZE_CLASSES",
    "ConfusionMatrix",
    "GlacierMatching",
    "PixelMetrics",
    "Polis",
    "ReliabilityTable",
    "SeamScore",
    "area_deviation",
    "brier_score",
    "detection_scores",
    "expected_calibration_error",
    "match_glaciers",
    "negative_log_likelihood",
    "pixel_metrics",
    "pixel_metrics_from_rasters",
    "plot_reliability_diagram",
    "polis",
    "reliability_table",
    "sample_boundary",
    "seam_score",
    "size_class",
]
