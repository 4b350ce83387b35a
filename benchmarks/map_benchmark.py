"""Benchmark of scene mapping (issue 5): km2/s at 10 m and peak memory.

Two measurements, each run in its own child process so that its peak resident memory (``ru_maxrss``) is its
own:

1. **GlaViTU, full size** (10.0 M parameters, 384 x 384 windows, Optical+DEM, random weights: speed does
   not depend on them) on a synthetic-pattern scene of ``--glavitu-size`` pixels a side at 10 m, with 50 %
   overlap and without overlap, on the CPU and, where one is present, on CUDA (bf16 autocast, channels-last).
   Reported: wall time of ``map_scene`` (reading, prediction, blending, COG writing, quick-look, summary),
   windows, seconds per window, km2/s, peak RSS.
2. **Streaming memory**: the band-ratio model (no network, so the run measures reading, blending and
   writing) on scenes of growing height and width, to show that peak memory is bounded by the width and
   does not grow with the height.

Scenes are written once into ``--work-dir`` (smooth fields with a little noise, DEFLATE; their content does
not matter for speed). ``--write-results`` replaces the ``## Scene mapping`` section of
``benchmarks/RESULTS.md``.

With ``--backends`` it measures instead the CPU inference backends (torch eager batch 1 and 8 channels-last,
ONNX Runtime, OpenVINO) at the anchor configuration (1152 x 1152 px at 10 m, 50 % overlap, Gaussian, 25 windows,
fp32) and at lower overlaps with cosine blending, interleaved ``--repeats`` times, each in a fresh process, then
GlaViTU's peak memory at batch 1 and 8 against scene height and width; it prints the machine, CPU flags, load and
versions and replaces the ``## CPU backends`` and ``## Memory`` sections of RESULTS.md. ``--large-size N`` adds
an N x N scene at the authors' windows (1/2 overlap, Gaussian) and at this release's default (1/8, cosine)
(``## CPU backends: large scene``); ``--glavitu-memory-sizes`` with no sizes keeps the saved memory section.

``--isa avx2`` emulates a runner without AVX-512 (issue 20's) on a newer CPU: the child processes run with the
instruction sets of oneDNN (torch's and OpenVINO's), ATen and MKL capped at AVX2 (:data:`EMULATED_ISAS`); each
run records the instruction set its runtimes report, the report names it in the section titles, and the saved
runs go to ``--work-dir``/isa-avx2. ONNX Runtime has no such cap, so its configurations are left out.

Usage::

    python benchmarks/map_benchmark.py --write-results                 # about 15 min on 2 CPU cores
    python benchmarks/map_benchmark.py --backends --write-results      # about 1 h on 2 busy cores
    python benchmarks/map_benchmark.py --glavitu-size 768 --memory-sizes 2048x2048   # quick look
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PIXEL_M = 10.0
BIG_SCENE_KM2 = (20_000 * PIXEL_M / 1000) ** 2
"""Area of the 20,000 x 20,000 px extrapolation scene: 40,000 km2 at 10 m."""
CRS = "EPSG:32643"
ORIGIN = (600_000.0, 3_960_000.0)
STRIP = 512
EMULATED_ISAS: dict[str, dict[str, str]] = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
"""``--isa``: the environment that caps the instruction sets of the child processes (oneDNN reads
``ONEDNN_MAX_CPU_ISA``, also inside OpenVINO; ATen its kernels' ``ATEN_CPU_CAPABILITY``; MKL its GEMMs')."""


def write_scene(folder: Path, height: int, width: int, seed: int = 0) -> Path:
    """Write an Optical+DEM scene folder of smooth patterns (once); returns the folder."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from glaciermap.constants import BANDS, RASTER_NODATA, SCENE_FILES

    if (folder / "scene.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    transform = from_origin(ORIGIN[0], ORIGIN[1], PIXEL_M, PIXEL_M)
    cols = np.arange(width, dtype=np.float32)[None, :]
    stats: dict[str, Any] = {}
    for modality, scale, offset in (("optical", 0.3, 0.3), ("dem", 1500.0, 4500.0)):
        names = BANDS[modality]
        profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": len(names),
            "dtype": "float32",
            "crs": CRS,
            "transform": transform,
            "nodata": RASTER_NODATA,
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "deflate",
            "zlevel": 1,
            "bigtiff": "if_safer",
        }
        with rasterio.open(folder / SCENE_FILES[modality], "w", **profile) as dst:
            dst.descriptions = names
            for r0 in range(0, height, STRIP):
                h = min(STRIP, height - r0)
                rows = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
                bands = []
                for b in range(len(names)):
                    field = np.sin(rows / (700.0 + 90 * b)) * np.cos(cols / (900.0 - 70 * b))
                    noise = rng.standard_normal((h, width), dtype=np.float32) * 0.02
                    bands.append(offset + scale * (field + noise))
                dst.write(np.stack(bands).astype(np.float32), window=Window(0, r0, width, h))
        stats[modality] = {
            "mean": [offset] * len(names),
            "std": [scale / 2] * len(names),
            "min": [offset - scale] * len(names),
            "max": [offset + scale] * len(names),
            "count": height * width,
        }
    (folder / "stats.json").write_text(json.dumps(stats))
    meta = {"region": "HMA", "crs": CRS, "pixel_size": PIXEL_M, "height": height, "width": width}
    (folder / "scene.json").write_text(json.dumps(meta))
    return folder


def run_child(args: argparse.Namespace) -> None:
    """Map one scene with one configuration and print a JSON line of figures."""
    import torch

    import glaciermap.inference.predictor as predictor_module
    from glaciermap.inference.heap import CPU_HEAP_ENV
    from glaciermap.inference.mapping import map_scene
    from glaciermap.models import get_model
    from glaciermap.models.pretrained import PretrainedModel
    from glaciermap.transforms.normalisation import NormStats

    setup = {"seconds": 0.0}
    compile_backend = predictor_module.compile_backend

    def timed_compile(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return compile_backend(*a, **k)
        finally:
            setup["seconds"] += time.perf_counter() - t

    predictor_module.compile_backend = timed_compile  # type: ignore[assignment]
    if args.fold == "no":  # the network as it is: the mapping path before batch-norm folding
        predictor_module.fold_for_inference = lambda model: copy.deepcopy(model).eval()  # type: ignore[assignment]
    os.environ[CPU_HEAP_ENV] = args.heap
    rows_mb: list[int] = []
    # resident memory once each row of windows is predicted (its activations freed)
    if args.row_memory == "yes":
        finish_row = predictor_module.RingAccumulator.finish_row

        def recorded(self: Any, i: int) -> Any:
            rows_mb.append(resident_mb())
            return finish_row(self, i)

        predictor_module.RingAccumulator.finish_row = recorded  # type: ignore[method-assign]
    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    if args.model == "glavitu":
        model = get_model("glavitu", modalities={"optical": 6, "dem": 2}, num_classes=2)
        stats_raw = json.loads((Path(args.scene) / "stats.json").read_text())
        from glaciermap.constants import BANDS

        stats = NormStats.from_dict(
            {"modalities": {m: {"bands": list(BANDS[m]), **stats_raw[m]} for m in ("optical", "dem")}}
        )
        mapping: Any = PretrainedModel.from_model(model, stats, info={"model": "glavitu (random weights)"})
    else:
        from glaciermap.baselines import band_ratio_model

        mapping = band_ratio_model()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    result = map_scene(
        mapping,
        args.scene,
        args.out,
        overlap=args.overlap,
        window=args.window,
        backend=args.backend,
        check_ranges=False,  # the synthetic patterns are not physical units (the DEM's slope band)
        window_size=args.window_size,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last != "no",
        convolution=args.convolution,
        progress=False,
    )
    wall = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    s = result.summary
    isa = effective_isa(args.backend)  # after the timing: its small test layers run outside it
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(
        json.dumps(
            {
                "model": args.model,
                "backend": args.backend,
                "batch_size": args.batch_size,
                "fold": args.fold,
                "window": args.window,
                "setup_seconds": round(setup["seconds"], 2),
                "km2_per_s_steady": round(s["scene_area_km2"] / max(1e-9, wall - setup["seconds"]), 3),
                "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2),
                "device": s["device"],
                "precision": s["precision"],
                "channels_last": s["channels_last"],
                "convolution": s["convolution"],
                "height": s["height"],
                "width": s["width"],
                "overlap": args.overlap,
                "window_size": s["window_size"],
                "windows": s["windows"],
                "seconds": round(wall, 2),
                "predict_seconds": s["predict_seconds"],
                "seconds_per_window": round(wall / max(1, s["windows"]), 3),
                "km2": s["scene_area_km2"],
                "km2_per_s": round(s["scene_area_km2"] / wall, 3),
                "peak_rss_mb": round(peak_mb, 1),
                "peak_gpu_mb": None if peak_gpu_mb is None else round(peak_gpu_mb, 1),
                "isa": isa,
                "heap": args.heap,
                **({"resident_mb_rows": rows_mb} if args.row_memory == "yes" else {}),
                "page_faults_per_window": round(faults / max(1, s["windows"])),
            }
        )
    )


def resident_mb() -> int:
    """This process's resident memory now, in MiB (Linux ``/proc/self/statm``; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (OSError, ValueError, IndexError):
        return 0


def effective_isa(backend: str) -> str:
    """The instruction sets this process's runtimes use: ATen's kernels, oneDNN's (from its verbose log of a
    channels-last convolution) and, for ``backend="openvino"``, the kernel OpenVINO picks for a convolution."""
    import re
    import tempfile

    import torch

    conv = torch.nn.Conv2d(32, 32, 3).to(memory_format=torch.channels_last)
    x = torch.randn(1, 32, 32, 32).contiguous(memory_format=torch.channels_last)
    sys.stdout.flush()
    with tempfile.TemporaryFile() as log:  # oneDNN writes its log to the process's standard output
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), torch.no_grad():
                conv(x)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        text = log.read().decode(errors="replace")
    onednn = re.search(r"isa:([^\n]+)", text)
    parts = [
        f"ATen {torch.backends.cpu.get_cpu_capability()}",
        f"oneDNN {onednn.group(1).strip() if onednn else 'unknown'}",
    ]
    if backend == "openvino":
        parts.append(f"OpenVINO convolution kernel {_openvino_conv_kernel(conv, x)}")
    return ", ".join(parts)


def _openvino_conv_kernel(conv: Any, x: Any) -> str:
    """The primitive OpenVINO's CPU plugin compiles ``conv`` to (its name carries the instruction set)."""
    import tempfile

    import openvino as ov
    import torch

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conv.onnx"
        torch.onnx.export(conv, (x.contiguous(),), str(path), dynamo=False)
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    kinds = {
        op.get_rt_info()["primitiveType"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()
    }
    return ", ".join(sorted(k for k in kinds if "conv" in k)) or "unknown"


def child(scene: Path, out: Path, **kwargs: Any) -> dict[str, Any]:
    """Run :func:`run_child` in a fresh interpreter and return its figures."""
    cmd = [sys.executable, __file__, "_child", "--scene", str(scene), "--out", str(out)]
    for key, value in kwargs.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(figures), flush=True)
    return figures


def machine() -> str:
    """CPU model, core count and GPU (if any)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        if "avx512_bf16" in Path("/proc/cpuinfo").read_text():
            cpu += " (AVX512-BF16)"
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def environment() -> dict[str, str]:
    """Machine, CPU flags, memory, load and library versions, for the report."""
    import importlib.metadata as md
    import re

    import torch

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
    versions = []
    for name in ("torch", "onnxruntime", "openvino", "numpy", "rasterio"):
        try:
            versions.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    onednn = re.findall(r"MKL-DNN v[\d.]+", torch.__config__.parallel_info())
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "machine": machine(),
        "flags": " ".join(f for f in wanted if f in flags) or "none of " + ", ".join(wanted),
        "memory": f"{mem_gb:.0f} GiB RAM",
        "versions": ", ".join(versions) + (f", oneDNN {onednn[0].split(' v')[1]}" if onednn else ""),
        "threads": f"torch {torch.get_num_threads()} intra-op threads; onnxruntime / openvino the same number",
        "python": platform.python_version(),
    }


def parse_config(text: str) -> dict[str, Any]:
    """``torch-b1-cl`` -> ``{"backend": "torch", "batch_size": 1, "channels_last": "yes", "fold": "yes", ...}``.

    A ``-nofold`` suffix maps with the network as it is instead of the inference copy with batch norm folded
    (:func:`glaciermap.models.folding.fold_for_inference`): the mapping path before that copy existed. A
    ``-bf16`` suffix maps in bf16 (PyTorch: autocast; OpenVINO: its bf16 inference precision), else float32.
    A ``-sysheap`` suffix maps with ``GLACIERMAP_CPU_HEAP=system``: glibc's allocator as it is, without the
    retained heap of :mod:`glaciermap.inference.heap` (the mapping path before it existed). ``-direct`` and
    ``-wino`` map with option ``convolution`` ``"direct"`` (the mapping path before Winograd convolutions) and
    ``"winograd"`` (:mod:`glaciermap.models.winograd`); without either, ``"auto"``, the default.
    """
    parts = text.split("-")
    return {
        "backend": parts[0],
        "batch_size": int(parts[1].lstrip("b")),
        "channels_last": "yes" if "cl" in parts[2:] else "no",
        "fold": "no" if "nofold" in parts[2:] else "yes",
        "precision": "bf16" if "bf16" in parts[2:] else "32",
        "heap": "system" if "sysheap" in parts[2:] else "retain",
        "convolution": "winograd" if "wino" in parts[2:] else "direct" if "direct" in parts[2:] else "auto",
    }


def run_backend_plan(args: argparse.Namespace, scene: Path) -> list[dict[str, Any]]:
    """The anchor and low-overlap configurations, interleaved: every repetition runs each once, in turn.

    Anchor: 50 % overlap, Gaussian blending (the authors' windows and blending, 25 windows on 1152 x 1152 px);
    then the pipeline without a network; then, with cosine blending, one of ``--low-overlaps`` per repetition
    (taken in turn: at 1152 px, 1/4 and 1/8 overlap give the same 4 x 4 grid). Crop-the-centre blending has
    the same windows, so the same cost.
    """
    runs = []
    for rep in range(args.repeats):
        for config in args.anchor_configs:
            runs.append({**parse_config(config), "overlap": 0.5, "window": "gaussian", "rep": rep})
        runs.append(
            {"model": "band-ratio", "overlap": 0.5, "window": "gaussian", "rep": rep, "backend": "torch"}
        )
        if args.low_overlaps:
            overlap = args.low_overlaps[rep % len(args.low_overlaps)]
            for config in args.low_overlap_configs:
                runs.append({**parse_config(config), "overlap": overlap, "window": "cosine", "rep": rep})
    return _run_all(runs, scene, args.work_dir, "backends.json")


def _run_all(runs: list[dict[str, Any]], scene: Path, work_dir: Path, saved: str) -> list[dict[str, Any]]:
    """Run each configuration (with its repetition ``rep``) in a fresh process, skipping runtimes that are not
    installed, and save the figures so far into ``work_dir / saved`` after each run."""
    import importlib.util

    results = []
    for run in runs:
        package = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(run["backend"])
        if package and importlib.util.find_spec(package) is None:
            continue
        rep = run.pop("rep")
        kwargs = {"model": "glavitu", "precision": "32", "channels_last": "no", **run}
        figures = child(scene, work_dir / "out", window_size=384, device="cpu", **kwargs)
        results.append({**figures, "rep": rep})
        (work_dir / saved).write_text(json.dumps(results))
    return results


LARGE_SETTINGS = ((0.5, "gaussian"), (0.125, "cosine"))
"""The large-scene plan: the authors' windows and blending, then this release's mapping default."""


def run_large_plan(args: argparse.Namespace, scene: Path) -> list[dict[str, Any]]:
    """``--large-configs`` on a ``--large-size`` scene at :data:`LARGE_SETTINGS`, interleaved ``--repeats`` times.

    On a large scene the share of windows that 1/2 overlap adds approaches 4x (against 25 / 9 = 2.8x on the
    1152 px anchor), so this is where the default overlap's saving shows.
    """
    runs = [
        {**parse_config(config), "overlap": overlap, "window": window, "rep": rep}
        for rep in range(args.repeats)
        for config in args.large_configs
        for overlap, window in LARGE_SETTINGS
    ]
    return _run_all(runs, scene, args.work_dir, "backends_large.json")


def run_memory_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Peak RSS of GlaViTU mapping (torch, channels-last, fp32) at batch 1 and 8, no overlap, HxW scenes."""
    results = []
    for size in args.glavitu_memory_sizes:
        h, w = (int(v) for v in size.split("x"))
        folder = write_scene(args.work_dir / f"scene_{h}x{w}", h, w)
        for batch in (1, 8):
            figures = child(
                folder,
                args.work_dir / "out",
                model="glavitu",
                overlap=0.0,
                batch_size=batch,
                device="cpu",
                precision="32",
                channels_last="yes",
            )
            results.append(figures)
            (args.work_dir / "memory_glavitu_last.json").write_text(json.dumps(results))
    return results


AUTHORS_BEST_KM2_S = (1.54, 1.68)
"""The authors' TensorFlow code at the anchor configuration, fastest call (issue 20; another, 2-core AVX2 runner)."""


def _median(values: list[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def _label(r: dict[str, Any]) -> str:
    if r["model"] == "band-ratio":
        return "no network (band-ratio rule): reading, blending, writing"
    cl = " channels-last" if r.get("channels_last") and r["backend"] == "torch" else ""
    unfolded = " unfolded" if r.get("fold") == "no" else ""
    bf16 = " bf16" if r.get("precision") == "bf16" else ""
    heap = " system heap" if r.get("heap") == "system" else ""
    wino = " Winograd" if r.get("convolution") == "winograd" else ""
    return f"{r['backend']} batch {r['batch_size']}{cl}{wino}{unfolded}{bf16}{heap}"


def _baseline(runs: list[dict[str, Any]]) -> str:
    """The label ratios are taken to: torch batch 1 channels-last unfolded with the system heap where measured
    (the mapping path that issue 20 measured at parity with the authors' best), else the first of torch batch 1
    channels-last unfolded and torch batch 1 channels-last that was measured."""
    labels = {_label(r) for r in runs}
    for label in ("torch batch 1 channels-last unfolded system heap", "torch batch 1 channels-last unfolded"):
        if label in labels:
            return label
    return "torch batch 1 channels-last"


def isa_title(isa: str) -> str:
    """What a section title adds for ``--isa``: nothing for the native instruction sets."""
    return "" if isa == "native" else f", {isa.upper()} emulated"


def _isa_line(runs: list[dict[str, Any]], isa: str) -> list[str]:
    """The instruction sets the runs reported, under ``--isa`` (older saved runs carry none)."""
    if isa == "native":
        return []
    seen = sorted({r["isa"] for r in runs if r.get("isa")})
    capped = ", ".join(f"{k}={v}" for k, v in EMULATED_ISAS[isa].items())
    return [
        f"Emulated runner without AVX-512: every run's process had {capped}; the runtimes reported "
        + ("; ".join(seen) if seen else "nothing")
        + ". ONNX Runtime cannot be capped and is left out.",
        "",
    ]


def backends_markdown(
    runs: list[dict[str, Any]], env: dict[str, str], date: str, command: str, isa: str = "native"
) -> str:
    """The ``## CPU backends`` section: medians over interleaved repetitions and ratios to torch batch 1."""
    base_label = _baseline(runs)
    lines = [
        "## CPU backends" + isa_title(isa),
        "",
        f"`{command}` on {date}. Machine: {env['machine']}; {env['memory']}; CPU flags: {env['flags']}; "
        f"Python {env['python']}; {env['versions']}; {env['threads']}.",
        "",
        *_isa_line(runs, isa),
        "GlaViTU full size (10.0 M parameters, random weights: speed does not depend on them), fp32, 384 px "
        "windows, Optical+DEM, on a 1152 x 1152 px scene at 10 m (132.7 km2). Each configuration runs in a fresh "
        "process; every repetition runs all configurations once, in turn (interleaved), so slow phases of the "
        "shared machine hit all of them. km2/s = scene area / wall time of `map_scene` (reading, normalisation, "
        "prediction, blending, COG writing, quick-look, summary), including the one-off ONNX export and "
        'compilation of the non-torch backends ("setup"); "steady" leaves the setup out (what a large '
        "scene approaches). Medians over the repetitions; the ratio is the median of the per-repetition "
        f"ratios to {base_label} at the same overlap of the same repetition. 'unfolded': the network as "
        "it is, without the inference copy with batch norm folded (the mapping path before it existed); "
        "'system heap': glibc's allocator as it is (`GLACIERMAP_CPU_HEAP=system`), without the heap that keeps "
        "freed activations for the next window (`glaciermap.inference.heap`). Page faults: minor faults of the "
        "process during `map_scene`, per window.",
        "",
        "| configuration | overlap, blending | windows | runs | wall s (median) | setup s | km2/s | steady km2/s "
        "| ratio to torch b1 | peak RSS MB | page faults per window | load avg (1 min) before runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {(r["rep"], r["overlap"]): r for r in runs if _label(r) == base_label}
    lines += _rows(runs, lambda r: base.get((r["rep"], r["overlap"])))
    return "\n".join(lines)


def _rows(
    runs: list[dict[str, Any]], baseline: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> list[str]:
    """One table row per (configuration, overlap, blending): medians over the repetitions, and the median ratio
    of km2/s to ``baseline(run)`` (the run of the same repetition to compare with; ``None``: no ratio)."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((_label(r), r["overlap"], r["window"]), []).append(r)
    lines = []
    for (label, overlap, window), rs in groups.items():
        ratios = [r["km2_per_s"] / b["km2_per_s"] for r in rs if (b := baseline(r)) is not None]
        ratio = f"{_median(ratios):.2f}" if ratios else "-"
        loads = ", ".join(f"{r['load_before']:.1f}" for r in rs)
        faults = [r["page_faults_per_window"] for r in rs if "page_faults_per_window" in r]
        fault_cell = f"{_median(faults):,.0f}" if faults else "-"
        lines.append(
            f"| {label} | {overlap:g}, {window} | {rs[0]['windows']} | {len(rs)} | "
            f"{_median([r['seconds'] for r in rs]):.1f} | {_median([r['setup_seconds'] for r in rs]):.1f} | "
            f"{_median([r['km2_per_s'] for r in rs]):.2f} | {_median([r['km2_per_s_steady'] for r in rs]):.2f} | "
            f"{ratio} | {_median([r['peak_rss_mb'] for r in rs]):.0f} | {fault_cell} | {loads} |"
        )
    return [*lines, ""]


def large_markdown(runs: list[dict[str, Any]], date: str, command: str, isa: str = "native") -> str:
    """The ``## CPU backends: large scene`` section: ratios to torch batch 1 at the authors' windows."""
    r0 = runs[0]
    km2 = r0["km2"]
    base_label = _baseline(runs)
    lines = [
        "## CPU backends: large scene" + isa_title(isa),
        "",
        *_isa_line(runs, isa),
        f'`{command}` on {date}, same machine and versions as "CPU backends{isa_title(isa)}". GlaViTU full size, fp32, 384 px '
        f"windows, on a {r0['height']} x {r0['width']} px scene at 10 m ({km2:g} km2), each configuration in a "
        "fresh process, all configurations once per repetition, in turn. The ratio is the median over the "
        f"repetitions of km2/s over that of {base_label} at 50 % overlap with Gaussian blending "
        "(the authors' windows and blending) in the same repetition.",
        "",
        "| configuration | overlap, blending | windows | runs | wall s (median) | setup s | km2/s | steady km2/s "
        "| ratio to torch b1 at 0.5, gaussian | peak RSS MB | page faults per window "
        "| load avg (1 min) before runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {
        r["rep"]: r
        for r in runs
        if _label(r) == base_label and r["overlap"] == 0.5 and r["window"] == "gaussian"
    }
    lines += _rows(runs, lambda r: base.get(r["rep"]))
    return "\n".join(lines)


def memory_markdown(runs: list[dict[str, Any]], date: str, command: str) -> str:
    """The ``## Memory`` section: peak RSS of GlaViTU mapping at batch 1 and 8 against scene height and width."""
    lines = [
        "## Memory",
        "",
        f"`{command}` on {date}. Peak resident memory (`ru_maxrss`) of a fresh process that imports glaciermap "
        "and torch, builds GlaViTU full size and maps one scene with `map_scene` (torch, fp32, channels-last, "
        "384 px windows, no overlap: memory depends on the window size, the batch and the scene width, not on "
        "the overlap).",
        "",
        "| scene (px, H x W) | batch | windows | wall s | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['height']} x {r['width']} | {r['batch_size']} | {r['windows']} | {r['seconds']} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    lines.append("")
    return "\n".join(lines)


def estimate_20k(per_window_s: float, overlap: float) -> tuple[int, float]:
    """Windows and hours for a 20,000 x 20,000 scene at 384 px windows (compact grid)."""
    from glaciermap.inference.windows import window_grid

    grid = window_grid(20_000, 20_000, 384, overlap)
    return grid.count, grid.count * per_window_s / 3600


WORLD_KM2 = 1_500_000
"""The world's glacier area with margins (issue 20), km2."""
WORLD_GOAL_S = 600
"""Issue 20's goal for it: 10 minutes on one H100-class GPU (2,500 km2/s)."""


def world_projection(km2_per_s: float) -> tuple[float, float]:
    """Hours to map :data:`WORLD_KM2` at ``km2_per_s``, and how many such devices would take 10 minutes."""
    seconds = WORLD_KM2 / km2_per_s
    return seconds / 3600, seconds / WORLD_GOAL_S


def _load_during(runs: list[dict[str, Any]]) -> str:
    """The range of the 1-minute load average recorded after each run (the benchmark's own threads count)."""
    after = [r["load_after"] for r in runs if "load_after" in r]
    if not after:
        return "load during the runs not recorded"
    return f"after each run {min(after):.1f} to {max(after):.1f} (the benchmark's own two threads included)"


def results_markdown(
    glavitu: list[dict[str, Any]], memory: list[dict[str, Any]], date: str, load: str
) -> str:
    """The ``## Scene mapping`` section of RESULTS.md."""
    lines = [
        "## Scene mapping",
        "",
        f"`python benchmarks/map_benchmark.py --write-results` on {date}; machine: {machine()}. "
        f"Load average before the run: {load}; {_load_during(glavitu + memory)}. One run per row: this "
        "machine's speed drifts between runs, so compare rows of one run only. On the CPU every run maps inside "
        "the retained heap (the default, `glaciermap.inference.heap`), whose fragmentation is part of the peak RSS "
        '(measured against glibc\'s allocator in "Memory: the retained heap over a tall scene").',
        "",
        "GlaViTU, full size (10.0 M parameters, 384 x 384 windows, Optical+DEM, batch 8), 10 m pixels, "
        "`map_scene` wall time including reading, blending, COG writing, quick-look and summary:",
        "",
        "| device | precision | scene (px) | overlap | windows | s | s/window | km2/s | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in glavitu:
        lines.append(
            f"| {r['device']} | {r['precision']}{' cl' if r['channels_last'] else ''} | {r['height']} x {r['width']} | "
            f"{r['overlap']} | {r['windows']} | {r['seconds']} | {r['seconds_per_window']} | {r['km2_per_s']} | "
            f"{r['peak_rss_mb']} |"
        )
    lines += [
        "",
        f"A 20,000 x 20,000 scene ({BIG_SCENE_KM2:,.0f} km2 at {PIXEL_M:g} m) at these per-window costs "
        "(estimate, compact grid):",
        "",
    ]
    for r in glavitu:
        n, hours = estimate_20k(r["seconds_per_window"], r["overlap"])
        variant = f"{r['device']} {r['precision']}{' channels-last' if r['channels_last'] else ''}"
        rate = BIG_SCENE_KM2 / (hours * 3600)
        world_h, devices = world_projection(rate)
        lines.append(
            f"- {variant}, overlap {r['overlap']}: {n} windows, about {hours:.1f} h ({rate:.3f} km2/s); the "
            f"world's glacier area ({WORLD_KM2 / 1e6:.1f} M km2 with margins) about {world_h:,.0f} h, or "
            f"{devices:,.0f} such devices for the 10 minutes of issue 20's goal"
        )
    if not any(r["device"] == "cuda" for r in glavitu):
        lines += [
            "",
            "No GPU on this machine: the CUDA path (bf16 autocast, channels-last, input ring buffer and accumulator "
            "on the device) is in place but not measured here; its numerics are tested on the CPU (bf16 autocast "
            "against float32, channels-last against contiguous).",
        ]
    lines += [
        "",
        "Streaming memory: the band-ratio model (no network: reading, blending and COG writing only), "
        "512 x 512 windows, 50 % overlap. Peak RSS grows with the width (the ring buffers hold one row of "
        "windows) and stays flat with the height. About 0.76 GB of it is the Python process with torch "
        "imported, before any scene is read:",
        "",
        "| scene (px) | km2 | windows | s | km2/s | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in memory:
        lines.append(
            f"| {r['height']} x {r['width']} | {r['km2']} | {r['windows']} | {r['seconds']} | {r['km2_per_s']} | "
            f"{r['peak_rss_mb']} |"
        )
    lines.append("")
    return "\n".join(lines)


def write_results(section: str, path: Path) -> None:
    """Replace (or append) the section of RESULTS.md with the same ``## `` title as ``section``."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    start = text.find(section.splitlines()[0] + "\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section.rstrip() + "\n" + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def main() -> None:
    """Parse arguments and run the benchmark (or, with ``_child``, one measurement)."""
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        p = argparse.ArgumentParser()
        p.add_argument("_child")
        p.add_argument("--scene", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--model", default="glavitu")
        p.add_argument("--overlap", type=float, default=0.5)
        p.add_argument("--window-size", type=int, default=384)
        p.add_argument("--batch-size", type=int, default=8)
        p.add_argument("--device", default="cpu")
        p.add_argument("--channels-last", default="auto")
        p.add_argument("--fold", choices=("yes", "no"), default="yes")
        p.add_argument("--precision", default="auto")
        p.add_argument("--backend", default="torch")
        p.add_argument("--window", default="gaussian")
        p.add_argument("--heap", choices=("retain", "system"), default="retain")
        p.add_argument("--row-memory", choices=("yes", "no"), default="no")
        p.add_argument("--convolution", choices=("auto", "direct", "winograd"), default="auto")
        run_child(p.parse_args())
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--work-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "glaciermap-map-bench"
    )
    p.add_argument("--glavitu-size", type=int, default=1152, help="side of the GlaViTU scene (pixels)")
    p.add_argument("--overlaps", type=float, nargs="+", default=[0.5, 0.0])
    p.add_argument(
        "--cpu-configs",
        nargs="+",
        default=["32", "32-cl", "bf16-cl"],
        help="CPU variants: precision 32 or bf16, '-cl' for channels-last (the default path is '32')",
    )
    p.add_argument(
        "--memory-sizes",
        nargs="*",
        default=["2048x2048", "8192x2048", "2048x8192", "8192x8192"],
        help="HxW scenes of the memory measurement",
    )
    p.add_argument(
        "--reuse-glavitu",
        action="store_true",
        help="take the GlaViTU figures from the last run (work-dir/results.json) and measure memory only",
    )
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--date", default=time.strftime("%Y-%m-%d"))
    p.add_argument(
        "--backends",
        action="store_true",
        help="instead: the CPU backends (torch, onnxruntime, openvino) at the anchor configuration and at "
        "--low-overlaps, interleaved --repeats times, then GlaViTU peak memory (--glavitu-memory-sizes)",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--low-overlaps", type=float, nargs="*", default=[0.25, 0.125])
    p.add_argument(
        "--anchor-configs",
        nargs="+",
        default=[
            "torch-b1-cl",
            "torch-b8-cl",
            "onnxruntime-b1",
            "onnxruntime-b8",
            "openvino-b1",
            "openvino-b8",
        ],
        help="BACKEND-bN[-cl] configurations at the anchor (50 %% overlap, Gaussian)",
    )
    p.add_argument(
        "--low-overlap-configs", nargs="+", default=["torch-b1-cl", "onnxruntime-b1", "openvino-b1"]
    )
    p.add_argument("--glavitu-memory-sizes", nargs="*", default=["384x1152", "768x1152", "384x2304"])
    p.add_argument(
        "--large-size",
        type=int,
        default=0,
        help="with --backends: also a SIZE x SIZE scene with --large-configs at 0.5 Gaussian and 1/8 cosine",
    )
    p.add_argument("--large-configs", nargs="+", default=["torch-b1-cl", "torch-b8-cl", "openvino-b1"])
    p.add_argument(
        "--no-anchor",
        action="store_true",
        help="with --backends: skip the anchor plan (reuse its saved runs)",
    )
    p.add_argument(
        "--reuse", action="store_true", help="with --backends: rewrite the sections from saved runs"
    )
    p.add_argument(
        "--isa",
        choices=("native", *EMULATED_ISAS),
        default="native",
        help="with --backends: cap the instruction sets of the runs (avx2: a runner without AVX-512)",
    )
    p.add_argument(
        "--memory-only",
        action="store_true",
        help="with --backends: run only the memory plan and add it to the saved one (speed runs reused)",
    )
    args = p.parse_args()
    if args.isa != "native":
        if not args.backends:
            p.error("--isa needs --backends")
        emulate_isa(args)
    if args.backends:
        backends_main(args)
        return
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    s = args.glavitu_size
    scene = write_scene(args.work_dir / f"scene_{s}x{s}", s, s)
    runs = [("cpu", c.split("-")[0], "yes" if c.endswith("-cl") else "no") for c in args.cpu_configs]
    if "cuda" in devices:
        runs.append(("cuda", "auto", "yes"))  # bf16 autocast and channels-last, the GPU defaults
    glavitu = []
    saved = args.work_dir / "results.json"
    if args.reuse_glavitu:
        previous = json.loads(saved.read_text())
        glavitu, load = previous["glavitu"], previous["load"]
        runs = []
    for device, precision, channels_last in runs:
        for overlap in args.overlaps:
            glavitu.append(
                child(
                    scene,
                    args.work_dir / "out",
                    model="glavitu",
                    overlap=overlap,
                    device=device,
                    precision=precision,
                    channels_last=channels_last,
                )
            )
    memory = []
    for size in args.memory_sizes:
        h, w = (int(v) for v in size.split("x"))
        folder = write_scene(args.work_dir / f"scene_{h}x{w}", h, w)
        memory.append(child(folder, args.work_dir / "out", model="band-ratio", window_size=512, device="cpu"))
    saved.write_text(json.dumps({"glavitu": glavitu, "memory": memory, "load": load}))
    section = results_markdown(glavitu, memory, args.date, load)
    print(section)
    if args.write_results:
        write_results(section, Path(__file__).with_name("RESULTS.md"))


def emulate_isa(args: argparse.Namespace) -> None:
    """``--isa``: cap the instruction sets of the child processes (they inherit this environment), keep their
    runs apart from the native ones and leave out ONNX Runtime, which cannot be capped."""
    os.environ.update(EMULATED_ISAS[args.isa])
    args.work_dir = args.work_dir / f"isa-{args.isa}"
    args.work_dir.mkdir(parents=True, exist_ok=True)
    for name in ("anchor_configs", "low_overlap_configs", "large_configs"):
        setattr(args, name, [c for c in getattr(args, name) if not c.startswith("onnxruntime")])
    args.glavitu_memory_sizes = []  # memory does not depend on the instruction set


def backends_main(args: argparse.Namespace) -> None:
    """``--backends``: run (or, with ``--reuse``, reload) the backend and memory plans and report them."""
    env = environment()
    print(json.dumps({**env, "load": os.getloadavg()}), flush=True)
    command = "python benchmarks/map_benchmark.py " + " ".join(
        a for a in sys.argv[1:] if a not in ("--reuse", "--write-results")
    )
    saved = args.work_dir / "memory_glavitu.json"
    saved_large = args.work_dir / "backends_large.json"
    large: list[dict[str, Any]] = json.loads(saved_large.read_text()) if saved_large.is_file() else []
    if args.reuse:
        runs = json.loads((args.work_dir / "backends.json").read_text())
        memory = json.loads(saved.read_text())
    elif args.memory_only:
        runs = json.loads((args.work_dir / "backends.json").read_text())
        before = json.loads(saved.read_text()) if saved.is_file() else []
        memory = before + run_memory_plan(args)
        saved.write_text(json.dumps(memory))
    else:
        s = args.glavitu_size
        if args.no_anchor:
            runs = json.loads((args.work_dir / "backends.json").read_text())
        else:
            runs = run_backend_plan(args, write_scene(args.work_dir / f"scene_{s}x{s}", s, s))
        if args.large_size:
            n = args.large_size
            large = run_large_plan(args, write_scene(args.work_dir / f"scene_{n}x{n}", n, n))
        if args.glavitu_memory_sizes:  # none given: keep the saved memory plan
            saved.write_text(json.dumps(run_memory_plan(args)))
        memory = json.loads(saved.read_text()) if saved.is_file() else []
    sections = [backends_markdown(runs, env, args.date, command, args.isa)]
    sections += [large_markdown(large, args.date, command, args.isa)] if large else []
    sections += [memory_markdown(memory, args.date, command)] if args.glavitu_memory_sizes and memory else []
    for section in sections:
        print(section)
        if args.write_results:
            write_results(section, Path(__file__).with_name("RESULTS.md"))


if __name__ == "__main__":
    main()
