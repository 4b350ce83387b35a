"""``glaciermap split``: cut a panchromatic scene into split-images and write their index.

See :mod:`glaciermap.datasets.split_index`.
"""

from __future__ import annotations

import argparse

HELP = "cut a single-band panchromatic raster into split-images (201 x 268 px) and write the tile index"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``glaciermap split``.

    Args:
        parser: The sub-command's parser.
    """
    parser.add_argument(
        "--image", required=True, metavar="PAN.tif", help="single-band raster (any GDAL format)"
    )
    parser.add_argument("--aoi", default=None, metavar="AOI", help="area-of-interest polygons (any CRS)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for index.gpkg and index.csv")
    parser.add_argument(
        "--tile-size",
        nargs=2,
        type=int,
        default=(201, 268),
        metavar=("ROWS", "COLS"),
        help="split-image size in pixels (default 201 268, the 3-4-5 rectangle)",
    )
    parser.add_argument(
        "--nodata-value",
        type=float,
        action="append",
        default=None,
        metavar="V",
        help="pixel value treated as nodata besides the raster's own (repeatable; default 0, as the reference)",
    )
    parser.add_argument("--utm-epsg", type=int, default=None, metavar="CODE", help="UTM CRS of the centres")


def main(args: argparse.Namespace) -> int:
    """Build and write the index; print a one-line summary.

    Args:
        args: Parsed arguments.

    Returns:
        Exit status 0.

    Raises:
        InputError: For a multi-band raster, a tile larger than the scene, an AOI that does not overlap, ...
    """
    from glaciermap.datasets.split_index import build_split_index, write_split_index

    index = build_split_index(
        args.image,
        aoi=args.aoi,
        tile_size=tuple(args.tile_size),
        extra_nodata=tuple(args.nodata_value) if args.nodata_value is not None else (0,),
        utm_epsg=args.utm_epsg,
    )
    gpkg, csv = write_split_index(index, args.out)
    height, width = args.tile_size
    print(
        f"wrote {len(index)} split-images of {height} x {width} px: {gpkg}, {csv} (UTM EPSG:{index['utm_epsg'].iloc[0]})"
    )
    return 0
