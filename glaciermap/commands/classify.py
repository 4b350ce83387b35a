"""``glaciermap classify``: classify every split-image of a panchromatic scene into crevasse classes.

See :mod:`glaciermap.inference.classify`.
"""

from __future__ import annotations

import argparse

HELP = "classify the split-images of a panchromatic scene (VarioMLP / ResNet-18 / VarioNet checkpoint)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``glaciermap classify``.

    Args:
        parser: The sub-command's parser.
    """
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="classifier checkpoint (.ckpt)")
    parser.add_argument("--image", required=True, metavar="PAN.tif", help="single-band panchromatic raster")
    parser.add_argument("--aoi", default=None, metavar="AOI", help="area-of-interest polygons (any CRS)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--min-confidence", type=float, default=0.0, metavar="C", help="leave tiles below C unlabelled (0-1)"
    )
    parser.add_argument(
        "--export-confident",
        type=float,
        default=None,
        metavar="T",
        help="also write confident_labels.csv: predictions with confidence above T, a new labelled dataset",
    )
    parser.add_argument("--equal", action="store_true", help="balance the exported dataset across classes")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="split-images per batch")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="intra-op CPU threads (default 1, fastest on shared cores; 0: one per core)",
    )


def main(args: argparse.Namespace) -> int:
    """Classify, write the outputs and print a one-line summary.

    Args:
        args: Parsed arguments.

    Returns:
        Exit status 0.

    Raises:
        InputError: For a bad checkpoint, raster, AOI or threshold.
    """
    from glaciermap.errors import InputError
    from glaciermap.inference.classify import classify_scene, write_classification
    from glaciermap.io import output_lock

    if args.export_confident is not None and not 0.0 <= args.export_confident < 1.0:
        raise InputError(f"--export-confident {args.export_confident}: expected a value in [0, 1)")
    if args.equal and args.export_confident is None:
        raise InputError("--equal: only with --export-confident T")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: expected 0 (one per core) or a positive number")
    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size}: expected a positive number")
    result = classify_scene(
        args.checkpoint, args.image, args.aoi, args.min_confidence, args.batch_size, args.threads
    )
    with output_lock(args.out):
        summary = write_classification(result, args.out, args.export_confident, args.equal)
    rate = summary["tiles"] / max(summary["timings_s"]["classify_s"], 1e-9)
    print(
        f"classified {summary['tiles']} split-images ({rate:.1f}/s), mean confidence "
        f"{summary['mean_confidence']:.3f}, {summary['unlabelled']} unlabelled: {args.out}"
    )
    return 0
