"""Evaluation tables, plots and the Markdown report (what ``glaciermap evaluate`` writes).

Tables (pandas DataFrames, written as CSV):

* ``per_scene.csv``: one row per method and scene: glacier IoU / precision / recall / F1, overall accuracy and
  mean IoU (glacier / not, and three-class when both sides have debris), glacier counts, detection scores,
  area deviation and PoLiS summaries.
* ``pixel_metrics.csv``: one row per method, scene and class (``background``, ``glacier`` and, for three-class
  maps, ``clean_ice`` and ``debris_ice``), plus ``scene = "all"`` rows pooled over the scenes.
* ``per_region.csv``: confusion matrices pooled per region (micro-average, as the GlaViTU reference's
  ``evaluate.py``), plus ``region = "all"``.
* ``per_size_class.csv``: detection precision / recall / F1 by size class (rules in
  :mod:`glaciermap.metrics.objects`), area deviation (Eq. 10) and PoLiS (Eq. 11) of the matched pairs by the
  reference glacier's size class.
* ``per_glacier.csv``: one row per reference glacier (matched or not) and per unmatched predicted glacier.

Plots (PNG): ``iou_per_region.png``, ``f1_by_size_class.png``, ``area_scatter.png``, ``polis_hist.png``.
Every file is written through :func:`glaciermap.io.atomic_output`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from glaciermap import __version__
from glaciermap.io import atomic_output
from glaciermap.metrics.boundary import Polis
from glaciermap.metrics.evaluation import Evaluation, SceneResult
from glaciermap.metrics.objects import SIZE_CLASSES, detection_table, size_class
from glaciermap.metrics.pixel import PixelMetrics

REPORT_FILES: tuple[str, ...] = (
    "report.md",
    "per_scene.csv",
    "pixel_metrics.csv",
    "per_region.csv",
    "per_size_class.csv",
    "per_glacier.csv",
    "iou_per_region.png",
    "f1_by_size_class.png",
    "area_scatter.png",
    "polis_hist.png",
)
"""Every file :func:`write_report` writes."""

ALL = "all"
_PAIR_COLUMNS = ["pred", "ref", "size_class", "delta_area_km2", "rel_delta_area"]


def _nan_stats(values: npt.NDArray[np.float64]) -> dict[str, float]:
    if values.size == 0:
        return {"mean": math.nan, "median": math.nan, "p95": math.nan}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
    }


def _polis_columns(polis: Iterable[Polis]) -> dict[str, float]:
    """PoLiS statistics of the per-point distances pooled over matched pairs (Eq. 11 over all their points)."""
    chunks = [p.distances for p in polis]
    stats = _nan_stats(np.concatenate(chunks) if chunks else np.zeros(0))
    return {"polis_mean_m": stats["mean"], "polis_median_m": stats["median"], "polis_p95_m": stats["p95"]}


def _pairs(results: list[SceneResult]) -> tuple[pd.DataFrame, list[Polis]]:
    """Matched pairs of several results, with their PoLiS in the same order."""
    frames = [r.matching.pairs for r in results]
    pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=_PAIR_COLUMNS)
    return pairs, [p for r in results for p in r.polis]


def _area_columns(pairs: pd.DataFrame) -> dict[str, Any]:
    rel = pairs["rel_delta_area"].to_numpy(dtype=np.float64)
    delta = pairs["delta_area_km2"].to_numpy(dtype=np.float64)
    return {
        "n_pairs": len(pairs),
        "mean_delta_area_km2": float(delta.mean()) if delta.size else math.nan,
        "mean_rel_delta_area": float(np.nanmean(rel)) if np.isfinite(rel).any() else math.nan,
        "median_abs_rel_delta_area": float(np.nanmedian(np.abs(rel))) if np.isfinite(rel).any() else math.nan,
    }


def _pooled(results: Iterable[SceneResult]) -> PixelMetrics | None:
    mats = [r.confusion for r in results if r.confusion is not None]
    return PixelMetrics.from_confusion(np.sum(mats, axis=0)) if mats else None


def three_class_methods(ev: Evaluation) -> set[str]:
    """Methods whose predictions and reference both hold debris-covered ice (class 2) somewhere.

    Only for those are the clean-ice and debris classes reported; everything is always reported as
    glacier / not-glacier.
    """
    out = set()
    for method in ev.methods:
        pooled = _pooled(r for r in ev.results if r.method == method.name)
        if pooled is not None and pooled.confusion[:, 2].sum() > 0 and pooled.confusion[2, :].sum() > 0:
            out.add(method.name)
    return out


def _pixel_summary(metrics: PixelMetrics | None, three_class: bool) -> dict[str, Any]:
    nan = math.nan
    if metrics is None:
        keys = ("n_pixels", "iou", "precision", "recall", "f1", "overall_accuracy", "mean_iou")
        return {**dict.fromkeys(keys, nan), "oa_3class": nan, "miou_3class": nan, "debris_f1": nan}
    g = metrics.glacier()
    return {
        "n_pixels": g.n_pixels,
        "iou": float(g.iou[1]),
        "precision": float(g.precision[1]),
        "recall": float(g.recall[1]),
        "f1": float(g.f1[1]),
        "overall_accuracy": g.overall_accuracy,
        "mean_iou": g.mean_iou,
        "oa_3class": metrics.overall_accuracy if three_class else nan,
        "miou_3class": metrics.mean_iou if three_class else nan,
        "debris_f1": float(metrics.f1[2]) if three_class else nan,
    }


def _detection_all(results: list[SceneResult]) -> dict[str, Any]:
    table = _detection(results, by_size_class=False)
    row = table.iloc[0]
    return {
        "n_ref_glaciers": int(row["n_ref"]),
        "n_pred_glaciers": int(row["n_pred"]),
        "detection_precision": float(row["precision"]),
        "detection_recall": float(row["recall"]),
        "detection_f1": float(row["f1"]),
    }


def _detection(results: list[SceneResult], by_size_class: bool) -> pd.DataFrame:
    def cat(arrays: list[npt.NDArray[Any]], dtype: Any) -> npt.NDArray[Any]:
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

    m = [r.matching for r in results]
    return detection_table(
        cat([x.pred_area_km2 for x in m], np.float64),
        cat([x.pred_matched for x in m], bool),
        cat([x.ref_area_km2 for x in m], np.float64),
        cat([x.ref_matched for x in m], bool),
        by_size_class,
    )


def per_scene_table(ev: Evaluation) -> pd.DataFrame:
    """One row per method and scene (see the module docstring)."""
    three = three_class_methods(ev)
    rows = []
    for res in ev.results:
        rows.append(
            {
                "method": res.method,
                "scene": res.scene,
                "region": res.region,
                **_pixel_summary(_pooled([res]), res.method in three),
                **_detection_all([res]),
                **_area_columns(res.matching.pairs),
                **_polis_columns(res.polis),
            }
        )
    return pd.DataFrame(rows)


def pixel_table(ev: Evaluation) -> pd.DataFrame:
    """One row per method, scene and class, plus pooled ``scene = "all"`` rows."""
    three = three_class_methods(ev)
    rows: list[dict[str, Any]] = []

    def add(method: str, scene: str, region: str, metrics: PixelMetrics | None) -> None:
        if metrics is None:
            return
        classes = metrics.glacier().rows()
        if method in three:
            classes += [r for r in metrics.rows() if r["class"] != "background"]
        rows.extend({"method": method, "scene": scene, "region": region, **r} for r in classes)

    for method in ev.methods:
        mine = [r for r in ev.results if r.method == method.name]
        for res in mine:
            add(res.method, res.scene, res.region, _pooled([res]))
        add(method.name, ALL, ALL, _pooled(mine))
    return pd.DataFrame(rows)


def per_region_table(ev: Evaluation) -> pd.DataFrame:
    """Pooled metrics per method and region, plus ``region = "all"``."""
    three = three_class_methods(ev)
    rows = []
    for method in ev.methods:
        mine = [r for r in ev.results if r.method == method.name]
        regions = sorted({r.region for r in mine})
        for region in [*regions, ALL]:
            sel = mine if region == ALL else [r for r in mine if r.region == region]
            rows.append(
                {
                    "method": method.name,
                    "region": region,
                    "n_scenes": len(sel),
                    **_pixel_summary(_pooled(sel), method.name in three),
                    **_detection_all(sel),
                    **_polis_columns(p for r in sel for p in r.polis),
                }
            )
    return pd.DataFrame(rows)


def per_size_class_table(ev: Evaluation) -> pd.DataFrame:
    """Detection, area deviation and PoLiS per method and size class (``"all"`` first)."""
    rows = []
    for method in ev.methods:
        mine = [r for r in ev.results if r.method == method.name]
        pairs, polis = _pairs(mine)
        for _, det in _detection(mine, by_size_class=True).iterrows():
            group = str(det["size_class"])
            sel = np.ones(len(pairs), bool) if group == ALL else (pairs["size_class"] == group).to_numpy()
            rows.append(
                {
                    "method": method.name,
                    **det.to_dict(),
                    **_area_columns(pairs[sel]),
                    **_polis_columns(p for p, k in zip(polis, sel) if k),
                }
            )
    return pd.DataFrame(rows)


def per_glacier_table(ev: Evaluation) -> pd.DataFrame:
    """One row per reference glacier and per unmatched predicted glacier."""
    frames = []
    for res in ev.results:
        m = res.matching
        ref_area = m.ref_area_km2
        pred_area = m.pred_area_km2
        ref = pd.DataFrame(
            {
                "ref_id": np.asarray(m.ref.index),
                "ref_area_km2": ref_area,
                "size_class": size_class(ref_area),
                "matched": m.ref_matched,
            }
        )
        pairs = m.pairs.assign(
            polis_m=[p.value for p in res.polis],
            polis_median_m=[p.median for p in res.polis],
            polis_p95_m=[p.p95 for p in res.polis],
        )
        cols = ["ref", "pred_id", "pred_area_km2", "intersection_km2", "delta_area_km2", "rel_delta_area"]
        ref = ref.join(pairs.set_index("ref")[[*cols[1:], "polis_m", "polis_median_m", "polis_p95_m"]])
        unmatched = ~m.pred_matched
        extra = pd.DataFrame(
            {
                "pred_id": np.asarray(m.pred.index)[unmatched],
                "pred_area_km2": pred_area[unmatched],
                "size_class": size_class(pred_area[unmatched]),
                "matched": False,
            }
        )
        both = pd.concat([ref, extra], ignore_index=True) if len(extra) else ref.reset_index(drop=True)
        both.insert(0, "region", res.region)
        both.insert(0, "scene", res.scene)
        both.insert(0, "method", res.method)
        frames.append(both)
    columns = [
        "method",
        "scene",
        "region",
        "ref_id",
        "pred_id",
        "ref_area_km2",
        "pred_area_km2",
        "size_class",
        "matched",
        "intersection_km2",
        "delta_area_km2",
        "rel_delta_area",
        "polis_m",
        "polis_median_m",
        "polis_p95_m",
    ]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True).reindex(columns=columns)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_iou_per_region(regions: pd.DataFrame, path: Path) -> None:
    """Grouped bars of the pooled glacier IoU per region (and all regions), one bar per method."""
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(regions["method"]))
    labels = [*dict.fromkeys(r for r in regions["region"] if r != ALL), ALL]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(labels) * max(1, len(methods)) * 0.6), 3.5))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(labels))
    for i, method in enumerate(methods):
        sub = regions[regions["method"] == method].set_index("region")["iou"]
        ax.bar(x + i * width - 0.4 + width / 2, [sub.get(r, np.nan) for r in labels], width, label=method)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("glacier IoU (Eq. 6)")
    ax.set_title("Glacier IoU per region")
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_f1_by_size_class(sizes: pd.DataFrame, path: Path) -> None:
    """Detection F1 (Eq. 9) per size class, one line per method."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for method in dict.fromkeys(sizes["method"]):
        sub = sizes[(sizes["method"] == method) & (sizes["size_class"] != ALL)].set_index("size_class")["f1"]
        ax.plot(list(SIZE_CLASSES), [sub.get(c, np.nan) for c in SIZE_CLASSES], marker="o", label=method)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("glacier area (km²)")
    ax.set_ylabel("detection F1")
    ax.set_title("Glacier detection F1 by size class")
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_area_scatter(glaciers: pd.DataFrame, path: Path) -> None:
    """Predicted versus reference area of the matched glaciers (log-log, with the 1:1 line)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    matched = glaciers[glaciers["matched"].astype(bool) & glaciers["pred_area_km2"].notna()]
    if matched.empty:
        ax.text(0.5, 0.5, "no matched glaciers", ha="center", va="center", transform=ax.transAxes)
    else:
        for method in dict.fromkeys(matched["method"]):
            sub = matched[matched["method"] == method]
            ax.scatter(sub["ref_area_km2"], sub["pred_area_km2"], s=12, alpha=0.7, label=method)
        lo = float(min(matched["ref_area_km2"].min(), matched["pred_area_km2"].min())) * 0.8
        hi = float(max(matched["ref_area_km2"].max(), matched["pred_area_km2"].max())) * 1.25
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--", label="1:1")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize="small")
    ax.set_xlabel("reference area (km²)")
    ax.set_ylabel("predicted area (km²)")
    ax.set_title("Area of matched glaciers")
    _save(fig, path)


def plot_polis_hist(glaciers: pd.DataFrame, path: Path) -> None:
    """Histogram of the per-glacier PoLiS (Eq. 11) of the matched glaciers, one outline per method."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    values = glaciers.dropna(subset=["polis_m"])
    if values.empty:
        ax.text(0.5, 0.5, "no matched glaciers", ha="center", va="center", transform=ax.transAxes)
    else:
        bins = np.histogram_bin_edges(values["polis_m"].to_numpy(dtype=float), bins="auto").tolist()
        for method in dict.fromkeys(values["method"]):
            ax.hist(
                values.loc[values["method"] == method, "polis_m"], bins=bins, histtype="step", label=method
            )
        ax.legend(fontsize="small")
    ax.set_xlabel("PoLiS (m)")
    ax.set_ylabel("glaciers")
    ax.set_title("Boundary distance of matched glaciers")
    _save(fig, path)


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


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def build_tables(ev: Evaluation) -> dict[str, pd.DataFrame]:
    """Every CSV table of the report, by file name.

    Args:
        ev: The evaluation.

    Returns:
        ``per_scene.csv``, ``pixel_metrics.csv``, ``per_region.csv``, ``per_size_class.csv`` and
        ``per_glacier.csv`` as DataFrames.
    """
    return {
        "per_scene.csv": per_scene_table(ev),
        "pixel_metrics.csv": pixel_table(ev),
        "per_region.csv": per_region_table(ev),
        "per_size_class.csv": per_size_class_table(ev),
        "per_glacier.csv": per_glacier_table(ev),
    }


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
