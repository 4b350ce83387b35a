"""``glaciermap prepare``: turn Sentinel-2, Landsat or loose band files plus a DEM into a scene folder.

See :mod:`glaciermap.prepare.scene` for what is done (resampling onto the optical grid, slope, unit checks,
streaming) and ``docs/data.md`` for the options.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glaciermap.prepare.bands import BandFile

HELP = "make a scene folder from Sentinel-2 / Landsat products or band GeoTIFFs, a DEM and optional outlines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``glaciermap prepare``.

    Args:
        parser: The sub-command's parser.
    """
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--optical",
        nargs="+",
        metavar="FILE",
        help="six band files (blue green red nir swir1 swir2): NAME=FILE, or files whose names contain the "
        "band name or, with --sensor, the sensor's band id (B02, B2, ...); values in reflectance unless "
        "--optical-scale/--optical-offset say otherwise",
    )
    source.add_argument("--sentinel2", metavar="SAFE", help="Sentinel-2 L1C/L2A .SAFE product folder")
    source.add_argument(
        "--landsat", metavar="FOLDER", help="Landsat Collection 2 L1/L2 product folder (MTL + TIFs)"
    )
    parser.add_argument(
        "--sensor",
        choices=("sentinel2", "landsat89", "landsat7", "landsat45"),
        default=None,
        help="sensor whose band ids identify --optical files",
    )
    parser.add_argument("--optical-scale", type=float, default=1.0, help="multiplier of --optical values")
    parser.add_argument(
        "--optical-offset", type=float, default=0.0, help="added to --optical values after scaling"
    )
    parser.add_argument("--dem", required=True, metavar="FILE", help="elevation in metres (any CRS)")
    parser.add_argument(
        "--dem-scale", type=float, default=1.0, help="multiplier of DEM values (0.3048: feet)"
    )
    parser.add_argument(
        "--thermal",
        metavar="FILE",
        help="thermal band in K (default with --landsat: the product's thermal band)",
    )
    parser.add_argument("--no-thermal", action="store_true", help="write no thermal.tif even with --landsat")
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument(
        "--outlines", metavar="FILE", help="glacier outlines (RGI 6/7, GLIMS; shapefile/GPKG, any CRS)"
    )
    labels.add_argument(
        "--labels", metavar="FILE", help="label raster 0/1/2/255, resampled with nearest neighbour"
    )
    parser.add_argument("--debris", metavar="FILE", help="debris-cover polygons (with --outlines)")
    parser.add_argument(
        "--region", default="unknown", metavar="CODE", help="region code for scene.json (e.g. HMA)"
    )
    parser.add_argument("--year", type=int, default=None, help="acquisition year (default: the product's)")
    parser.add_argument("--out", required=True, metavar="DIR", help="scene folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    parser.add_argument("--block-rows", type=int, default=256, metavar="N", help="rows per strip (memory)")
    _add_coregistration_arguments(parser)


def _add_coregistration_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the co-registration check (Karakoram paper Sec. 3.1)."""
    parser.add_argument(
        "--coregistration",
        choices=("warn", "error", "off"),
        default="warn",
        help="check that the NIR band and the DEM hillshade (or --coregistration-reference) are not shifted: "
        "warn (default), error (write nothing) or off; the shift goes to scene.json",
    )
    parser.add_argument(
        "--coregistration-tolerance",
        type=float,
        default=1.0,
        metavar="PX",
        help="largest acceptable shift, scene pixels (default 1)",
    )
    parser.add_argument(
        "--coregistration-reference",
        metavar="FILE",
        help="reference image (band 1, e.g. an orthoimage) instead of the DEM hillshade",
    )
    parser.add_argument(
        "--sun",
        nargs=2,
        type=float,
        default=(135.0, 45.0),
        metavar=("AZIMUTH", "ELEVATION"),
        help="sun azimuth and elevation of the hillshade, degrees (default 135 45; use the scene's)",
    )


def _product(
    args: argparse.Namespace,
) -> tuple[Mapping[str, BandFile], BandFile | None, dict[str, Any], str | None]:
    """Optical bands, thermal band, ``scene.json`` entries and date of the chosen source."""
    from glaciermap.prepare.bands import pick_band_files

    if args.sentinel2:
        from glaciermap.prepare.sentinel2 import read_sentinel2

        s2 = read_sentinel2(args.sentinel2)
        meta = {
            "sensor": s2.spacecraft or "Sentinel-2",
            "level": s2.level,
            "processing_baseline": s2.baseline,
            "offsets": s2.offsets,
            "date": s2.date,
            "product": str(s2.folder),
        }
        return s2.bands, None, meta, s2.date
    if args.landsat:
        from glaciermap.prepare.landsat import read_landsat

        ls = read_landsat(args.landsat)
        meta = {"sensor": ls.sensor, "level": ls.level, "product": ls.product_id, "date": ls.date}
        return ls.bands, ls.thermal, meta, ls.date
    optical = pick_band_files(
        args.optical, sensor=args.sensor, scale=args.optical_scale, offset=args.optical_offset
    )
    return optical, None, ({"sensor": args.sensor} if args.sensor else {}), None


def main(args: argparse.Namespace) -> int:
    """Prepare the scene and print a one-line summary.

    Args:
        args: Parsed arguments.

    Returns:
        Exit status 0.

    Raises:
        InputError: For a missing or unusable input (named in the message).
        ConfigError: For contradictory options.
    """
    from glaciermap.errors import ConfigError
    from glaciermap.prepare.bands import BandFile
    from glaciermap.prepare.scene import CoregistrationCheck, PrepareInputs, prepare_scene

    optical, thermal, meta, date = _product(args)
    year: int | None = args.year if args.year is not None else (int(date[:4]) if date else None)
    if args.thermal:
        thermal = BandFile(name="thermal", path=Path(args.thermal), unit="K")
    if args.no_thermal:
        thermal = None
    if args.debris and not args.outlines:
        raise ConfigError("--debris needs --outlines (debris is burned only inside glacier outlines)")
    inputs = PrepareInputs(
        optical=optical,
        dem=BandFile(name="elevation", path=Path(args.dem), scale=args.dem_scale, unit="m"),
        thermal=thermal,
        outlines=Path(args.outlines) if args.outlines else None,
        debris=Path(args.debris) if args.debris else None,
        labels=Path(args.labels) if args.labels else None,
        region=args.region,
        year=year,
        metadata={k: v for k, v in meta.items() if v is not None},
    )
    check = CoregistrationCheck(
        mode=args.coregistration,
        tolerance_px=args.coregistration_tolerance,
        reference=Path(args.coregistration_reference) if args.coregistration_reference else None,
        sun_azimuth=args.sun[0],
        sun_elevation=args.sun[1],
    )
    out = prepare_scene(
        inputs, args.out, block_rows=args.block_rows, overwrite=args.overwrite, coregistration=check
    )
    print(f"wrote scene {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0
