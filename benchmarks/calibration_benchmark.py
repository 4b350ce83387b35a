"""Calibration of the bundled model on the synthetic world (issue 13): ECE before/after, IoU estimate, MC dropout.

Generates labelled synthetic scenes that no training, validation, test or demo scene uses (calibration:
karakoram 301, 302, svalbard 303, alaska 304; held-out: karakoram 311, 312, svalbard 313, alaska 314; 512 x 512
px at 10 m), maps them with the bundled ``synthetic_cpu`` weights exactly as ``glaciermap map`` does by default
(cosine blending, 1/8 overlap, the default 384-px windows; ``--overlap`` and ``--window`` change it: the bundled
calibrator before 2026-12-01 was fitted with ``--overlap 0.5``) and, from the same mapped scenes:

* fits the three calibrators (``krr``, ``temperature``, ``isotonic``) on the calibration scenes and reports
  ECE_100 (GlaViTU paper Eq. 5) before and after on the calibration and held-out scenes;
* reports the held-out ECE_100 of the calibrator the bundled weights carry now (fitted perhaps at other
  windows) on the same maps, overall and per scene, against that of the new fit;
* reports the IoU estimated without labels (corrected by the line fitted on the calibration scenes) against
  the actual IoU on every held-out scene, and draws it (``docs/img/calibration_iou_estimate.png``);
* draws reliability diagrams (10 bins, as GlaViTU paper Fig. 3) of the held-out scenes before and after KRR
  (``docs/img/calibration_reliability_*.png``);
* repeats the KRR calibration with Monte-Carlo dropout confidence (``--mc-passes``, default 8: the model has
  dropout 0.1) on the same scenes, to compare with softmax confidence.

``--pearson-from RESULTS.json`` instead maps the held-out scenes once with softmax and once with MC dropout,
each calibrated by its own KRR calibrator from an earlier run's results, and reports the Pearson correlation of
the two calibrated confidences per pixel (the paper: 0.873-0.884).

``--checkpoint CKPT --tag NAME`` runs the same comparison for another model, e.g. the small GlaViTU of
``examples/glavitu_small_calibrated.yaml`` (trained with dropout on): softmax and MC-dropout confidence, each
raw and calibrated by all three methods, the checkpoint's own calibrator (fitted while training, on its
validation scenes) on the held-out scenes, actual and estimated IoU per held-out scene for both confidences,
and the figures ``docs/img/calibration_*_NAME*.png``. It prints the Markdown tables of docs/calibration.md.

``--update-bundled`` writes the softmax KRR calibrator (with its IoU correction) into
``glaciermap/weights/synthetic_cpu.safetensors`` (tensors unchanged) and prints the new sha256.

Usage::

    python benchmarks/calibration_benchmark.py --work-dir /tmp/calib_bench --json benchmarks/calibration_results.json
    python benchmarks/calibration_benchmark.py --work-dir /tmp/calib_bench \
        --checkpoint runs/glavitu_small_calibrated/lightning_logs/version_0/checkpoints/last.ckpt --tag glavitu_small \
        --json benchmarks/calibration_results_glavitu_small.json
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glaciermap.inference import MapOptions, ScenePredictor, load_pretrained
from glaciermap.inference.calibrate import (
    CalibrationReport,
    SceneCalibrationData,
    calibrate_from_data,
    collect_scene,
    evaluate_calibrator,
    write_calibrated_weights,
)
from glaciermap.metrics.calibration import plot_reliability_diagram, reliability_table
from glaciermap.models.hub import bundled_weights, read_weights
from glaciermap.synthetic.generate import generate_scene

CALIBRATION = [("karakoram", 301), ("karakoram", 302), ("svalbard", 303), ("alaska", 304)]
HELDOUT = [("karakoram", 311), ("karakoram", 312), ("svalbard", 313), ("alaska", 314)]
OPTIONS: dict[str, Any] = {"window": MapOptions().window, "overlap": MapOptions().overlap, "device": "cpu"}
"""Window options of every mapping: ``glaciermap map``'s defaults unless ``--overlap`` / ``--window`` say otherwise."""
IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def scenes(work: Path, which: list[tuple[str, int]], size: int) -> list[Path]:
    """Generate (once) the scenes of a list of (preset, seed)."""
    out = []
    for preset, seed in which:
        folder = work / f"{preset}_{seed}"
        if not (folder / "scene.json").is_file():
            generate_scene(folder, preset=preset, size=(size, size), seed=seed)
        out.append(folder)
    return out


def merge_all(data: list[SceneCalibrationData]) -> SceneCalibrationData:
    """The scenes' calibration data pooled into one."""
    return functools.reduce(SceneCalibrationData.merge, data)


def bundled_comparison(
    old: Any, held: list[SceneCalibrationData], report: CalibrationReport
) -> dict[str, Any]:
    """Held-out ECE_100 of the calibrator the bundled weights carried (``old``) and of the new fit, same maps."""
    merged = merge_all(held)
    return {
        "heldout_raw": evaluate_calibrator(merged, None),
        "heldout_previous": evaluate_calibrator(merged, old),
        "heldout_new": evaluate_calibrator(merged, report.calibrator),
        "per_scene": {
            d.scene: {
                "raw": evaluate_calibrator(d, None),
                "previous": evaluate_calibrator(d, old),
                "new": evaluate_calibrator(d, report.calibrator),
            }
            for d in held
        },
    }


def collect(
    weights: Path, cal: list[Path], held: list[Path], mc_passes: int
) -> tuple[list[Any], list[Any], float]:
    """Map the scenes and collect their calibration data; returns (cal, held, seconds)."""
    mapping = load_pretrained(weights)
    predictor = ScenePredictor(mapping, MapOptions(mc_passes=mc_passes, **OPTIONS))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    c = [collect_scene(predictor, s, seed=i) for i, s in enumerate(cal)]
    h = [collect_scene(predictor, s, seed=100 + i) for i, s in enumerate(held)]
    return c, h, time.perf_counter() - t0


def diagrams(held: list[SceneCalibrationData], report: CalibrationReport, tag: str) -> None:
    """Reliability diagrams of the held-out scenes before and after calibration."""
    fine = merge_all(held).histogram()
    before = reliability_table(fine.rebin(100), n_bins=10)
    after = reliability_table(fine.calibrated(report.calibrator, 100), n_bins=10)
    ece = report.ece["heldout"]
    plot_reliability_diagram(
        before,
        IMG / f"calibration_reliability_{tag}_before.png",
        f"{tag}, before: ECE_100 = {ece['before']:.4f}",
    )
    plot_reliability_diagram(
        after,
        IMG / f"calibration_reliability_{tag}_after.png",
        f"{tag}, after KRR: ECE_100 = {ece['after']:.4f}",
    )


def iou_plot(
    report: CalibrationReport,
    class_names: tuple[str, ...],
    path: Path,
    title: str = "held-out synthetic scenes, KRR",
) -> dict[str, dict[str, float]]:
    """Estimated (corrected) against actual IoU on held-out scenes; returns the errors."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    errors: dict[str, list[float]] = {}
    held = [r for r in report.scenes if r["set"] == "heldout"]
    series = {
        name: [(r["actual_iou"][k], r["estimated_iou"][k]) for r in held]
        for k, name in enumerate(class_names)
    }
    series.pop(class_names[0])
    if "actual_iou_glacier" in held[0]:
        series["glacier (clean + debris)"] = [
            (r["actual_iou_glacier"], r["estimated_iou_glacier"]) for r in held
        ]
    for name, raw_pairs in series.items():
        pairs = [(a, e) for a, e in raw_pairs if a is not None and e is not None]
        if pairs:
            a, e = np.array(pairs).T
            ax.plot(a, e, "o", label=name)
            errors[name] = np.abs(a - e).tolist()
    ax.plot([0, 1], [0, 1], "-", color="#31a354", label="ideal")
    ax.set_xlabel("actual IoU (against labels)")
    ax.set_ylabel("IoU estimated without labels")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.savefig(path)
    return {
        name: {"mean_abs_error": float(np.mean(e)), "max_abs_error": float(np.max(e)), "n": len(e)}
        for name, e in errors.items()
    }


def update_bundled(report: CalibrationReport, weights: Path) -> str:
    """Write the calibrator into the bundled weights (tensors unchanged); returns the new sha256."""
    mapping = load_pretrained(weights)
    before, _ = read_weights(weights)
    tmp = weights.with_name("synthetic_cpu.calibrated.safetensors")
    extra = {
        "calibration": {
            "method": report.method,
            "scenes": [f"{p}:{s}" for p, s in CALIBRATION],
            "options": ScenePredictor(mapping, MapOptions(**OPTIONS)).options.summary(),  # type: ignore[arg-type]
            "ece": report.ece,
            "command": "python benchmarks/calibration_benchmark.py --update-bundled",
        }
    }
    write_calibrated_weights(mapping, report.calibrator, tmp, extra)
    after, meta = read_weights(tmp)
    assert before.keys() == after.keys() and all(
        np.array_equal(before[k].numpy(), after[k].numpy()) for k in before
    )
    assert meta["calibrator"]["kind"] == "krr"
    shutil.move(tmp, weights)
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def pearson(
    weights: Path, results_path: Path, held: list[Path], mc_passes: int, work: Path
) -> dict[str, float]:
    """Pearson correlation of softmax- and MC-dropout-calibrated confidence per pixel, per held-out scene."""
    import rasterio

    from glaciermap.calibration import calibrator_from_dict
    from glaciermap.inference import map_scene

    results = json.loads(results_path.read_text())
    calibrators = {
        0: calibrator_from_dict(results["softmax"]["krr"]["calibrator"]),
        mc_passes: calibrator_from_dict(results["mc_dropout"]["calibrator"]),
    }
    out: dict[str, float] = {}
    for scene in held:
        conf = {}
        for passes, calibrator in calibrators.items():
            mapping = load_pretrained(weights)
            mapping.calibrator = calibrator
            folder = work / "maps" / f"{scene.name}_mc{passes}"
            map_scene(mapping, scene, folder, mc_passes=passes, quicklook=False, **OPTIONS)  # type: ignore[arg-type]
            with rasterio.open(folder / "calibrated_confidence.tif") as src:
                conf[passes] = src.read(1, masked=True)
        valid = ~(np.ma.getmaskarray(conf[0]) | np.ma.getmaskarray(conf[mc_passes]))
        a, b = np.asarray(conf[0])[valid], np.asarray(conf[mc_passes])[valid]
        out[scene.name] = float(np.corrcoef(a, b)[0, 1])
        print(
            f"{scene.name}: Pearson r of calibrated softmax and MC ({mc_passes} passes) confidence {out[scene.name]:.3f}"
        )
    return out


METHODS = ("krr", "temperature", "isotonic")


def compare_model(
    weights: Path, tag: str, cal: list[Path], held: list[Path], mc_passes: int
) -> dict[str, Any]:
    """Softmax against MC-dropout confidence of one model, each raw and calibrated (GlaViTU paper Eqs. 3-5).

    Returns:
        ``{"softmax"|"mc": {"seconds", "methods": {method: report}, "checkpoint_calibrator": ECE or None,
        "iou": [per held-out scene: actual and estimated glacier IoU]}}``.
    """
    mapping = load_pretrained(weights)
    names, own = mapping.class_names, mapping.calibrator
    results: dict[str, Any] = {"weights": str(weights), "class_names": list(names), "mc_passes": mc_passes}
    for kind, passes in (("softmax", 0), ("mc", mc_passes)):
        c, h, secs = collect(weights, cal, held, passes)
        reports = {m: calibrate_from_data(c, h, m, names) for m in METHODS}  # type: ignore[arg-type]
        merged = merge_all(h)
        k = len(names) - 1  # the last class: glacier (binary) or debris-covered ice
        results[kind] = {
            "seconds": secs,
            "methods": {m: r.to_dict() for m, r in reports.items()},
            "checkpoint_calibrator_heldout_ece": None if own is None else evaluate_calibrator(merged, own),
            "iou": [
                {"scene": r["scene"], "actual": r["actual_iou"][k], "estimated": r["estimated_iou"][k]}
                for r in reports["krr"].scenes
                if r["set"] == "heldout"
            ],
            "iou_error": iou_plot(
                reports["krr"],
                names,
                IMG / f"calibration_iou_estimate_{tag}_{kind}.png",
                f"{tag}, {kind}, KRR",
            ),
        }
        diagrams(h, reports["krr"], f"{tag}_{kind}")
    return results


def print_comparison(results: dict[str, Any]) -> None:
    """The Markdown tables of docs/calibration.md for a model compared by :func:`compare_model`."""
    print(
        "| confidence | method | calibration before | after | held-out before | after |\n|---|---|---|---|---|---|"
    )
    for kind, label in (("softmax", "softmax"), ("mc", f"MC dropout, {results['mc_passes']} passes")):
        for m, r in results[kind]["methods"].items():
            e = r["ece"]
            print(
                f"| {label} | {m} | {e['calibration']['before']:.4f} | {e['calibration']['after']:.4f} | "
                f"{e['heldout']['before']:.4f} | {e['heldout']['after']:.4f} |"
            )
        own = results[kind]["checkpoint_calibrator_heldout_ece"]
        if own is not None:
            print(f"| {label} | checkpoint's krr (validation scenes) | | | | {own:.4f} |")
    print("\n| scene | softmax IoU actual / estimated | MC dropout IoU actual / estimated |\n|---|---|---|")
    for s, m in zip(results["softmax"]["iou"], results["mc"]["iou"], strict=True):
        print(
            f"| {s['scene']} | {s['actual']:.3f} / {s['estimated']:.3f} | {m['actual']:.3f} / {m['estimated']:.3f} |"
        )
    for kind in ("softmax", "mc"):
        act = [r["actual"] for r in results[kind]["iou"]]
        print(
            f"{kind}: mean held-out IoU {np.mean(act):.3f}; estimate error {json.dumps(results[kind]['iou_error'])}"
        )


def main() -> None:
    """Run the experiments and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("calibration_bench"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--mc-passes", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--update-bundled", action="store_true")
    parser.add_argument("--pearson-from", type=Path, default=None, metavar="RESULTS_JSON")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="compare another model (.ckpt/.safetensors)"
    )
    parser.add_argument("--tag", default="model", help="name of that model in figures")
    parser.add_argument(
        "--overlap", type=float, default=OPTIONS["overlap"], help="window overlap (map default)"
    )
    parser.add_argument("--window", default=OPTIONS["window"], help="blending window (map default)")
    args = parser.parse_args()
    OPTIONS.update(overlap=args.overlap, window=args.window)
    cal, held = scenes(args.work_dir, CALIBRATION, args.size), scenes(args.work_dir, HELDOUT, args.size)
    if args.checkpoint is not None:
        start = {
            "load_average": os.getloadavg(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        }
        results = {**start, "size": args.size, "options": OPTIONS, "command": " ".join(sys.argv)}
        results.update(compare_model(args.checkpoint, args.tag, cal, held, args.mc_passes))
        results["load_average_end"] = os.getloadavg()
        results["versions"] = {"torch": torch.__version__, "numpy": np.__version__}
        print_comparison(results)
        print(f"load average {results['load_average']} -> {results['load_average_end']}")
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=1))
        return
    weights = bundled_weights("synthetic_cpu")
    bundled = load_pretrained(weights)
    class_names, previous = bundled.class_names, bundled.calibrator
    if args.pearson_from is not None:
        load = os.getloadavg()
        r = pearson(weights, args.pearson_from, held, args.mc_passes, args.work_dir)
        print(json.dumps({"pearson": r, "load_average": [load, os.getloadavg()]}))
        return
    results: dict[str, Any] = {"load_average": os.getloadavg(), "size": args.size, "options": OPTIONS}
    c, h, secs = collect(weights, cal, held, 0)
    results["softmax_seconds"] = secs
    reports = {m: calibrate_from_data(c, h, m, class_names) for m in ("krr", "temperature", "isotonic")}  # type: ignore[arg-type]
    results["softmax"] = {m: r.to_dict() for m, r in reports.items()}
    diagrams(h, reports["krr"], "softmax")
    results["iou_error"] = iou_plot(reports["krr"], class_names, IMG / "calibration_iou_estimate.png")
    results["bundled_comparison"] = bundled_comparison(previous, h, reports["krr"])
    print(f"held-out ECE_100, previous bundled calibrator against new fit: {results['bundled_comparison']}")
    for m, r in reports.items():
        print(f"softmax {m}: {json.dumps(r.ece)}")
    print(f"IoU estimate error (held-out, KRR): {results['iou_error']}")
    if args.mc_passes > 1:
        c, h, secs = collect(weights, cal, held, args.mc_passes)
        results["mc_seconds"] = secs
        mc = calibrate_from_data(c, h, "krr", class_names)
        results["mc_dropout"] = mc.to_dict()
        diagrams(h, mc, f"mc{args.mc_passes}")
        print(f"MC dropout ({args.mc_passes} passes) krr: {json.dumps(mc.ece)}")
    results["load_average_end"] = os.getloadavg()
    if args.update_bundled:
        results["bundled_sha256"] = update_bundled(reports["krr"], weights)
        print(f"bundled weights updated, sha256 {results['bundled_sha256']}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"load average {results['load_average']} -> {results['load_average_end']}")


if __name__ == "__main__":
    main()
