"""Plot a synthetic scene: false colour, shaded DEM, labels (and thermal, coherence, glacier ids).

Usage::

    python examples/plot_scene.py OUT.png --scene SCENE_DIR [--full]
    python examples/plot_scene.py OUT.png [--preset karakoram] [--size 1024 1024] [--seed 0] [--full]

Without ``--scene`` the scene is generated into a temporary folder first. The figure of
``docs/synthetic_world.md`` is made with ``python examples/plot_scene.py docs/img/synthetic_scene.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import rasterio
from matplotlib.colors import ListedColormap

from glaciermap.constants import IGNORE_INDEX, RASTER_NODATA
from glaciermap.synthetic.generate import generate_scene
from glaciermap.visualisation import false_colour


def _read(folder: Path, name: str) -> np.ndarray:
    with rasterio.open(folder / name) as src:
        data = src.read()
    if data.dtype.kind == "f":
        data = np.where(data == RASTER_NODATA, np.nan, data)
    return data


def plot_scene(folder: Path, out: Path, full: bool = False, dpi: int = 80) -> None:
    """Write the figure of one scene folder.

    Args:
        folder: Scene folder written by :func:`glaciermap.synthetic.generate.generate_scene`.
        out: PNG to write.
        full: Add thermal, coherence and glacier-id panels (two rows instead of one).
        dpi: Resolution of the PNG.
    """
    meta = json.loads((folder / "scene.json").read_text())
    rgb = false_colour(_read(folder, "optical.tif"))
    z = _read(folder, "dem.tif")[0]
    labels = _read(folder, "labels.tif")[0]
    gy, gx = np.gradient(np.nan_to_num(z, nan=float(np.nanmean(z))), meta["pixel_size"])
    az, el = np.radians(meta["sun_azimuth"]), np.radians(meta["sun_elevation"])
    shade = (-gx * np.sin(az) * np.cos(el) + gy * np.cos(az) * np.cos(el) + np.sin(el)) / np.sqrt(
        1 + gx**2 + gy**2
    )
    rows = 2 if full else 1
    fig, axes = plt.subplots(rows, 3, figsize=(15, 5.2 * rows))
    axes = np.atleast_1d(axes).ravel()
    axes[0].imshow(rgb)
    axes[0].set_title("false colour (SWIR1, NIR, red)")
    axes[1].imshow(np.clip(shade, 0, 1), cmap="gray", vmin=0, vmax=1)
    im = axes[1].imshow(z, cmap="terrain", alpha=0.55)
    fig.colorbar(im, ax=axes[1], fraction=0.046, label="elevation (m)")
    axes[1].set_title("DEM, shaded from the scene's sun")
    shown = np.where(labels == IGNORE_INDEX, np.nan, labels.astype(float))
    cmap = ListedColormap(["#8c7b6b", "#bfe6ff", "#d95f02"])
    axes[2].imshow(shown, cmap=cmap, vmin=-0.5, vmax=2.5, interpolation="nearest")
    axes[2].set_title("labels: background, clean ice, debris-covered ice")
    if full:
        im = axes[3].imshow(_read(folder, "thermal.tif")[0], cmap="inferno")
        fig.colorbar(im, ax=axes[3], fraction=0.046, label="K")
        axes[3].set_title("land-surface temperature")
        im = axes[4].imshow(_read(folder, "insar.tif")[0], cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[4], fraction=0.046)
        axes[4].set_title("coherence (ascending)")
        ids = _read(folder, "glaciers.tif")[0].astype(float)
        axes[5].imshow(np.where(ids > 0, ids % 20, np.nan), cmap="tab20", interpolation="nearest")
        axes[5].set_title("glacier ids (split at ice divides)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    km = meta["height"] * meta["pixel_size"] / 1000.0, meta["width"] * meta["pixel_size"] / 1000.0
    fig.suptitle(
        f"synthetic {meta['preset']} scene ({meta['region_code']}), seed {meta['seed']}: "
        f"{meta['height']} x {meta['width']} px at {meta['pixel_size']:g} m ({km[0]:.1f} x {km[1]:.1f} km)"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    from PIL import Image

    with Image.open(out) as img:  # a 256-colour palette keeps the PNG small for the docs
        quantised = img.convert("RGB").quantize(colors=256)
    quantised.save(out, optimize=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, generate the scene if needed and write the figure."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--scene", type=Path, default=None, help="existing scene folder")
    parser.add_argument("--preset", default="karakoram")
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 1024), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="add thermal, coherence and glacier ids")
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args(argv)
    if args.scene is not None:
        plot_scene(args.scene, args.out, args.full, args.dpi)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = generate_scene(
            Path(tmp) / "scene", preset=args.preset, size=tuple(args.size), seed=args.seed
        )
        plot_scene(folder, args.out, args.full, args.dpi)


if __name__ == "__main__":
    main()
