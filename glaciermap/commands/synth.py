"""``glaciermap synth``: write a synthetic scene folder (see :mod:`glaciermap.synthetic.generate`)."""

from __future__ import annotations

import argparse

HELP = "generate a synthetic glacier scene folder (optical, DEM, thermal, SAR, InSAR, labels)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``glaciermap synth``.

    Args:
        parser: The sub-command's parser.
    """
    parser.add_argument("--out", required=True, metavar="DIR", help="scene folder to write (created)")
    parser.add_argument(
        "--region",
        default="karakoram",
        metavar="NAME",
        help="region preset: karakoram (HMA, debris-rich; default), svalbard (SVAL, clean-ice polar), "
        "alaska (AWA, maritime with calving fronts), alps (ALP)",
    )
    parser.add_argument(
        "--size", nargs=2, type=int, default=(512, 512), metavar=("H", "W"), help="scene size in pixels"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    parser.add_argument("--pixel-size", type=float, default=10.0, metavar="M", help="pixel size in metres")
    parser.add_argument("--year", type=int, default=None, help="acquisition year (default: the preset's)")
    parser.add_argument("--clouds", action="store_true", help="add thin cloud")
    parser.add_argument("--nodata-stripes", action="store_true", help="add scan-line nodata stripes")


def main(args: argparse.Namespace) -> int:
    """Generate the scene and print a short summary.

    Args:
        args: Parsed arguments.

    Returns:
        Exit status 0.

    Raises:
        ConfigError: For an unknown region or an out-of-range size, seed or pixel size.
    """
    import time

    from glaciermap.datasets.scene_folder import read_scene_metadata
    from glaciermap.synthetic.generate import generate_scene

    start = time.perf_counter()
    folder = generate_scene(
        args.out,
        preset=args.region,
        size=tuple(args.size),
        seed=args.seed,
        pixel_size=args.pixel_size,
        clouds=args.clouds,
        nodata_stripes=args.nodata_stripes,
        year=args.year,
    )
    meta = read_scene_metadata(folder)
    area = meta["class_area_km2"]
    km2 = meta["height"] * meta["width"] * meta["pixel_size"] ** 2 / 1e6
    print(f"wrote {folder}")
    print(
        f"  {meta['preset']} ({meta['region_code']}, {meta['year']}, {meta['sensor']}), "
        f"{meta['height']} x {meta['width']} px at {meta['pixel_size']:g} m = {km2:.2f} km2, {meta['crs']}, "
        f"seed {meta['seed']}"
    )
    print(
        f"  glacier area: clean ice {area['clean_ice']:.3f} km2, debris-covered ice {area['debris_ice']:.3f} km2, "
        f"{meta['n_glaciers']} glaciers ({time.perf_counter() - start:.1f} s)"
    )
    return 0
