"""``glaciermap fit-band-ratio``: fit the band-ratio thresholds on training scenes.

Finds (th1, th2) of ``red / swir1 > th1 and blue > th2`` maximising the glacier IoU pooled over the scenes'
labelled pixels (GlaViTU paper: 3.2 and 0.17 on its training data), prints them and writes them as JSON for
``glaciermap evaluate --band-ratio --band-ratio-thresholds``.
"""

from __future__ import annotations

import argparse

HELP = "Fit the band-ratio thresholds (red/swir1 > th1, blue > th2) by maximising IoU on training scenes."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument(
        "--scenes",
        nargs="+",
        required=True,
        metavar="DIR",
        help="training scene folders (optical.tif + labels.tif), or directories of them",
    )
    parser.add_argument("--out", required=True, metavar="JSON", help="where to write the thresholds")
    parser.add_argument(
        "--ratio-grid",
        nargs=3,
        type=float,
        default=(0.0, 10.0, 0.05),
        metavar=("MIN", "MAX", "STEP"),
        help="candidate red/swir1 thresholds (default: 0 10 0.05)",
    )
    parser.add_argument(
        "--blue-grid",
        nargs=3,
        type=float,
        default=(0.0, 1.0, 0.005),
        metavar=("MIN", "MAX", "STEP"),
        help="candidate blue thresholds (default: 0 1 0.005)",
    )


def main(args: argparse.Namespace) -> int:
    """Fit, print and write the thresholds; returns the exit status."""
    from pathlib import Path

    import numpy as np

    from glaciermap.baselines.band_ratio import fit_band_ratio
    from glaciermap.constants import SCENE_FILES
    from glaciermap.errors import ConfigError, InputError
    from glaciermap.io import atomic_output, json_text

    def grid(values: tuple[float, float, float], flag: str) -> list[float]:
        lo, hi, step = values
        if not step > 0 or hi < lo:
            raise ConfigError(f"{flag}: expected MIN <= MAX and STEP > 0, got {lo} {hi} {step}")
        return [float(v) for v in np.round(np.arange(lo, hi + step / 2, step), 9)]

    folders: list[Path] = []
    for item in args.scenes:
        path = Path(item)
        if (path / SCENE_FILES["labels"]).is_file():
            folders.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if (p / SCENE_FILES["labels"]).is_file())
            if not found:
                raise InputError(f"--scenes {path}: no scene folder (with optical.tif and labels.tif) found")
            folders.extend(found)
        else:
            raise InputError(f"--scenes {path}: not found; expected a scene folder or a directory of them")
    fit = fit_band_ratio(folders, grid(args.ratio_grid, "--ratio-grid"), grid(args.blue_grid, "--blue-grid"))
    with atomic_output(args.out) as tmp:
        tmp.write_text(json_text(fit.to_dict()))
    print(
        f"red/swir1 > {fit.ratio_threshold:g} and blue > {fit.blue_threshold:g}: glacier IoU {fit.iou:.4f} "
        f"on {fit.n_pixels} pixels of {len(folders)} scene(s) -> {args.out}"
    )
    return 0
