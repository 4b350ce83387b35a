"""Region encoding + bias optimisation on an unseen synthetic region (GlaViTU paper Eqs. 1-2; docs/strategies.md).

    python examples/bias_optimisation_acceptance.py [--config examples/bias_optimisation_cpu.yaml]
        [--ckpt CKPT] [--out runs/bias_optimisation_cpu] [--scenes alps:301 alps:302] [--scene-size 1024]
        [--window-size 128] [--windows 32] [--steps 50] [--seed 0] [--authors-max-epochs 100]
        [--unseen-init] [--one-hots] [--skip-authors] [--val-scenes karakoram:101 svalbard:102 alaska:103]
        [--figure docs/img/bias_optimisation_convergence.png]

1. ``glaciermap fit --config CONFIG`` (skipped with ``--ckpt``): a light region-encoding model trained on the
   karakoram, svalbard and alaska presets; the alps preset is never seen in training.
2. For each held-out alps scene: the scene is mapped with the "unseen" one-hot, then bias optimisation runs
   twice on it, the fast procedure and the authors' (lr 1e-4, epochs of random crops, their stopping rule),
   and the scene is mapped with each optimised vector (``--unseen-init``: also the fast procedure started at
   the "unseen" one-hot; ``--one-hots``: also each training region's one-hot, to see whether lower entropy goes
   with higher IoU for this model).
3. Reported per scene and vector: the objective (mean normalised entropy over every valid window of the
   scene, GlaViTU paper Eq. 1), the mapped scene's mean entropy (1 - mean confidence, Eq. 3), glacier IoU
   against the labels, and the optimisation's seconds. Written to ``OUT/acceptance.json``, printed as
   Markdown, and the convergence curves of the first scene drawn to ``--figure``. ``--val-scenes`` maps scenes
   of the training regions with their own one-hot and with "unseen" (is that slot trained?).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np


def iou_glacier(classes: Path, labels: Path) -> float:
    """Glacier IoU of a binary class map against the labels (glacier = any ice class; 255 ignored)."""
    from glaciermap.constants import IGNORE_INDEX
    from glaciermap.io import open_raster
    from glaciermap.metrics import pixel_metrics

    with open_raster(classes, "classes") as src:
        pred = src.read(1)
    with open_raster(labels, "labels") as src:
        ref = src.read(1)
    ref = np.where(ref == IGNORE_INDEX, IGNORE_INDEX, ref > 0).astype(np.uint8)
    return float(pixel_metrics(pred, ref, num_classes=2).iou[1])


def evaluate(
    mapping: Any, scene: Path, out: Path, vector: tuple[float, ...] | None, windows: Any, size: int
) -> dict[str, float]:
    """Map the scene with a region vector (``None``: the "unseen" one-hot), windows of ``size`` px, and score it."""
    from glaciermap.inference import map_scene
    from glaciermap.inference.bias_optimisation import scene_entropy

    if vector is None:
        slots = len(mapping.region_codes) + 1
        eval_vector: tuple[float, ...] = tuple(float(i == slots - 1) for i in range(slots))
        result = map_scene(
            mapping, scene, out, window_size=size, device="cpu", region="unseen", quicklook=False
        )
    else:
        eval_vector = vector
        result = map_scene(
            mapping, scene, out, window_size=size, device="cpu", region_vector=vector, quicklook=False
        )
    confidence = float(result.summary["mean_confidence"])
    return {
        "objective": round(scene_entropy(mapping, windows, eval_vector, device="cpu"), 5),
        "mapped_entropy": round(1.0 - confidence, 5),
        "iou_glacier": round(iou_glacier(out / "classes.tif", scene / "labels.tif"), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=Path("examples/bias_optimisation_cpu.yaml"))
    parser.add_argument("--ckpt", type=Path, default=None, help="skip training, use this checkpoint")
    parser.add_argument("--out", type=Path, default=Path("runs/bias_optimisation_cpu"))
    parser.add_argument("--root", type=Path, default=Path("data/synthetic"), help="synthetic scene cache")
    parser.add_argument("--scenes", nargs="+", default=["alps:301", "alps:302"])
    parser.add_argument("--scene-size", type=int, default=1024)
    parser.add_argument("--window-size", type=int, default=128)
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--unseen-init", action="store_true", help='also run the fast procedure started at the "unseen" slot'
    )
    parser.add_argument(
        "--one-hots",
        action="store_true",
        help="also score each training region's one-hot (does lower entropy go with higher IoU for this model?)",
    )
    parser.add_argument("--skip-authors", action="store_true", help="skip the authors' procedure")
    parser.add_argument("--authors-max-epochs", type=int, default=100, help="the authors' epoch limit (100)")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument(
        "--val-scenes",
        nargs="*",
        default=[],
        help='scenes of training regions, mapped with their own region and with "unseen" (is that slot trained?)',
    )
    args = parser.parse_args()

    import torch

    from glaciermap.cli import main as glaciermap
    from glaciermap.inference import load_pretrained
    from glaciermap.inference.bias_optimisation import optimise_region, sample_windows

    ckpt = args.ckpt
    fit_seconds = None
    if ckpt is None:
        start = time.perf_counter()
        fit = [
            "fit",
            "--config",
            str(args.config),
            f"--trainer.default_root_dir={args.out}",
            f"--trainer.logger.init_args.save_dir={args.out}",
            f"--data.init_args.root={args.root}",
        ]
        if glaciermap(fit) != 0:
            return 1
        fit_seconds = round(time.perf_counter() - start, 1)
        ckpt = max(args.out.rglob("checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    mapping = load_pretrained(ckpt)

    figures: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "fit_seconds": fit_seconds,
        "region_codes": list(mapping.region_codes),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "window_size": args.window_size,
        "scenes": {},
    }
    traces: dict[str, Any] = {}
    figures["val_scenes"] = check_unseen_slot(mapping, args)
    for spec in args.scenes:
        scene = scene_folder(args.root, spec, args.scene_size)
        every = sample_windows(mapping, scene, windows=10**6, window_size=args.window_size, seed=0)
        out = args.out / "acceptance" / spec.replace(":", "-")
        rows: dict[str, Any] = {
            "valid_windows": every.count,
            "unseen": evaluate(mapping, scene, out / "unseen", None, every, args.window_size),
        }
        if args.one_hots:
            slots = len(mapping.region_codes) + 1
            for i, code in enumerate(mapping.region_codes):
                one_hot = tuple(float(i == k) for k in range(slots))
                rows[f"one_hot_{code}"] = evaluate(
                    mapping, scene, out / f"one_hot_{code}", one_hot, every, args.window_size
                )
        runs = [("fast", "fast", "uniform")]
        runs += [("fast_unseen_init", "fast", "unseen")] if args.unseen_init else []
        runs += [] if args.skip_authors else [("authors", "authors", "uniform")]
        for name, procedure, init in runs:
            vector = optimise_region(
                mapping,
                scene,
                procedure=procedure,  # type: ignore[arg-type]
                init=init,  # type: ignore[arg-type]
                windows=args.windows,
                steps=args.steps,
                seed=args.seed,
                window_size=args.window_size,
                max_epochs=args.authors_max_epochs,
                device="cpu",
            )
            vector.save(out / name / "region_vector.json")
            rows[name] = {
                **evaluate(mapping, scene, out / name, vector.probabilities, every, args.window_size),
                "seconds": round(vector.seconds, 2),
                "steps": vector.steps,
                "vector": [round(v, 3) for v in vector.probabilities],
                "load_average": round(os.getloadavg()[0], 2),
                "rejected_steps": list(vector.rejected_steps),
                "stop_reason": vector.stop_reason,
            }
            traces.setdefault(spec, {})[name] = list(vector.entropy_trace)
        figures["scenes"][spec] = rows
        print(json.dumps({spec: rows}, indent=1), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "acceptance.json").write_text(json.dumps({**figures, "traces": traces}, indent=2))
    print("| scene | vector | objective (Eq. 1, windows) | mapped entropy | glacier IoU | seconds | steps |")
    print("|---|---|---|---|---|---|---|")
    for spec, rows in figures["scenes"].items():
        for name in [k for k in rows if k != "valid_windows"]:
            r = rows[name]
            print(
                f"| {spec} | {name} | {r['objective']:.4f} | {r['mapped_entropy']:.4f} | {r['iou_glacier']:.4f} "
                f"| {r.get('seconds', '')} | {r.get('steps', '')} |"
            )
    if args.figure is not None and traces and not args.skip_authors:
        plot(traces, figures, args.figure)
    return 0


def scene_folder(root: Path, spec: str, side: int) -> Path:
    """The synthetic scene ``PRESET:SEED`` of ``side`` px under ``root``, generated if missing."""
    from glaciermap.synthetic.generate import generate_scene

    preset, seed = spec.split(":")
    scene = root / f"{preset}-s{seed}-{side}x{side}"
    if not (scene / "scene.json").is_file():
        generate_scene(scene, preset=preset, size=(side, side), seed=int(seed))
    return scene


def check_unseen_slot(mapping: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Glacier IoU of scenes of training regions with their own one-hot and with the "unseen" one-hot."""
    from glaciermap.inference import map_scene
    from glaciermap.synthetic.presets import PRESETS

    rows: dict[str, Any] = {}
    for spec in args.val_scenes:
        scene = scene_folder(args.root, spec, args.scene_size)
        code = PRESETS[spec.split(":")[0]].region_code
        row: dict[str, Any] = {"region": code}
        for name, region in (("own_region", code), ("unseen", "unseen")):
            out = args.out / "val" / spec.replace(":", "-") / name
            result = map_scene(
                mapping,
                scene,
                out,
                window_size=args.window_size,
                device="cpu",
                region=region,
                quicklook=False,
            )
            row[name] = {
                "iou_glacier": round(iou_glacier(out / "classes.tif", scene / "labels.tif"), 4),
                "mapped_entropy": round(1.0 - float(result.summary["mean_confidence"]), 5),
            }
        rows[spec] = row
        print(json.dumps({spec: row}), flush=True)
    return rows


def plot(traces: dict[str, Any], figures: dict[str, Any], path: Path) -> None:
    """Convergence curves of the first scene: entropy against Adam updates, both procedures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = next(iter(traces))
    rows = figures["scenes"][spec]
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    fast = traces[spec]["fast"]
    ax.plot(range(len(fast)), fast, marker="o", ms=3, color="C0", label="fast: Adam lr 1.0, sampled windows")
    rejected = rows["fast"].get("rejected_steps", [])
    if rejected:
        ax.plot(
            rejected,
            [fast[k] for k in rejected],
            ls="",
            marker="x",
            ms=6,
            color="C3",
            label="fast: rejected steps (undone, lr halved)",
        )
    authors = traces[spec]["authors"]
    per_epoch = max(1, rows["authors"]["steps"] // max(1, len(authors)))
    ax.plot(
        [per_epoch * (i + 1) for i in range(len(authors))],
        authors,
        color="C1",
        lw=0.8,
        label="authors: Adam lr 1e-4, random crops (epoch means)",
    )
    ax.axhline(rows["fast"]["objective"], color="C0", ls=":", lw=1.2, label="fast result, every valid window")
    ax.axhline(
        rows["authors"]["objective"], color="C1", ls=":", lw=1.2, label="authors' result, every valid window"
    )
    ax.axhline(
        rows["unseen"]["objective"], color="grey", ls="--", lw=1, label='"unseen" one-hot, every valid window'
    )
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("Adam updates")
    ax.set_ylabel("mean normalised entropy (Eq. 1)")
    ax.set_title(f"Bias optimisation on the held-out {spec} scene")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


if __name__ == "__main__":
    raise SystemExit(main())
