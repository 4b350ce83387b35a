"""``glaciermap synth-crevasses``: write the synthetic crevasse world (:mod:`glaciermap.synthetic.crevasses`)."""

from __future__ import annotations

import argparse

HELP = "generate the synthetic crevasse world (pan.tif, classes.tif, aoi.gpkg, index, labels.csv)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``glaciermap synth-crevasses``.

    Args:
        parser: The sub-command's parser.
    """
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write (created)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    parser.add_argument(
        "--tiles",
        nargs=2,
        type=int,
        default=(26, 20),
        metavar=("ROWS", "COLS"),
        help="scene size in split-images, both even (default 26 20: 520 split-images)",
    )
    parser.add_argument(
        "--tile-size",
        nargs=2,
        type=int,
        default=(201, 268),
        metavar=("ROWS", "COLS"),
        help="split-image size",
    )


def main(args: argparse.Namespace) -> int:
    """Generate the world and print a short summary.

    Args:
        args: Parsed arguments.

    Returns:
        Exit status 0.

    Raises:
        ConfigError: For an odd or too small number of tiles.
    """
    import time

    from glaciermap.datasets.scene_folder import read_folder_metadata
    from glaciermap.synthetic.crevasses import generate_crevasse_world

    start = time.perf_counter()
    folder = generate_crevasse_world(
        args.out, seed=args.seed, tiles=tuple(args.tiles), tile_size=tuple(args.tile_size)
    )
    meta = read_folder_metadata(folder)
    per_class = meta["tiles_per_class"]
    print(f"wrote {folder}")
    print(
        f"  {meta['height']} x {meta['width']} px at {meta['pixel_size']:g} m, {meta['crs']}, seed {meta['seed']}, "
        f"{meta['n_tiles']} split-images, {min(per_class.values())}-{max(per_class.values())} per class "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0
