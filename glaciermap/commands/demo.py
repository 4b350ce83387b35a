"""``glaciermap demo``: the main job on the bundled default data.

Generates a synthetic debris-rich scene that no model has seen (a seed no training scene uses), maps it with
the small checkpoint bundled in the package (``glaciermap/weights/synthetic_cpu.safetensors``, trained on the
synthetic world by ``examples/train_demo_model.py``), scores the map against the scene's labels next to the
GlaViTU paper's band-ratio rule, and turns the map into a glacier inventory:

    DIR/scene/                 the scene folder (optical, dem, thermal, sar, insar, labels, glaciers, ...)
    DIR/map/                   classes.tif, confidence.tif, calibrated_confidence.tif (COGs), quicklook.png,
                               summary.json

The bundled weights carry a confidence calibrator (GlaViTU paper Eq. 4, fitted by ``glaciermap calibrate`` on
other synthetic scenes, ``benchmarks/calibration_benchmark.py``), so the demo also prints the mean calibrated
confidence and the IoU estimated without the labels next to the IoU measured against them.
    DIR/inventory.gpkg (.csv)  glacier outlines with RGI 7 attributes, debris and ice divides
    DIR/demo.json              the figures printed on screen
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glaciermap.inference import MapResult
    from glaciermap.inventory import Inventory

HELP = "main job: map an unseen synthetic scene with the bundled model, score it, write outlines"

DEMO_SEED = 2026
"""Seed of the demo scene (no training scene uses it)."""

DEMO_WEIGHTS = "synthetic_cpu"
"""Name of the bundled weights the demo maps with."""

CREVASSE_WEIGHTS = "crevasse_varionet_synthetic"
"""Name of the bundled split-image classifier of ``glaciermap demo --crevasses``."""

CREVASSE_TILES = (12, 10)
"""Size (split-images) of the crevasse demo scene: 120 split-images of 201 x 268 px."""


def crevasse_demo(out: Path, seed: int) -> int:
    """``--crevasses``: an unseen synthetic crevasse scene classified with the bundled VarioNet, scored.

    Writes ``OUT/crevasses/world`` (the scene), ``OUT/crevasses/classified`` (``glaciermap classify``
    outputs) and ``OUT/crevasses/demo.json``; prints the accuracy against the scene's labels.

    Args:
        out: Output folder.
        seed: Scene seed (the bundled model was trained on seed 0).

    Returns:
        0.
    """
    import pandas as pd

    from glaciermap.inference.classify import classify_scene, write_classification
    from glaciermap.io import output_lock, write_json
    from glaciermap.synthetic.crevasses import generate_crevasse_world

    start = time.perf_counter()
    world = generate_crevasse_world(out / "crevasses" / "world", seed=seed, tiles=CREVASSE_TILES)
    result = classify_scene(CREVASSE_WEIGHTS, world / "pan.tif", batch_size=16)
    with output_lock(out / "crevasses" / "classified"):
        summary = write_classification(result, out / "crevasses" / "classified")
    truth = pd.read_csv(world / "labels.csv").merge(result.index[["tile_id", "class_name"]], on="tile_id")
    accuracy = float((truth["label"] == truth["class_name"]).mean())
    report = {"tiles": len(truth), "accuracy": accuracy, "mean_confidence": summary["mean_confidence"],
              "seconds": round(time.perf_counter() - start, 2), "weights": CREVASSE_WEIGHTS, "seed": seed}  # fmt: skip
    write_json(out / "crevasses" / "demo.json", report)
    print(
        f"crevasse demo: {len(truth)} split-images of an unseen synthetic scene (seed {seed}), bundled "
        f"{CREVASSE_WEIGHTS}: accuracy {100 * accuracy:.1f} %, mean confidence {summary['mean_confidence']:.3f} "
        f"({report['seconds']:.0f} s) -> {out / 'crevasses'}"
    )
    return 0


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
    parser.add_argument(
        "--crevasses",
        action="store_true",
        help="instead: classify an unseen synthetic crevasse scene with the bundled VarioNet, print its accuracy",
    )


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


@dataclass
class _DemoRun:
    """What the demo made: the scene folder, the map, the inventory and the seconds each took.

    Attributes:
        scene: The scene folder.
        result: The mapping result (files and summary).
        inventory: The glacier inventory.
        seconds: Seconds spent on ``scene``, ``map`` and ``inventory``.
    """

    scene: Path
    result: MapResult
    inventory: Inventory
    seconds: dict[str, float]


def _run_pipeline(args: argparse.Namespace, start: float) -> _DemoRun:
    """Generate the scene, map it with the bundled weights and build the inventory of the map."""
    from glaciermap.constants import SCENE_FILES
    from glaciermap.inference import map_scene
    from glaciermap.inventory import build_inventory
    from glaciermap.models.weights import get_weight
    from glaciermap.synthetic.generate import generate_scene

    out: Path = args.out
    scene = generate_scene(out / "scene", preset=args.region, size=tuple(args.size), seed=args.seed)
    t_scene = time.perf_counter()
    weights = get_weight(DEMO_WEIGHTS).path()  # the registry member, sha256-checked
    # the default windows: 1/8 overlap, cosine (Hann) blending (docs/mapping.md, "Overlap and blending")
    result = map_scene(weights, scene, out / "map", progress=not args.quiet)
    t_map = time.perf_counter()
    inventory = build_inventory(result.files["classes"], scene / SCENE_FILES["dem"], out / "inventory.gpkg")
    t_inventory = time.perf_counter()
    seconds = {
        "scene": round(t_scene - start, 2),
        "map": round(t_map - t_scene, 2),
        "inventory": round(t_inventory - t_map, 2),
    }
    return _DemoRun(scene, result, inventory, seconds)


def _summary(run: _DemoRun, meta: dict[str, Any], labels: Any, scores: dict[str, Any]) -> dict[str, Any]:
    """The content of ``demo.json`` (without the total seconds)."""
    from glaciermap.models.weights import get_weight

    return {
        "scene": str(run.scene),
        "region": meta.get("region_code"),
        "preset": meta.get("preset"),
        "size": [int(labels.shape[0]), int(labels.shape[1])],
        "model": str(get_weight(DEMO_WEIGHTS).path()),
        "scores": scores,
        "mapped_area_km2": run.result.summary.get("area_km2"),
        "confidence": {
            "mean_raw": run.result.summary.get("mean_confidence"),
            "mean_calibrated": run.result.summary.get("mean_calibrated_confidence"),
            "estimated_iou": run.result.summary.get("estimated_iou"),
        },
        "inventory": {"glaciers": len(run.inventory.glaciers), "path": str(run.inventory.gpkg_path)},
        "seconds": dict(run.seconds),
    }


def _print_summary(
    args: argparse.Namespace, meta: dict[str, Any], labels: Any, summary: dict[str, Any], run: _DemoRun
) -> None:
    """Print the scores of the model and of the band ratio as a table, then where the outputs are."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    model, ratio = summary["scores"]["model"], summary["scores"]["band_ratio"]
    table = Table(
        title=f"glaciermap demo: synthetic {meta.get('preset')} scene ({meta.get('region_code')}), "
        f"{labels.shape[0]} x {labels.shape[1]} px, seed {args.seed}"
    )
    table.add_column("against the labels")
    table.add_column("bundled model", justify="right")
    table.add_column("estimated without labels", justify="right")
    table.add_column("band ratio", justify="right")
    estimated = summary["confidence"]["estimated_iou"] or {}
    for key, name, est in (
        ("iou_glacier", "IoU glacier (clean + debris)", "glacier"),
        ("iou_clean_ice", "IoU clean ice", "clean_ice"),
        ("iou_debris_ice", "IoU debris-covered ice", "debris_ice"),
        ("recall_debris_ice_as_glacier", "debris-covered ice found as glacier", ""),
    ):
        value = estimated.get(est)
        table.add_row(name, f"{model[key]:.3f}", "" if value is None else f"{value:.3f}", f"{ratio[key]:.3f}")
    console.print(table)
    conf = summary["confidence"]
    if conf["mean_calibrated"] is not None:
        console.print(
            f"mean confidence {conf['mean_raw']:.3f} raw (GlaViTU paper Eq. 3), {conf['mean_calibrated']:.3f} "
            "calibrated (Eq. 4: the expected fraction of correctly classified pixels)"
        )
    inventory = run.inventory
    console.print(
        f"{len(inventory.glaciers)} glaciers in {inventory.gpkg_path}; map, confidence and quick-look in "
        f"{args.out / 'map'}; {summary['seconds']['total']:.1f} s"
    )


def main(args: argparse.Namespace) -> int:
    """Run the demo; prints a summary table and returns 0."""
    from glaciermap.baselines import band_ratio_classes
    from glaciermap.constants import SCENE_FILES
    from glaciermap.datasets.scene_folder import read_scene_metadata
    from glaciermap.io import atomic_output, open_raster

    start = time.perf_counter()
    if args.crevasses:
        return crevasse_demo(args.out, args.seed)
    run = _run_pipeline(args, start)
    meta = read_scene_metadata(run.scene)
    with open_raster(run.scene / SCENE_FILES["labels"], "labels") as src:
        labels = src.read(1)
    with open_raster(run.result.files["classes"], "class map") as src:
        predicted = src.read(1)
    model = _scores(predicted, labels)
    ratio = _scores(band_ratio_classes(run.scene), labels)  # band ratio: 1 = glacier, never debris
    summary = _summary(run, meta, labels, {"model": model, "band_ratio": ratio})
    summary["seconds"]["total"] = round(time.perf_counter() - start, 2)
    with atomic_output(args.out / "demo.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    _print_summary(args, meta, labels, summary, run)
    return 0
