"""``glaciermap evaluate``: score predictions against a reference and write a report.

An application above the pure metrics (:mod:`glaciermap.metrics`): it reads scene folders, mapping outputs and
outline layers (:mod:`~glaciermap.evaluation.sources`), scores them (:mod:`~glaciermap.evaluation.scoring`),
and writes tables (:mod:`~glaciermap.evaluation.tables`), plots (:mod:`~glaciermap.evaluation.plots`) and a
Markdown report (:mod:`~glaciermap.evaluation.markdown`). Without a reference it uses the synthetic world's
held-out scenes (:mod:`~glaciermap.evaluation.heldout`).
"""

from glaciermap.evaluation.heldout import HELDOUT_SCENES, default_reference
from glaciermap.evaluation.markdown import markdown_report, write_report
from glaciermap.evaluation.plots import (
    plot_area_scatter,
    plot_f1_by_size_class,
    plot_iou_per_region,
    plot_polis_hist,
)
from glaciermap.evaluation.scoring import Evaluation, Method, SceneResult, evaluate, parse_method
from glaciermap.evaluation.sources import (
    OutlineLayer,
    SceneFolder,
    Source,
    clip_outlines,
    glacier_outlines,
    open_source,
    rasterise_outlines,
    read_outlines,
)
from glaciermap.evaluation.tables import (
    REPORT_FILES,
    build_tables,
    per_glacier_table,
    per_region_table,
    per_scene_table,
    per_size_class_table,
    pixel_table,
)
from glaciermap.io import default_cache_dir

__all__ = [
    "HELDOUT_SCENES",
    "REPORT_FILES",
    "Evaluation",
    "Method",
    "OutlineLayer",
    "SceneFolder",
    "SceneResult",
    "Source",
    "build_tables",
    "clip_outlines",
    "default_cache_dir",
    "default_reference",
    "evaluate",
    "glacier_outlines",
    "markdown_report",
    "open_source",
    "parse_method",
    "per_glacier_table",
    "per_region_table",
    "per_scene_table",
    "per_size_class_table",
    "pixel_table",
    "plot_area_scatter",
    "plot_f1_by_size_class",
    "plot_iou_per_region",
    "plot_polis_hist",
    "rasterise_outlines",
    "read_outlines",
    "write_report",
]
