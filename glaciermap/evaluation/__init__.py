"""``glaciermap evaluate``: score predictions against a reference and write a report.

An application above the pure metrics (:mod:`glaciermap.metrics`): it reads scene folders, mapping outputs and
outline layers (:mod:`~glaciermap.evaluation.sources`), scores them (:mod:`~glaciermap.evaluation.scoring`),
and writes tables (:mod:`~glaciermap.evaluation.tables`), plots (:mod:`~glaciermap.evaluation.plots`) and a
Markdown report (:mod:`~glaciermap.evaluation.markdown`). Without a reference it uses the synthetic world's
held-out scenes (:mod:`~glaciermap.evaluation.heldout`).
"""

from glaciermap.evaluation.heldout import default_cache_dir, default_reference
from glaciermap.evaluation.markdown import markdown_report, write_report
from glaciermap.evaluation.scoring import Evaluation, Method, SceneResult, evaluate, parse_method
from glaciermap.evaluation.sources import OutlineLayer, SceneFolder, open_source, read_outlines
from glaciermap.evaluation.tables import REPORT_FILES, build_tables

__all__ = [
    "REPORT_FILES",
    "Evaluation",
    "Method",
    "OutlineLayer",
    "SceneFolder",
    "SceneResult",
    "build_tables",
    "default_cache_dir",
    "default_reference",
    "evaluate",
    "markdown_report",
    "open_source",
    "parse_method",
    "read_outlines",
    "write_report",
]
