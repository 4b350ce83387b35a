"""Benchmark of ``glaciermap prepare`` on a Sentinel-2-like tile: wall time and peak memory (issue 18).

Input: a fake Sentinel-2 L2A ``.SAFE`` product written by the test generator (``tests/data/sentinel2/make.py``)
at ``--size`` px a side (10,980 for a real 10 m tile): the four 10 m bands (B02, B03, B04, B08) and the 20 m
bands (B11, B12, and B8A, B05, not read) as uint16 GeoTIFFs, tiled 512 px and DEFLATE-compressed; a DEM in UTM
at 30 m covering the tile (smooth hills, :func:`write_hilly_dem`). ``glaciermap prepare --sentinel2 SAFE --dem DEM``
then runs in a child process (warping SWIR and DEM onto the 10 m grid, slope, unit checks, stats, the
co-registration check, tiled DEFLATE outputs), and its peak resident memory is ``ru_maxrss`` of the child
(``resource.getrusage(RUSAGE_CHILDREN)``).

``--write-results`` replaces the ``## Prepare`` section of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/prepare_benchmark.py --size 10980 --write-results    # several minutes on 2 CPU cores
    python benchmarks/prepare_benchmark.py --size 2048                      # quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.data.sentinel2.make import LEFT, TOP, make_safe  # noqa: E402

GTIFF = {"tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}


def write_hilly_dem(path: Path, size: int) -> Path:
    """A 30 m UTM DEM covering the tile (100 m margin): smooth hills between about 2,500 and 5,500 m."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    n = size // 3 + 8
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) * 30.0
    z = 4000.0 + 1500.0 * np.sin(xx / 5000.0) * np.cos(yy / 7000.0)
    with rasterio.open(
        path, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32", crs="EPSG:32643",
        transform=from_origin(LEFT - 100.0, TOP + 100.0, 30.0, 30.0), nodata=-32768, **GTIFF,
    ) as dst:  # fmt: skip
        dst.write(z.astype(np.float32), 1)
    return path


def make_inputs(work: Path, size: int) -> tuple[Path, Path, float]:
    """Write the product and the DEM (each reused when present); returns their paths and the seconds it took."""
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    products = sorted(work.glob("S2A_*.SAFE"))
    if products:
        safe = products[0]
    else:
        safe = make_safe(work, driver="GTiff", size=size, row_step=0.2 / size, creation_options=GTIFF)
    dem = work / "dem.tif"
    if not dem.is_file():
        write_hilly_dem(dem, size)
    return safe, dem, time.perf_counter() - t0


def run_prepare(safe: Path, dem: Path, out: Path) -> tuple[float, float, float]:
    """Run ``glaciermap prepare`` in a child; returns wall seconds, peak RSS (MiB) and child CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "glaciermap", "prepare", "--sentinel2", str(safe), "--dem", str(dem)]
    cmd += ["--out", str(out), "--overwrite", "--region", "HMA"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, after.ru_maxrss / 1024.0, cpu


def results_markdown(
    size: int, gen_s: float, wall: float, rss: float, cpu: float, loads: tuple[float, float]
) -> str:
    """The ``## Prepare`` section of RESULTS.md."""
    full = size == 10980
    lines = [
        "## Prepare",
        "",
        f"`python benchmarks/prepare_benchmark.py --size {size} --write-results` ({time.strftime('%Y-%m-%d')}; "
        f"{os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}).",
        "",
        f"Fake Sentinel-2 L2A tile of {size:,} x {size:,} px at 10 m ({'a full tile' if full else 'part of a tile'}"
        f", {size * size / 1e6:.1f} M pixels): B02, B03, B04, B08 at 10 m, B11, B12 at 20 m (uint16 GeoTIFF, "
        "tiled, DEFLATE), DEM at 30 m in UTM (smooth hills); default options (256-row strips, co-registration check on).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| wall time of `glaciermap prepare` | {wall:.1f} s |",
        f"| CPU time of the child (user + system) | {cpu:.1f} s |",
        f"| peak resident memory of the child (`ru_maxrss`) | {rss:,.0f} MiB |",
        f"| machine load average (1 min) before / after | {loads[0]:.1f} / {loads[1]:.1f} |",
        f"| generating the inputs (not part of prepare) | {gen_s:.1f} s |",
        "",
        "Target: <= ~2 GB for a full tile. Memory is a few strips of every band, the GDAL block cache (256 MB), "
        "the co-registration check (two images of at most 1024 px a side and their FFTs: a fixed ~0.1 GB) and "
        "the imports (numpy, rasterio, geopandas: about 0.1 GiB; the command does not import torch); it does not "
        "grow with the number of rows.",
    ]
    return "\n".join(lines) + "\n"


def write_results(section: str, path: Path) -> None:
    """Replace (or append) the ``## Prepare`` section of RESULTS.md."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    start = text.find("## Prepare")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section.rstrip() + "\n" + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def main() -> None:
    """Generate the inputs, run prepare, print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980, help="side of the 10 m bands, px (even)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/glaciermap-prepare-benchmark"))
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    work = args.work_dir / f"s{args.size}"
    safe, dem, gen_s = make_inputs(work, args.size)
    load0 = os.getloadavg()[0]
    wall, rss, cpu = run_prepare(safe, dem, work / "scene")
    load1 = os.getloadavg()[0]
    section = results_markdown(args.size, gen_s, wall, rss, cpu, (load0, load1))
    print(section)
    if args.write_results:
        write_results(section, Path(__file__).with_name("RESULTS.md"))


if __name__ == "__main__":
    main()
