"""The plots of an evaluation report (PNG).

``iou_per_region.png``, ``f1_by_size_class.png``, ``area_scatter.png`` and ``polis_hist.png``, each written
through :func:`glaciermap.io.atomic_output`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glaciermap.evaluation.tables import ALL
from glaciermap.io import atomic_output
from glaciermap.metrics.objects import SIZE_CLASSES


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
