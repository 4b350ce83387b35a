"""``glaciermap evaluate``: score predictions against a reference and write a report.

``--pred`` and ``--ref`` each take a scene folder or mapping output folder (``classes.tif`` /
``labels.tif``), a directory of such folders (paired by scene name), or a vector file of glacier outlines
(GeoPackage layer ``glaciers``, shapefile, GeoJSON). ``--pred`` may repeat, as ``NAME=PATH`` to name a method;
``--band-ratio`` adds the band-ratio rule computed from each reference scene's ``optical.tif``. Without
``--ref`` the synthetic world's held-out scenes are the reference (generated once into a cache). The report
(``report.md``, CSV tables and PNG plots, see ``docs/evaluation.md``) goes to ``--out``.
"""

from __future__ import annotations

import argparse

HELP = (
    "Evaluate glacier maps or outlines against a reference: pixel, per-glacier and boundary metrics, report."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument(
        "--pred",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="predictions: a mapping output or scene folder, a directory of them, or a GeoPackage of outlines; "
        "repeat to compare methods (NAME= names a method, default the file or folder name)",
    )
    parser.add_argument(
        "--ref",
        default=None,
        metavar="PATH",
        help="reference: scene folder(s) or outlines (default: the synthetic world's held-out scenes)",
    )
    parser.add_argument("--out", required=True, metavar="REPORT_DIR", help="directory for the report")
    parser.add_argument(
        "--band-ratio",
        action="store_true",
        help="also evaluate the band ratio (red/swir1 > th1 and blue > th2) on the reference scenes' optical.tif",
    )
    parser.add_argument(
        "--band-ratio-thresholds",
        default=None,
        metavar="JSON",
        help="thresholds written by 'glaciermap fit-band-ratio' (default: the paper's 3.2 and 0.17)",
    )
    parser.add_argument(
        "--polis-spacing",
        type=float,
        default=10.0,
        metavar="M",
        help="boundary sampling interval of PoLiS in metres (default: 10, as the paper)",
    )
    parser.add_argument(
        "--min-area-km2",
        type=float,
        default=0.01,
        metavar="KM2",
        help="glaciers smaller than this (either side) are left out of the per-glacier metrics (default: 0.01)",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="where the default held-out scenes are generated (default: $GLACIERMAP_CACHE or ~/.cache/glaciermap)",
    )


def main(args: argparse.Namespace) -> int:
    """Run the evaluation and write the report; returns the exit status."""
    from glaciermap.baselines.band_ratio import (
        PAPER_BLUE_THRESHOLD,
        PAPER_RATIO_THRESHOLD,
        BandRatioFit,
    )
    from glaciermap.errors import ConfigError
    from glaciermap.evaluation import build_tables, evaluate, parse_method, write_report

    if args.band_ratio_thresholds is not None and not args.band_ratio:
        raise ConfigError("--band-ratio-thresholds needs --band-ratio")
    fit = None
    if args.band_ratio:
        fit = (
            BandRatioFit.from_json(args.band_ratio_thresholds)
            if args.band_ratio_thresholds
            else BandRatioFit(PAPER_RATIO_THRESHOLD, PAPER_BLUE_THRESHOLD, float("nan"), 0, 0)
        )
    ev = evaluate(
        [parse_method(spec) for spec in args.pred],
        ref=args.ref,
        band_ratio=fit,
        spacing=args.polis_spacing,
        min_area_km2=args.min_area_km2,
        cache_dir=args.cache_dir,
    )
    tables = build_tables(ev)
    files = write_report(ev, args.out, tables)
    regions = tables["per_region.csv"]
    for _, row in regions[regions["region"] == "all"].iterrows():
        print(f"{row['method']}: glacier IoU {row['iou']:.3f}, detection F1 {row['detection_f1']:.3f}")
    print(f"report: {files['report.md']}")
    return 0
