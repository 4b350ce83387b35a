"""``glaciermap calibrate``: fit a confidence calibrator for an existing model on labelled scenes.

    glaciermap calibrate --checkpoint CKPT|WEIGHTS --scenes DIR... [--heldout DIR...]
                         --method krr|temperature|isotonic --out WEIGHTS.safetensors [--mc-passes N] ...

The scenes are mapped as ``glaciermap map`` maps them (the same window options); the calibrator (GlaViTU paper
Eq. 4) and the IoU correction are fitted on ``--scenes`` and written with the model's weights into ``--out``;
a table of ECE_100 (Eq. 5) before and after, on the calibration and held-out scenes, and of the estimated and
actual IoU per scene is printed (and written to ``--report`` as JSON if given).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from glaciermap.inference.options import add_arguments as add_map_options

HELP = "fit a confidence calibrator (GlaViTU Eqs. 3-5) on labelled scenes; write weights that carry it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        metavar="CKPT",
        help="a .ckpt or released .safetensors weights",
    )
    parser.add_argument(
        "--scenes", type=Path, nargs="+", required=True, metavar="DIR", help="labelled calibration scene(s)"
    )
    parser.add_argument(
        "--heldout",
        type=Path,
        nargs="*",
        default=[],
        metavar="DIR",
        help="labelled held-out scene(s), measured only",
    )
    parser.add_argument(
        "--method",
        choices=["krr", "temperature", "isotonic"],
        default="krr",
        help="kernel ridge as the GlaViTU authors (default), temperature scaling or isotonic regression",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="WEIGHTS", help="output .safetensors file")
    parser.add_argument(
        "--report", type=Path, default=None, metavar="JSON", help="also write the figures as JSON"
    )
    add_map_options(parser)  # the window options of 'glaciermap map'


def main(args: argparse.Namespace) -> int:
    """Calibrate; prints the ECE and IoU tables and returns 0."""
    from glaciermap.datasets.scene_folder import find_scenes
    from glaciermap.errors import ConfigError
    from glaciermap.inference import load_pretrained
    from glaciermap.inference.calibrate import calibrate_model, write_calibrated_weights
    from glaciermap.inference.options import from_arguments
    from glaciermap.inference.predictor import ScenePredictor
    from glaciermap.io import check_output_file, write_json

    if args.out.suffix != ".safetensors":
        raise ConfigError(f"--out {args.out}: expected a .safetensors file for the calibrated weights")
    if args.report is not None:
        check_output_file(args.report, "--report")
    scenes, heldout = find_scenes(args.scenes), find_scenes(args.heldout) if args.heldout else []
    mapping = load_pretrained(args.checkpoint)
    predictor = ScenePredictor(mapping, from_arguments(args))
    report = calibrate_model(mapping, predictor, scenes, args.method, heldout)
    extra = {
        "calibration": {
            "method": args.method,
            "scenes": [s.name for s in scenes],
            "options": predictor.options.summary(),
            "ece": report.ece,
        }
    }
    report.out = write_calibrated_weights(mapping, report.calibrator, args.out, extra)
    if args.report is not None:
        write_json(args.report, report.to_dict())
    _print(report, mapping.class_names)
    return 0


def _print(report: object, class_names: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    from glaciermap.inference.calibrate import CalibrationReport

    assert isinstance(report, CalibrationReport)
    console = Console()
    table = Table(title=f"ECE_100 (GlaViTU paper Eq. 5), method {report.method}")
    for col in ("scenes", "before", "after"):
        table.add_column(col, justify="right" if col != "scenes" else "left")
    for which, values in report.ece.items():
        table.add_row(which, f"{values['before']:.4f}", f"{values['after']:.4f}")
    console.print(table)
    iou = Table(title="IoU per scene: actual / estimated without labels (corrected)")
    iou.add_column("scene")
    iou.add_column("set")
    for name in class_names[1:]:
        iou.add_column(name, justify="right")
    for row in report.scenes:
        cells = [
            "-" if a is None or e is None else f"{a:.3f} / {e:.3f}"
            for a, e in zip(row["actual_iou"][1:], row["estimated_iou"][1:])
        ]
        iou.add_row(row["scene"], row["set"], *cells)
    console.print(iou)
    console.print(f"calibrated weights -> {report.out}")
