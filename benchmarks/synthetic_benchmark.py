"""Benchmark of the synthetic world generator: throughput and peak memory against scene size.

Each size is generated in a fresh child process (default preset, seed 0, 10 m pixels), which reports its
wall time split into the coarse stage and the windowed fine stage, and its peak resident memory
(``ru_maxrss``). The coarse grid is capped at 1536 cells a side and the fine stage works in windows of
``--block`` pixels, so memory should stay flat once scenes pass about 6,000 pixels a side.

Usage::

    python benchmarks/synthetic_benchmark.py --sizes 1024 4096 8192 [--block 1024] [--keep DIR]

Prints one JSON line per size; the figures quoted in ``docs/synthetic_world.md`` come from this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, resource, sys, time
from glaciermap.synthetic import generate as synthetic
from glaciermap.synthetic import terrain as synthetic_terrain
size, block, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
timer = {}
build = synthetic_terrain.build_coarse_world
def timed_build(*args, **kwargs):
    t = time.perf_counter()
    world = build(*args, **kwargs)
    timer["coarse_s"] = time.perf_counter() - t
    timer["coarse_cells"] = int(world.stack.shape[1] * world.stack.shape[2])
    timer["factor"] = world.factor
    return world
synthetic_terrain.build_coarse_world = timed_build
t0 = time.perf_counter()
synthetic.generate_scene(out, size=(size, size), seed=0, block_size=block)
wall = time.perf_counter() - t0
meta = json.load(open(out + "/scene.json"))
print(json.dumps({
    "size": size, "block": block, "wall_s": round(wall, 2), "coarse_s": round(timer["coarse_s"], 2),
    "fine_s": round(wall - timer["coarse_s"], 2), "mpix_per_s": round(size * size / 1e6 / wall, 3),
    "fine_mpix_per_s": round(size * size / 1e6 / (wall - timer["coarse_s"]), 3),
    "coarse_cells": timer["coarse_cells"], "factor": timer["factor"],
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    "n_glaciers": meta["n_glaciers"], "class_area_km2": meta["class_area_km2"],
}))
"""


def run(size: int, block: int, out: Path) -> dict[str, object]:
    """Generate one scene in a child process and return its report."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(size), str(block), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["disk_mib"] = round(sum(f.stat().st_size for f in out.iterdir()) / 2**20, 1)
    return result


def main() -> None:
    """Parse arguments and run the sizes one after the other."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 8192])
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--keep", type=Path, default=None, help="keep the scenes under this folder")
    args = parser.parse_args()
    print(json.dumps({"machine": platform.platform(), "python": platform.python_version()}))
    for size in args.sizes:
        root = args.keep or Path(tempfile.mkdtemp(prefix="synthetic-bench-"))
        out = root / f"scene_{size}"
        try:
            print(json.dumps(run(size, args.block, out)), flush=True)
        finally:
            if args.keep is None:
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
