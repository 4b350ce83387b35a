"""Benchmark of ``glaciermap classify`` (issue 16): split-images per second and peak memory vs scene size.

Generates synthetic crevasse scenes of increasing size (``--sizes`` in split-images, rows x columns) and
classifies each with the bundled VarioNet (``crevasse_varionet_synthetic``) in a fresh process per scene and
thread count (``--threads``, interleaved so that both see the same load), reporting the classification rate
(split-images per second, from ``summary.json``), the process CPU time per split-image, the wall time and the
child's peak resident memory, next to the load average (other jobs share the cores).

Usage::

    python benchmarks/classify_benchmark.py --sizes 12x10 26x20 --threads 1 2 [--repeat 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["12x10", "26x20"])
    parser.add_argument("--work", type=Path, default=Path("runs/classify_bench"))
    parser.add_argument("--checkpoint", default="crevasse_varionet_synthetic")
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import platform

    import torch

    from glaciermap.synthetic.crevasses import generate_crevasse_world

    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch "
          f"{torch.__version__}, load {os.getloadavg()}")  # fmt: skip
    print("| scene (split-images) | pixels | threads | split-images/s | process CPU ms / split-image | wall s | "
          "peak RSS MiB | load before / after |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    worlds = {}
    for size in args.sizes:
        rows, cols = (int(v) for v in size.split("x"))
        worlds[size] = args.work / f"world_{size}"
        if not (worlds[size] / "pan.tif").is_file():
            generate_crevasse_world(worlds[size], seed=7, tiles=(rows, cols))
    for _ in range(args.repeat):
        for size in args.sizes:
            for threads in args.threads:
                _run(args, size, worlds[size], threads)
    return 0


def _run(args: argparse.Namespace, size: str, world: Path, threads: int) -> None:
    rows, cols = (int(v) for v in size.split("x"))
    out = args.work / f"out_{size}_{threads}"
    code = (
        "import resource, sys; from glaciermap.cli import main; rc = main(sys.argv[1:]); "
        "u = resource.getrusage(resource.RUSAGE_SELF); print('MAXRSS', u.ru_maxrss, u.ru_utime + u.ru_stime); "
        "sys.exit(rc)"
    )
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    argv = ["classify", "--checkpoint", args.checkpoint, "--image", str(world / "pan.tif"), "--out", str(out),
            "--threads", str(threads)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    rss_kib, cpu_s = proc.stdout.split("MAXRSS")[-1].split()
    summary = json.loads((out / "summary.json").read_text())
    rate = summary["tiles"] / summary["timings_s"]["classify_s"]
    cpu_ms = 1000 * float(cpu_s) / summary["tiles"]
    print(f"| {size} ({summary['tiles']}) | {rows * 201} x {cols * 268} | {threads} | {rate:.1f} | {cpu_ms:.0f} | "
          f"{wall:.1f} | {int(rss_kib) / 1024:.0f} | {load0:.1f} / {os.getloadavg()[0]:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
