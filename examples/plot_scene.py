"""Plot a synthetic scene folder: false colour, DEM, labels (and thermal, coherence, glacier ids).

Usage::

    python examples/plot_scene.py SCENE_DIR OUT.png [--full]

Without ``--full`` the figure has the three panels of ``docs/img/synthetic_scene.png``
(false colour SWIR1/NIR/red, shaded DEM, labels); ``--full`` adds thermal, coherence and glacier ids.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import rasterio
from matplotlib.colors import ListedColormap


def _read(folder: Path, name: str) -> np.ndarray:
    with rasterio.open(folder / name) as src:
        return src.read(masked=True).filled(np.nan) if src.dtypes[0].startswith("float") else src.read()


def main() -> None:
    """Parse arguments and write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args()
    meta = json.loads((args.scene / "scene.json").read_text())
    opt = _read(args.scene, "optical.tif")
    dem = _read(args.scene, "dem.tif")
    lab = _read(args.scene, "labels.tif")[0]
    # false colour: SWIR1, NIR, red -> ice and snow cyan, rock brown, water black, vegetation green
    rgb = np.stack([opt[4], opt[3], opt[2]], axis=-1)
    rgb = np.clip(rgb / np.nanpercentile(rgb, 99.5), 0, 1) ** 0.8
    rgb = np.nan_to_num(rgb)
    z = dem[0]
    gy, gx = np.gradient(np.nan_to_num(z), meta["pixel_size"])
    az, el = np.radians(meta["sun_azimuth"]), np.radians(meta["sun_elevation"])
    norm = np.sqrt(1 + gx**2 + gy**2)
    shade = np.clip((-gx * np.sin(az) * np.cos(el) + gy * np.cos(az) * np.cos(el) + np.sin(el)) / norm, 0, 1)
    label_cmap = ListedColormap(["#8c7b6b", "#bfe6ff", "#d95f02"])
    panels = 6 if args.full else 3
    fig, axes = plt.subplots(1 if not args.full else 2, 3, figsize=(15, 5 if not args.full else 10))
    axes = np.atleast_1d(axes).ravel()
    title = (
        f"{meta['preset']} ({meta['region_code']}), seed {meta['seed']}, {meta['height']}x{meta['width']} px"
    )
    axes[0].imshow(rgb)
    axes[0].set_title("false colour (SWIR1, NIR, red)")
    axes[1].imshow(shade, cmap="gray", vmin=0, vmax=1)
    im = axes[1].imshow(z, cmap="terrain", alpha=0.55)
    fig.colorbar(im, ax=axes[1], fraction=0.046, label="elevation (m)")
    axes[1].set_title("DEM (shaded by the scene's sun)")
    shown = np.where(lab == 255, np.nan, lab.astype(float))
    axes[2].imshow(shown, cmap=label_cmap, vmin=-0.5, vmax=2.5, interpolation="nearest")
    axes[2].set_title("labels: background / clean ice / debris")
    if args.full:
        th = _read(args.scene, "thermal.tif")[0]
        coh = _read(args.scene, "insar.tif")[0]
        gid = _read(args.scene, "glaciers.tif")[0].astype(float)
        im = axes[3].imshow(th, cmap="inferno")
        fig.colorbar(im, ax=axes[3], fraction=0.046, label="K")
        axes[3].set_title("land-surface temperature")
        im = axes[4].imshow(coh, cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[4], fraction=0.046)
        axes[4].set_title("coherence (ascending)")
        axes[5].imshow(np.where(gid > 0, gid % 20, np.nan), cmap="tab20", interpolation="nearest")
        axes[5].set_title("glacier ids")
    for ax in axes[:panels]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)


if __name__ == "__main__":
    main()
