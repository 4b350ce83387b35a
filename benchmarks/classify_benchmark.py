"""Benchmark of ``glaciermap classify`` (issue 16): split-images per second and peak memory vs scene size.

Generates synthetic crevasse scenes of increasing size (``--sizes`` in split-images, rows x columns) and
classifies each with the bundled VarioNet (``crevasse_varionet_synthetic``) in a fresh process, reporting the
classification rate (split-images per second, from ``summary.json``), the wall time and the child's peak
resident memory, next to the load average (other jobs share the cores).

Usage::

    python benchmarks/classify_benchmark.py --sizes 12x10 26x20 [--work runs/classify_bench]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["12x10", "26x20"])
    parser.add_argument("--work", type=Path, default=Path("runs/classify_bench"))
    parser.add_argument("--checkpoint", default="crevasse_varionet_synthetic")
    args = parser.parse_args()
    from glaciermap.synthetic.crevasses import generate_crevasse_world

    print("| scene (split-images) | pixels | split-images/s | wall s | peak RSS MiB | load before / after |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        rows, cols = (int(v) for v in size.split("x"))
        world = args.work / f"world_{size}"
        if not (world / "pan.tif").is_file():
            generate_crevasse_world(world, seed=7, tiles=(rows, cols))
        out = args.work / f"out_{size}"
        code = (
            "import resource, sys; from glaciermap.cli import main; rc = main(sys.argv[1:]); "
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
        )
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        argv = ["classify", "--checkpoint", args.checkpoint, "--image", str(world / "pan.tif"), "--out", str(out)]
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        rss = int(proc.stdout.split("MAXRSS")[-1]) / 1024
        summary = json.loads((out / "summary.json").read_text())
        rate = summary["tiles"] / summary["timings_s"]["classify_s"]
        print(f"| {size} ({summary['tiles']}) | {rows * 201} x {cols * 268} | {rate:.1f} | {wall:.1f} | "
              f"{rss:.0f} | {load0:.1f} / {os.getloadavg()[0]:.1f} |", flush=True)  # fmt: skip
    _ = resource
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
