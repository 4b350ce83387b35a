"""``glaciermap compare-inventory``: match our inventory with a reference (RGI 6/7 or other) and compare areas."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Compare a glacier inventory with a reference one: matched, omitted and new glaciers, area differences per glacier and per grid cell."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("ours", help="our inventory (.gpkg, layer 'glaciers', or .shp)")
    parser.add_argument("reference", help="reference inventory (.gpkg or .shp; RGI 6 or RGI 7 field names)")
    parser.add_argument("--out-dir", help="output folder (default: OURS_vs_REFERENCE beside OURS)")
    parser.add_argument("--cell-size", type=float, default=10.0, help="side of the comparison grid cells, km")
    parser.add_argument("--layer", help="layer of OURS to read (default 'glaciers')")
    parser.add_argument("--reference-layer", help="layer of REFERENCE to read")


def main(args: argparse.Namespace) -> int:
    """Compare and write the results; prints the counts. Returns the exit status."""
    from glaciermap.inventory.compare import compare_inventories, write_comparison
    from glaciermap.inventory.outlines import read_outlines

    ours = read_outlines(args.ours, "inventory to compare", layer=args.layer)
    ref = read_outlines(args.reference, "reference inventory", layer=args.reference_layer)
    comparison = compare_inventories(ours, ref, cell_size_km=args.cell_size)
    ours_path, ref_path = Path(args.ours), Path(args.reference)
    out_dir = (
        Path(args.out_dir) if args.out_dir else ours_path.with_name(f"{ours_path.stem}_vs_{ref_path.stem}")
    )
    write_comparison(comparison, out_dir)
    s = comparison.summary
    print(
        f"{s['n_matched']} matched, {s['n_omitted']} omitted, {s['n_new']} new "
        f"(ours {s['n_ours']}, reference {s['n_reference']}); area ours {s['area_ours_km2']:.3f} km2, "
        f"reference {s['area_reference_km2']:.3f} km2 -> {out_dir}"
    )
    return 0
