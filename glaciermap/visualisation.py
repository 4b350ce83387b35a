"""Figures: false-colour quick-looks with class outlines (and a confidence panel); confusion matrices."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from glaciermap.constants import BANDS
from glaciermap.io import atomic_output

FALSE_COLOUR: tuple[str, str, str] = ("swir1", "nir", "red")
"""Bands of the false-colour composite (SWIR1 / NIR / red): ice and snow cyan, rock brown, vegetation green."""


def false_colour(
    optical: npt.ArrayLike, bands: tuple[str, str, str] = FALSE_COLOUR
) -> npt.NDArray[np.float32]:
    """A false-colour RGB image from optical reflectance, stretched to the 2-98 % percentiles per band.

    Args:
        optical: Reflectance (6, H, W) in the canonical band order; non-finite values are shown black.
        bands: The three bands shown as red, green and blue.

    Returns:
        RGB image (H, W, 3) in [0, 1].
    """
    arr = np.asarray(optical, dtype=np.float32)
    rgb = np.stack([arr[BANDS["optical"].index(b)] for b in bands], axis=-1)
    finite = np.isfinite(rgb) & (rgb > -9000)
    out = np.zeros_like(rgb)
    for c in range(3):
        vals = rgb[..., c][finite[..., c]]
        if vals.size == 0:
            continue
        lo, hi = np.percentile(vals, [2, 98])
        out[..., c] = np.clip((rgb[..., c] - lo) / max(float(hi - lo), 1e-6), 0, 1)
    out[~finite] = 0
    return out


def save_quicklook(
    path: str | os.PathLike[str],
    optical: npt.ArrayLike,
    outlines: Mapping[str, npt.NDArray[np.bool_]],
    confidence: npt.NDArray[np.floating] | None = None,
    title: str = "",
) -> None:
    """Write a PNG: false colour with the outlines of each mask drawn on top, plus a confidence panel.

    Args:
        path: Output PNG (written atomically).
        optical: Reflectance (6, H, W), canonical band order.
        outlines: Legend label -> boolean mask (H, W); each is drawn as a contour in its own colour.
        confidence: Optional per-pixel confidence (H, W) in [0, 1], shown in a second panel.
        title: Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels = 2 if confidence is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 6), squeeze=False)
    ax = axes[0, 0]
    ax.imshow(false_colour(optical), interpolation="nearest")
    colours = ["yellow", "magenta", "red", "white", "lime"]
    handles = []
    for (label, mask), colour in zip(outlines.items(), colours):
        if np.any(mask):
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=0.8)
        handles.append(Line2D([0], [0], color=colour, label=label))
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.7)
    ax.set_title("false colour (SWIR1 / NIR / red)")
    ax.set_axis_off()
    if confidence is not None:
        im = axes[0, 1].imshow(confidence, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        axes[0, 1].set_title("confidence")
        axes[0, 1].set_axis_off()
        fig.colorbar(im, ax=axes[0, 1], fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def confusion_figure(
    confusion: npt.ArrayLike, class_names: Sequence[str], title: str = "", normalise: bool = True
) -> Any:
    """A confusion-matrix figure: rows true, columns predicted, each cell annotated with its count.

    Used for the TensorBoard figure of the split-image classification task and for ``docs/img`` (a script
    writes it with :func:`save_confusion_figure`).

    Args:
        confusion: (C, C) counts, rows true class, columns predicted class.
        class_names: The C class names (tick labels).
        title: Figure title.
        normalise: Colour by the row fraction (recall per class) rather than the raw count.

    Returns:
        The matplotlib ``Figure`` (the caller closes it).

    Raises:
        ValueError: If the matrix is not square or does not match the class names.
    """
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion, dtype=np.int64)
    n = len(class_names)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {counts.shape}: expected ({n}, {n}) for {n} class names")
    rows = counts.sum(axis=1, keepdims=True)
    shown = counts / np.maximum(rows, 1) if normalise else counts.astype(np.float64)
    size = max(4.0, 0.45 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1.0 if normalise else None)
    top = shown.max() if shown.size else 1.0
    for r in range(n):
        for c in range(n):
            if counts[r, c]:
                dark = shown[r, c] > 0.6 * (1.0 if normalise else top)
                ax.text(c, r, str(counts[r, c]), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")  # fmt: skip
    ax.set_xticks(range(n), list(class_names), rotation=90, fontsize=8)
    ax.set_yticks(range(n), [f"{name} ({rows[i, 0]})" for i, name in enumerate(class_names)], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (tiles)")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class" if normalise else "tiles")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_confusion_figure(
    path: str | os.PathLike[str],
    confusion: npt.ArrayLike,
    class_names: Sequence[str],
    title: str = "",
    normalise: bool = True,
) -> None:
    """Write :func:`confusion_figure` as a PNG (atomically).

    Args:
        path: Output PNG.
        confusion: (C, C) counts, rows true, columns predicted.
        class_names: The C class names.
        title: Figure title.
        normalise: Colour by the row fraction.

    Raises:
        ValueError: See :func:`confusion_figure`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = confusion_figure(confusion, class_names, title, normalise)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
