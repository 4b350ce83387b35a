"""``glaciermap demo``: the main job on the bundled default data.

Generates a synthetic debris-rich scene that no model has seen (a seed no training scene uses), maps it with
the small checkpoint bundled in the package (``glaciermap/weights/synthetic_cpu.safetensors``, trained on the
synthetic world by ``examples/train_demo_model.py``), scores the map against the scene's labels next to the
GlaViTU paper's band-ratio rule, and turns the map into a glacier inventory:

    DIR/scene/                 the scene folder (optical, dem, thermal, sar, insar, labels, glaciers, ...)
    DIR/map/                   classes.tif, confidence.tif (COGs), quicklook.png, summary.json
    DIR/inventory.gpkg (.csv)  glacier outlines with RGI 7 attributes, debris and ice divides
    DIR/demo.json              the figures printed on screen
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

HELP = "main job: map an unseen synthetic scene with the bundled model, score it, write outlines"

DEMO_SEED = 2026
"""Seed of the demo scene (no training scene uses it)."""

DEMO_WEIGHTS = "synthetic_cpu"
"""Name of the bundled weights the demo maps with."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo's options."""
    parser.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)"
    )
    parser.add_argument("--region", default="karakoram", help="synthetic region preset (default: karakoram)")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(1024, 1024), metavar=("H", "W"), help="scene size"
    )
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help=f"scene seed (default: {DEMO_SEED})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _scores(pred: Any, labels: Any) -> dict[str, float]:
    """IoU of glacier (all ice), clean ice and debris, and debris recall, of a class map against the labels."""
    import numpy as np

    from glaciermap.constants import CLEAN_ICE, DEBRIS_ICE, IGNORE_INDEX
    from glaciermap.metrics import pixel_metrics

    valid = (labels != IGNORE_INDEX) & (pred != IGNORE_INDEX)
    p = np.where(valid, pred, IGNORE_INDEX).astype(np.uint8)
    r = np.where(valid, labels, IGNORE_INDEX).astype(np.uint8)
    classes = pixel_metrics(p, r, num_classes=3)
    debris = valid & (labels == DEBRIS_ICE)
    return {
        "iou_glacier": float(classes.glacier().iou[1]),
        "iou_clean_ice": float(classes.iou[CLEAN_ICE]),
        "iou_debris_ice": float(classes.iou[DEBRIS_ICE]),
        "recall_debris_ice_as_glacier": float((pred[debris] > 0).mean()) if debris.any() else float("nan"),
    }


def main(args: argparse.Namespace) -> int:
    """Run the demo; prints a summary table and returns 0."""
    from rich.console import Console
    from rich.table import Table

    from glaciermap.baselines import band_ratio_classes
    from glaciermap.constants import SCENE_FILES
    from glaciermap.datasets.scene_folder import read_scene_metadata
    from glaciermap.inference import map_scene
    from glaciermap.inventory import build_inventory
    from glaciermap.io import atomic_output, open_raster
    from glaciermap.models.weights import get_weight
    from glaciermap.synthetic.generate import generate_scene

    console = Console()
    start = time.perf_counter()
    out: Path = args.out
    scene = generate_scene(out / "scene", preset=args.region, size=tuple(args.size), seed=args.seed)
    t_scene = time.perf_counter()
    meta = read_scene_metadata(scene)
    weights = get_weight(DEMO_WEIGHTS).path()  # the registry member, sha256-checked

    # cosine (Hann) blending: weights fall to 0 at window edges, where a small CNN sees least context
    result = map_scene(weights, scene, out / "map", window="cosine", progress=not args.quiet)
    t_map = time.perf_counter()
    inventory = build_inventory(result.files["classes"], scene / SCENE_FILES["dem"], out / "inventory.gpkg")
    t_inventory = time.perf_counter()

    with open_raster(scene / SCENE_FILES["labels"], "labels") as src:
        labels = src.read(1)
    with open_raster(result.files["classes"], "class map") as src:
        predicted = src.read(1)
    model = _scores(predicted, labels)
    ratio = _scores(band_ratio_classes(scene), labels)  # band ratio: 1 = glacier, never debris
    summary: dict[str, Any] = {
        "scene": str(scene),
        "region": meta.get("region_code"),
        "preset": meta.get("preset"),
        "size": [int(labels.shape[0]), int(labels.shape[1])],
        "model": str(weights),
        "scores": {"model": model, "band_ratio": ratio},
        "mapped_area_km2": result.summary.get("area_km2"),
        "inventory": {"glaciers": len(inventory.glaciers), "path": str(inventory.gpkg_path)},
        "seconds": {
            "scene": round(t_scene - start, 2),
            "map": round(t_map - t_scene, 2),
            "inventory": round(t_inventory - t_map, 2),
        },
    }
    summary["seconds"]["total"] = round(time.perf_counter() - start, 2)
    with atomic_output(out / "demo.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))

    table = Table(
        title=f"glaciermap demo: synthetic {meta.get('preset')} scene ({meta.get('region_code')}), "
        f"{labels.shape[0]} x {labels.shape[1]} px, seed {args.seed}"
    )
    table.add_column("against the labels")
    table.add_column("bundled model", justify="right")
    table.add_column("band ratio", justify="right")
    for key, name in (
        ("iou_glacier", "IoU glacier (clean + debris)"),
        ("iou_clean_ice", "IoU clean ice"),
        ("iou_debris_ice", "IoU debris-covered ice"),
        ("recall_debris_ice_as_glacier", "debris-covered ice found as glacier"),
    ):
        table.add_row(name, f"{model[key]:.3f}", f"{ratio[key]:.3f}")
    console.print(table)
    console.print(
        f"{len(inventory.glaciers)} glaciers in {inventory.gpkg_path}; map, confidence and quick-look in "
        f"{out / 'map'}; {summary['seconds']['total']:.1f} s"
    )
    return 0
