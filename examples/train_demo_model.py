"""Train the demo model with the CPU recipe, score it on a held-out scene and export the bundled weights.

    python examples/train_demo_model.py [--config examples/synthetic_cpu.yaml] [--out runs/synthetic_cpu]
                                        [--weights glaciermap/weights/synthetic_cpu.safetensors]

1. ``glaciermap fit --config CONFIG`` (the CPU recipe: about 10 minutes on 2 cores);
2. the last checkpoint is tested on the config's held-out test scene, next to the band-ratio rule
   (red / swir1 > 3.2 and blue > 0.17) on the same pixels;
3. the weights and their metadata are exported to safetensors (``glaciermap.models.hub.export_weights``);
4. the figures are written to ``OUT/acceptance.json`` and printed as a Markdown table (docs/training.md quotes
   them).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=Path("examples/synthetic_cpu.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/synthetic_cpu"))
    parser.add_argument("--weights", type=Path, default=Path("glaciermap/weights/synthetic_cpu.safetensors"))
    args = parser.parse_args()

    import lightning.pytorch as pl

    from glaciermap.baselines import band_ratio_classes
    from glaciermap.cli import main as glaciermap
    from glaciermap.constants import DEBRIS_ICE, IGNORE_INDEX, SCENE_FILES
    from glaciermap.datamodules import SyntheticDataModule
    from glaciermap.io import open_raster
    from glaciermap.metrics import pixel_metrics
    from glaciermap.models.hub import export_weights
    from glaciermap.tasks import SegmentationTask

    start = time.perf_counter()
    fit = ["fit", "--config", str(args.config), f"--trainer.default_root_dir={args.out}"]
    if glaciermap([*fit, f"--trainer.logger.init_args.save_dir={args.out}"]) != 0:
        return 1
    fit_seconds = time.perf_counter() - start
    ckpt = max(args.out.rglob("checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)

    data_args: dict[str, Any] = yaml.safe_load(args.config.read_text())["data"]["init_args"]
    dm = SyntheticDataModule(**data_args)
    task = SegmentationTask.load_from_checkpoint(ckpt)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    model_metrics = trainer.test(task, dm, verbose=False)[0]

    preset, seed = data_args["test"][0].split(":")
    scene = dm.folder(preset, int(seed))
    with open_raster(scene / SCENE_FILES["labels"], "labels") as src:
        labels = src.read(1)
    ratio = band_ratio_classes(scene)
    valid = (labels != IGNORE_INDEX) & (ratio != IGNORE_INDEX)
    glacier_ref = np.where(valid, labels > 0, IGNORE_INDEX).astype(np.uint8)
    ratio_metrics = pixel_metrics(
        np.where(valid, ratio, IGNORE_INDEX).astype(np.uint8), glacier_ref, num_classes=2
    )
    debris = valid & (labels == DEBRIS_ICE)

    export_weights(ckpt, args.weights)
    figures = {
        "config": str(args.config),
        "held_out_scene": data_args["test"][0],
        "fit_seconds": round(fit_seconds, 1),
        "model": {k.removeprefix("test/"): round(float(v), 4) for k, v in model_metrics.items()},
        "band_ratio": {
            "iou_glacier": round(float(ratio_metrics.iou[1]), 4),
            "recall_debris_ice": round(float((ratio[debris] == 1).mean()), 4) if debris.any() else None,
        },
        "weights": str(args.weights),
        "weights_bytes": args.weights.stat().st_size,
    }
    (args.out / "acceptance.json").write_text(json.dumps(figures, indent=2))
    print("| held-out scene | method | glacier IoU | debris recall |")
    print("|---|---|---|---|")
    m = figures["model"]
    print(f"| {figures['held_out_scene']} | model | {m['iou_glacier']:.3f} | {m['recall_debris_ice']:.3f} |")
    b = figures["band_ratio"]
    print(
        f"| {figures['held_out_scene']} | band ratio | {b['iou_glacier']:.3f} | {b['recall_debris_ice']:.3f} |"
    )
    print(f"fit: {fit_seconds:.0f} s; weights: {args.weights} ({figures['weights_bytes'] / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
