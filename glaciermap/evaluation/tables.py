"""The tables of an evaluation report (pandas DataFrames, written as CSV by ``glaciermap evaluate``).

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
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from glaciermap.evaluation.scoring import Evaluation, SceneResult
from glaciermap.io import atomic_output
from glaciermap.metrics.boundary import Polis
from glaciermap.metrics.objects import detection_table, size_class
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
