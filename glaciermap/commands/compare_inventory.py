"""``glaciermap compare-inventory``: match our inventory with a reference (RGI 6/7 or other) and compare areas."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "Compare a glacier inventory with a reference one: matched, omitted and new glaciers, area differences per glacier and per grid cell."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("ours", help="our inventory (.gpkg, layer 'glaciers', or .shp)")
    parser.add_argument("reference", help="reference inventory (.gpkg or .shp; RGI 6 or RGI 7 field names)")
    parser.add_argument("--out-dir", help="output folder (default: OURS_vs_REFERENCE beside OURS)")
    parser.add_argument("--cell-size", type=float, default=10.0, help="side of the comparison grid cells, km")
    parser.add_argument("--layer", help="layer of OURS to read (default 'glaciers')")
    parser.add_argument("--reference-layer", help="layer of REFERENCE to read")
    parser.add_argument(
        "--digitisations",
        nargs="+",
        metavar="FILE",
        help="two or more independent manual digitisations of the same glaciers: adds the multi-digitisation "
        "uncertainty (area difference of OURS against their mean, Karakoram paper Sec. 3.3.3) as "
        "multi_digitisation.csv",
    )


def main(args: argparse.Namespace) -> int:
    """Compare and write the results; prints the counts. Returns the exit status."""
    from glaciermap.datasets.vectors import read_outlines
    from glaciermap.inventory.compare import compare_inventories, write_comparison

    ours = read_outlines(args.ours, "inventory to compare", layer=args.layer)
    ref = read_outlines(args.reference, "reference inventory", layer=args.reference_layer)
    comparison = compare_inventories(ours, ref, cell_size_km=args.cell_size)
    ours_path, ref_path = Path(args.ours), Path(args.reference)
    out_dir = (
        Path(args.out_dir) if args.out_dir else ours_path.with_name(f"{ours_path.stem}_vs_{ref_path.stem}")
    )
    write_comparison(comparison, out_dir)
    if args.digitisations:
        _multi_digitisation(ours, args.digitisations, args.cell_size, out_dir)
    s = comparison.summary
    print(
        f"{s['n_matched']} matched, {s['n_omitted']} omitted, {s['n_new']} new "
        f"(ours {s['n_ours']}, reference {s['n_reference']}); area ours {s['area_ours_km2']:.3f} km2, "
        f"reference {s['area_reference_km2']:.3f} km2 -> {out_dir}"
    )
    return 0


def _multi_digitisation(ours: Any, paths: list[str], cell_size: float, out_dir: Path) -> None:
    """Match OURS with each digitisation, write ``multi_digitisation.csv`` and print the summary."""
    from glaciermap.datasets.vectors import read_outlines
    from glaciermap.inventory.compare import compare_inventories
    from glaciermap.inventory.glacier_type import matched_areas, multi_digitisation_uncertainty
    from glaciermap.io import atomic_output

    automated: dict[str, float] = {}
    digitised: list[dict[str, float]] = []
    for path in paths:
        manual = read_outlines(path, "manual digitisation")
        auto_areas, areas = matched_areas(compare_inventories(ours, manual, cell_size_km=cell_size).matches)
        automated.update(auto_areas)
        digitised.append(areas)
    table, summary = multi_digitisation_uncertainty(automated, digitised)
    with atomic_output(out_dir / "multi_digitisation.csv") as tmp:
        table.to_csv(tmp, index=False)
    print(
        f"multi-digitisation: {int(summary['n_glaciers'])} glaciers in all {len(paths)} digitisations; total area "
        f"difference {summary['total_difference_pct']:+.1f} %, mean |difference| "
        f"{summary['mean_abs_difference_pct']:.1f} %"
    )
