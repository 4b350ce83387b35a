"""Benchmark of the directional vario function (issue 15): featurise the paper's Negribreen scene.

The GEOCLASS-image v2.0 paper classifies all 33,234 split-images of its Negribreen scene (Sec. 6). This
script featurises that many random uint8 split-images of 201 x 268 pixels (values do not change the cost)
with :func:`glaciermap.transforms.vario.directional_vario` (float mode, 53 lags, lag threshold 0.8) and
reports the wall time of the featurisation alone (the random tiles are generated chunk by chunk, outside
the timed part), for the default feature vector ``[N-S, E-W, diagonal]`` and for all four directions.

It prints the machine (CPU model, cores, load average before and after, torch version and threads) next
to the figures, because other jobs on the same cores change them. Target: under 10 s on 2 CPU cores.

Usage::

    python benchmarks/vario_benchmark.py                  # 33,234 tiles
    python benchmarks/vario_benchmark.py --tiles 4096     # quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

import glaciermap.transforms.vario as vario_module
from glaciermap.transforms.vario import directional_vario


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def featurise(
    n_tiles: int,
    chunk: int,
    directions: tuple[int, ...],
    device: str,
    seed: int = 0,
    batch: int = 16,
    workers: int = 1,
) -> tuple[float, float]:
    """Wall and process CPU seconds spent in the vario function for ``n_tiles`` random tiles (generation
    excluded)."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    cpu = 0.0
    done = 0
    while done < n_tiles:
        n = min(chunk, n_tiles - done)
        tiles = torch.randint(0, 256, (n, 201, 268), dtype=torch.uint8, generator=generator).to(device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        out = directional_vario(tiles, directions=directions, chunk_size=batch, workers=workers)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        total += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        assert out.shape == (n, len(directions), 53)
        done += n
    return total, cpu


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiles", type=int, default=33_234, help="number of split-images (default 33,234)")
    parser.add_argument("--chunk", type=int, default=1024, help="tiles generated per step")
    parser.add_argument("--batch", type=int, default=16, help="tiles per batched vario step (chunk_size)")
    parser.add_argument(
        "--workers", type=int, default=1, help="threads featurising chunks concurrently (with --threads 1)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--compare-float",
        action="store_true",
        help="also time the float32 product path (uint8 tiles otherwise take the exact int8 path)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load_before = os.getloadavg()
    directional_vario(torch.zeros(8, 201, 268, dtype=torch.uint8, device=args.device))  # warm-up
    runs = {}
    for path in ("int8", "float32") if args.compare_float else ("int8",):
        vario_module.INTEGER_PRODUCTS = path == "int8"
        three = featurise(
            args.tiles, args.chunk, (0, 1, 2), args.device, batch=args.batch, workers=args.workers
        )
        four = featurise(
            args.tiles, args.chunk, (0, 1, 2, 3), args.device, batch=args.batch, workers=args.workers
        )
        runs[path] = (three, four)
    load_after = os.getloadavg()
    print(
        f"machine: {cpu_model()}, {cores} cores, load average (1 min) {load_before[0]:.1f} before / "
        f"{load_after[0]:.1f} after"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"{args.batch} tiles per vario step, {args.workers} worker thread(s)"
    )
    print(f"{args.tiles:,} split-images of 201 x 268 px, 53 lags per direction (float mode)")
    for path, (three, four) in runs.items():
        print(f"{path} products{' (default for uint8 tiles on a CPU)' if path == 'int8' else ''}:")
        for name, (wall, cpu) in (
            ("feature vector [N-S, E-W, diagonal] (159 values)", three),
            ("all four directions (212 values)", four),
        ):
            print(
                f"  {name}: wall {wall:.1f} s ({wall / args.tiles * 1e6:.0f} us/tile), process CPU {cpu:.1f} s"
            )


if __name__ == "__main__":
    main()
