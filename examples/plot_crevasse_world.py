"""Plot the synthetic crevasse world: one split-image per class and their directional vario functions.

Usage::

    python examples/plot_crevasse_world.py OUT.png [--world DIR] [--seed 0]

Without ``--world`` a small world with one region per class (22 x 2 split-images of 201 x 268 px at 0.5 m)
is generated into a temporary folder first. The figure of ``docs/crevasses.md`` is made with
``python examples/plot_crevasse_world.py docs/img/crevasse_world.png``.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import rasterio
import torch
from PIL import Image

from glaciermap.datasets.crevasse_classes import CrevasseClassV2
from glaciermap.datasets.crevasse_labels import read_label_table
from glaciermap.datasets.split_index import read_split_index
from glaciermap.synthetic.crevasses import generate_crevasse_world
from glaciermap.transforms.vario import directional_vario, vario_lags


def plot(world: Path, out: Path) -> Path:
    """Draw the figure of ``world`` into ``out`` (PNG)."""
    index = read_split_index(world / "index.gpkg")
    labels = read_label_table(world / "labels.csv")
    first = labels.groupby("label").head(1).set_index("label")["tile_id"]
    fig, axes = plt.subplots(4, 6, figsize=(18, 11.5), gridspec_kw={"height_ratios": [1, 0.8, 1, 0.8]})
    with rasterio.open(world / "pan.tif") as src:
        for k, cls in enumerate(CrevasseClassV2):
            row = index[index["tile_id"] == int(first[int(cls)])].iloc[0]
            window = rasterio.windows.Window(
                int(row["col"]), int(row["row"]), int(row["width"]), int(row["height"])
            )
            tile = src.read(1, window=window).astype(np.float32)
            ax_img, ax_var = axes[2 * (k // 6), k % 6], axes[2 * (k // 6) + 1, k % 6]
            ax_img.imshow(tile, cmap="gray", vmin=np.percentile(tile, 1), vmax=np.percentile(tile, 99))
            ax_img.set_title(f"{cls.paper_number}: {cls.display_name}", fontsize=10, color=cls.colour)
            ax_img.set_xticks([])
            ax_img.set_yticks([])
            v = directional_vario(torch.from_numpy(tile)).numpy()
            lags = vario_lags(*tile.shape)
            for d, name in enumerate(("N-S", "E-W", "diagonal", "anti-diagonal")):
                lag_m = np.hypot(*lags.displacements[d].T) * 0.5
                ax_var.plot(lag_m, v[d], label=name, lw=1)
            ax_var.set_xlabel("lag (m)", fontsize=8)
            ax_var.tick_params(labelsize=7)
            if k % 6 == 0:
                ax_var.set_ylabel("vario (DN$^2$)", fontsize=8)
    axes[2, 5].axis("off")
    handles, names = axes[1, 0].get_legend_handles_labels()
    axes[3, 5].legend(handles, names, loc="center", fontsize=10, title="direction")
    axes[3, 5].axis("off")
    fig.suptitle(
        "Synthetic crevasse world: one 201 x 268 px split-image (0.5 m) per class and its vario functions"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=72, format="png")
    plt.close(fig)
    with Image.open(buffer) as img:  # a 256-colour palette keeps the docs figure small
        img.convert("RGB").quantize(256).save(out, optimize=True)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, generate a world if needed, and draw the figure."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--world", type=Path, default=None, help="folder written by glaciermap synth-crevasses"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.world is not None:
        plot(args.world, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        world = generate_crevasse_world(Path(tmp) / "world", seed=args.seed, tiles=(22, 2))
        plot(world, args.out)


if __name__ == "__main__":
    main()
