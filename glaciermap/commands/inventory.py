"""``glaciermap inventory``: class raster + DEM -> glacier inventory (GeoPackage + CSV)."""

from __future__ import annotations

import argparse

HELP = "Build a glacier inventory (outlines, ice divides, RGI 7 attributes, uncertainty) from a class raster and a DEM."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument(
        "--classes", required=True, help="class raster: 0 background, 1 clean ice, 2 debris, 255 nodata"
    )
    parser.add_argument(
        "--dem", required=True, help="DEM GeoTIFF (band 1 elevation, m); reprojected to the class grid"
    )
    parser.add_argument(
        "--out", required=True, help="output GeoPackage (layers glaciers, debris, divides); CSV beside it"
    )
    parser.add_argument(
        "--reference", help="reference outlines (.gpkg/.shp) whose divides are copied (method 'copy')"
    )
    parser.add_argument(
        "--method",
        choices=["flowshed", "copy", "none"],
        help="ice-divide method (default: copy with --reference, else flowshed)",
    )
    parser.add_argument(
        "--min-area", type=float, default=0.01, help="minimum glacier area, km2 (default 0.01)"
    )
    parser.add_argument(
        "--median-filter", type=int, default=0, help="odd median-filter window, pixels (0: none)"
    )
    parser.add_argument(
        "--buffer-pixels", type=float, default=1.0, help="buffer of the area uncertainty, pixels"
    )
    parser.add_argument("--dem-source", help="text of the dem_source field (default: the DEM file name)")
    parser.add_argument(
        "--date",
        help="acquisition date for src_date, ISO 8601 YYYY[-MM[-DD]] (default: a scene.json beside CLASSES)",
    )
    snow = parser.add_mutually_exclusive_group()
    snow.add_argument(
        "--snow-line",
        type=float,
        metavar="ELEVATION_M",
        help="snow-line altitude, m: adds 'aar' and 'glacier_type' columns from the DEM (Karakoram paper 4.4)",
    )
    snow.add_argument(
        "--snow-mask",
        metavar="MASK.tif",
        help="snow mask (band 1, nonzero = snow; e.g. from an albedo product): adds 'aar' and 'glacier_type'",
    )
    parser.add_argument(
        "--type-min-area",
        type=float,
        default=5.0,
        help="smallest glacier given a type, km2 (default 5, as the paper); smaller ones get an empty type",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes for the glacier complexes (default 1)"
    )


def main(args: argparse.Namespace) -> int:
    """Build and write the inventory; prints a one-line summary. Returns the exit status."""
    from glaciermap.inventory.pipeline import build_inventory

    inv = build_inventory(
        args.classes,
        args.dem,
        args.out,
        min_area_km2=args.min_area,
        median_filter=args.median_filter,
        method=args.method,
        reference=args.reference,
        buffer_pixels=args.buffer_pixels,
        dem_source=args.dem_source,
        date=args.date,
        workers=args.workers,
        snowline_m=args.snow_line,
        snow_mask=args.snow_mask,
        type_min_area_km2=args.type_min_area,
    )
    s = inv.summary
    note = " (DEM reprojected to the class grid)" if s["dem_reprojected"] else ""
    if "glacier_types" in s:
        note += "; types " + ", ".join(f"{k} {v}" for k, v in s["glacier_types"].items())
    print(
        f"{s['n_glaciers']} glaciers in {s['n_complexes']} complexes, "
        f"{s['area_km2']:.3f} +/- {s['area_unc_km2']:.3f} km2 "
        f"(debris {s['area_debris_km2']:.3f} +/- {s['debris_unc_km2']:.3f} km2), "
        f"{s['n_divides']} divides [{s['method']}]{note} -> {inv.gpkg_path}, {inv.csv_path}"
    )
    return 0
