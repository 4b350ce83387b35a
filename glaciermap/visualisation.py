"""Quick-look figures: false-colour composites with class outlines (and optionally a confidence panel)."""

from __future__ import annotations

import os
from collections.abc import Mapping

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
