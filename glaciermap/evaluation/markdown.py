"""The Markdown report of an evaluation, and :func:`write_report`, which writes the whole report.

Everything is computed before the first file is written, and every file is written to a temporary name and
renamed, so a failure never leaves a partial report file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glaciermap import __version__
from glaciermap.evaluation.plots import (
    plot_area_scatter,
    plot_f1_by_size_class,
    plot_iou_per_region,
    plot_polis_hist,
)
from glaciermap.evaluation.scoring import Evaluation
from glaciermap.evaluation.tables import ALL, REPORT_FILES, _write_csv, build_tables, three_class_methods
from glaciermap.io import atomic_output


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _md_table(frame: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> list[str]:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], digits) for c in columns) + " |")
    return lines


def markdown_report(
    ev: Evaluation,
    scenes: pd.DataFrame,
    pixels: pd.DataFrame,
    regions: pd.DataFrame,
    sizes: pd.DataFrame,
) -> str:
    """The Markdown report text (see ``docs/evaluation.md``)."""
    three = three_class_methods(ev)
    sizes = sizes[(sizes["size_class"] == ALL) | (sizes["n_ref"] + sizes["n_pred"] > 0)]  # the CSV has all
    out = [
        "# Glacier mapping evaluation",
        "",
        f"glaciermap {__version__}. Reference: {ev.reference}. Metric definitions: `docs/evaluation.md` "
        "(GlaViTU paper Eqs. 6-11, Karakoram paper Eqs. 4-6).",
        "",
        "| method | predictions | scenes | classes |",
        "|---|---|---|---|",
    ]
    for m in ev.methods:
        n = sum(r.method == m.name for r in ev.results)
        out.append(
            f"| {m.name} | {m.description} | {n} | {'three-class' if m.name in three else 'glacier / not'} |"
        )
    out += ["", "## Glacier IoU per region", ""]
    out.append("Pixels pooled per region (micro-average); *average* is the unweighted mean of the regions.")
    out.append("")
    region_names = list(dict.fromkeys(r for r in regions["region"] if r != ALL))
    methods = [m.name for m in ev.methods]
    out.append("| region | " + " | ".join(methods) + " |")
    out.append("|---|" + "---|" * len(methods))
    iou = regions.set_index(["method", "region"])["iou"]
    for region in [*region_names, ALL]:
        label = "all (pooled)" if region == ALL else region
        out.append(f"| {label} | " + " | ".join(_fmt(iou.get((m, region), math.nan)) for m in methods) + " |")
    averages = [
        float(np.nanmean([iou.get((m, r), math.nan) for r in region_names] or [math.nan])) for m in methods
    ]
    out.append("| average | " + " | ".join(_fmt(a) for a in averages) + " |")
    out += ["", "![Glacier IoU per region](iou_per_region.png)", ""]

    out += ["## Pixel metrics, all scenes", ""]
    pooled = pixels[pixels["scene"] == ALL]
    out += _md_table(
        pooled,
        {
            "method": "method",
            "class": "class",
            "iou": "IoU",
            "precision": "precision",
            "recall": "recall",
            "f1": "F1",
        },
    )
    summary = regions[regions["region"] == ALL]
    out += [""]
    out += _md_table(
        summary,
        {
            "method": "method",
            "overall_accuracy": "OA (glacier / not)",
            "mean_iou": "mIoU (glacier / not)",
            "oa_3class": "OA (3 classes)",
            "miou_3class": "mIoU (3 classes)",
            "debris_f1": "F1 debris",
        },
    )
    out += ["", "## Per scene", ""]
    out += _md_table(
        scenes,
        {
            "method": "method",
            "scene": "scene",
            "region": "region",
            "iou": "glacier IoU",
            "f1": "pixel F1",
            "n_ref_glaciers": "ref. glaciers",
            "n_pred_glaciers": "pred. glaciers",
            "detection_f1": "detection F1",
            "polis_median_m": "PoLiS median (m)",
        },
    )
    out += ["", "## Glacier detection by size class", ""]
    out.append(
        "A predicted glacier matches a reference one when their intersection is more than 50% of each. "
        "Precision counts predicted glaciers by their own size class, recall reference glaciers by theirs."
    )
    out.append("")
    out += _md_table(
        sizes,
        {
            "method": "method",
            "size_class": "area (km²)",
            "n_ref": "ref.",
            "n_pred": "pred.",
            "precision": "precision",
            "recall": "recall",
            "f1": "F1",
        },
    )
    out += ["", "![F1 by size class](f1_by_size_class.png)", ""]
    out += ["## Area deviation and boundary distance of matched glaciers", ""]
    out.append(
        "ΔA = A_pred - A_ref and δA = ΔA / A_ref (Eq. 10), by the reference glacier's size class. PoLiS (Eq. 11): "
        "distances of boundary points sampled every 10 m to the other outline, pooled over the pairs."
    )
    out.append("")
    out += _md_table(
        sizes,
        {
            "method": "method",
            "size_class": "area (km²)",
            "n_pairs": "pairs",
            "mean_delta_area_km2": "mean ΔA (km²)",
            "mean_rel_delta_area": "mean δA",
            "median_abs_rel_delta_area": "median abs(δA)",
            "polis_mean_m": "PoLiS mean (m)",
            "polis_median_m": "median (m)",
            "polis_p95_m": "p95 (m)",
        },
    )
    out += ["", "![Predicted vs reference area](area_scatter.png)", "", "![PoLiS](polis_hist.png)", ""]
    out += ["## Files", ""]
    out += [f"- `{name}`" for name in REPORT_FILES if name.endswith(".csv")]
    if ev.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in ev.notes]
    return "\n".join(out) + "\n"


def write_report(
    ev: Evaluation, out_dir: str | os.PathLike[str], tables: dict[str, pd.DataFrame] | None = None
) -> dict[str, Path]:
    """Write the Markdown report, the CSV tables and the plots.

    Everything is computed before the first file is written, and every file is written to a temporary name
    and renamed, so a failure never leaves a partial report file.

    Args:
        ev: The evaluation.
        out_dir: The report directory (created if needed).
        tables: The tables if already built (:func:`build_tables`).

    Returns:
        File name -> path of every file written (:data:`REPORT_FILES`).
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    tables = tables if tables is not None else build_tables(ev)
    text = markdown_report(
        ev,
        tables["per_scene.csv"],
        tables["pixel_metrics.csv"],
        tables["per_region.csv"],
        tables["per_size_class.csv"],
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        _write_csv(frame, out / name)
    plot_iou_per_region(tables["per_region.csv"], out / "iou_per_region.png")
    plot_f1_by_size_class(tables["per_size_class.csv"], out / "f1_by_size_class.png")
    plot_area_scatter(tables["per_glacier.csv"], out / "area_scatter.png")
    plot_polis_hist(tables["per_glacier.csv"], out / "polis_hist.png")
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return {name: out / name for name in REPORT_FILES}
