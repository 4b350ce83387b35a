"""Overlap and blending: what less overlap costs in accuracy and seams, and what it saves (issue 20).

Maps held-out synthetic scenes with the bundled ``synthetic_cpu`` model (trained on karakoram seeds 1-3,
svalbard 4 and alaska 5, validated on karakoram 101, tested on karakoram 201; the scenes here use other seeds,
and the alps preset was never seen in training) for every overlap in (0, 1/8, 1/4, 1/2) and blending window in
(gaussian, cosine, crop), at two window sizes: 384 px (the default window of a model without ``img_size``) and
128 px (the model's training patch size, with 9 x the window borders per km2). For each setting it reports:

* glacier IoU (clean + debris-covered ice against background) and debris-covered-ice IoU over every pixel;
* PoLiS (GlaViTU paper Eq. 11, :func:`glaciermap.metrics.polis`) between the glacier outline of the map
  and that of the scene's exact labels (all glaciers of the scene as one multipolygon, 10 m sampling);
* the seam score (:func:`glaciermap.metrics.seam_score`) of the class probabilities: the mean total-variation
  jump between neighbouring pixels across the lines where a window's weight starts or stops, over the mean
  jump elsewhere (1: no seam);
* windows computed, window evaluations per scene pixel, seconds (reading, prediction and blending; no
  writing) and km2/s, torch backend, float32, channels-last, batch 8, on the CPU.

Noise: every setting is also compared with the 50 % Gaussian (the GlaViTU authors' setting) scene by scene;
the table gives the mean difference over the scenes and its standard error. A second 50 % Gaussian run with
the ``reference`` grid layout (the same method, the windows shifted) shows how much the metrics move when
only the placement of the windows changes.

``--checkpoint CKPT`` maps with another trained model (a ``.ckpt`` or weights file) instead of the bundled one,
e.g. the small GlaViTU of ``examples/glavitu_small_calibrated.yaml`` (binary: its debris IoU is reported as n/a);
``--title`` names its section of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/overlap_study.py --write-results      # about 30 min on 2 busy CPU cores
    python benchmarks/overlap_study.py --scenes karakoram:401 --size 512 --window-sizes 128   # quick look
    python benchmarks/overlap_study.py --checkpoint last.ckpt --window-sizes 128 \
        --title "## Overlap and blending: small GlaViTU" --json benchmarks/overlap_study_glavitu_small.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OVERLAPS = (0.0, 0.125, 0.25, 0.5)
BLENDS = ("gaussian", "cosine", "crop")
DEFAULT_SCENES = ("karakoram:401", "svalbard:402", "alaska:403", "alps:404")
REFERENCE = (0.5, "gaussian", "compact")
"""The GlaViTU authors' setting: every other setting is compared with it."""
SHIFTED = (0.5, "gaussian", "reference")
"""The same method with the windows placed differently: the noise of window placement."""


@dataclass(frozen=True)
class Setting:
    """One way of mapping: window size, overlap, blending window and grid layout."""

    size: int
    overlap: float
    blend: str
    layout: str = "compact"

    @property
    def key(self) -> tuple[float, str, str]:
        return (self.overlap, self.blend, self.layout)


def machine() -> str:
    """CPU model, flags of note, core count, load and library versions."""
    import torch

    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(
            line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")
        )
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in info)
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{cpu} ({flags or 'no AVX2/AVX-512 flags'}), {os.cpu_count()} cores, load average {load}; "
        f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"numpy {np.__version__}"
    )


def make_scenes(work: Path, specs: list[str], size: int) -> list[Path]:
    """Generate (once) the held-out synthetic scenes ``preset:seed`` of ``size x size`` px at 10 m."""
    from glaciermap.synthetic.generate import generate_scene

    folders = []
    for spec in specs:
        preset, seed = spec.split(":")
        folder = work / f"{preset}_{seed}_{size}"
        if not (folder / "scene.json").is_file():
            generate_scene(folder, preset=preset, size=(size, size), seed=int(seed))
        folders.append(folder)
    return folders


def map_probabilities(
    mapping: Any,
    scene: Path,
    setting: Setting,
    precision: str = "32",
    batch_size: int = 8,
    convolution: str = "auto",
) -> dict[str, Any]:
    """Stream a scene through the model; the blended probabilities, the grid, the timing and the summary
    items of the stream (``float32_layers`` under CPU bf16)."""
    from glaciermap.inference import MapOptions, ScenePredictor

    options = MapOptions(
        window_size=setting.size,
        overlap=setting.overlap,
        window=setting.blend,  # type: ignore[arg-type]
        layout=setting.layout,  # type: ignore[arg-type]
        device="cpu",
        precision=precision,  # type: ignore[arg-type]
        batch_size=batch_size,
        convolution=convolution,  # type: ignore[arg-type]
    )
    predictor = ScenePredictor(mapping, options)
    start = time.perf_counter()
    stream = predictor.stream(scene)
    h, w = stream.scene.height, stream.scene.width
    probs = np.zeros((mapping.num_classes, h, w), dtype=np.float32)
    invalid = np.zeros((h, w), dtype=bool)
    for strip in stream:
        rows = slice(strip.row, strip.row + strip.invalid.shape[0])
        probs[:, rows], invalid[rows] = strip.probabilities, strip.invalid
    seconds = time.perf_counter() - start
    stream.close()
    return {
        "probs": probs,
        "invalid": invalid,
        "grid": stream.grid,
        "seconds": seconds,
        "stats": stream.stats,
        "extra": dict(stream.extra_summary),
        "convolution": stream.convolution,
    }


def glacier_outline(mask: np.ndarray, transform: Any) -> Any:
    """All glaciers of a boolean mask as one (multi)polygon in the scene's CRS (m)."""
    import rasterio.features
    import shapely
    from shapely.geometry import shape

    polygons = [
        shape(g)
        for g, v in rasterio.features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)
        if v
    ]
    return shapely.union_all(polygons)


def score(mapped: dict[str, Any], labels: np.ndarray, transform: Any, ref_outline: Any) -> dict[str, float]:
    """IoU (glacier, debris), PoLiS of the glacier outline and the seam score of one map."""
    from glaciermap.metrics import polis, seam_score

    probs, invalid, grid = mapped["probs"], mapped["invalid"], mapped["grid"]
    valid = ~invalid & (labels != 255)
    pred = probs.argmax(0)

    def iou(p: np.ndarray, r: np.ndarray) -> float:
        return float((p & r & valid).sum() / max(1, ((p | r) & valid).sum()))

    binary = probs.shape[0] < 3  # glacier / background: no debris class to score

    seam = seam_score(probs, grid.rows.borders(grid.kind), grid.cols.borders(grid.kind), valid)
    pred_outline = glacier_outline((pred > 0) & valid, transform)
    area_km2 = float(valid.sum()) * abs(transform.a * transform.e) / 1e6
    return {
        "glacier_iou": iou(pred > 0, labels > 0),
        "debris_iou": math.nan if binary else iou(pred == 2, labels == 2),
        "polis_m": polis(pred_outline, ref_outline).value,
        "seam_ratio": seam.ratio,
        "seam_excess": seam.excess,
        "windows": float(mapped["stats"]["windows"]),
        "evaluations_per_pixel": grid.evaluations_per_pixel(),
        "seconds": mapped["seconds"],
        "km2_per_s": area_km2 / mapped["seconds"],
    }


def settings(size: int) -> list[Setting]:
    """Every overlap x blending window at one window size, then the shifted 50 % Gaussian.

    At overlap 0 every pixel lies in one window, so the three windows give the same map (the weight cancels
    out of ``w p / w``); it is mapped once, as ``crop``, and reported as plain tiling.
    """
    found = [Setting(size, o, b) for o in OVERLAPS for b in (BLENDS if o > 0 else ("crop",))]
    return [*found, Setting(size, *SHIFTED)]


def load_model(checkpoint: Path | None) -> tuple[Any, str]:
    """The model to map with (default: the bundled ``synthetic_cpu``) and a line describing it."""
    from glaciermap.inference import load_pretrained
    from glaciermap.models.weights import get_weight

    mapping = load_pretrained(checkpoint if checkpoint is not None else get_weight("synthetic_cpu").path())
    params = sum(p.numel() for p in mapping.model.parameters())
    name = f"`{checkpoint}`" if checkpoint is not None else "bundled `synthetic_cpu`"
    about = (
        f"{name} ({type(mapping.model).__name__}, {params:,} parameters, classes "
        f"{', '.join(mapping.class_names)}, bands {', '.join(b for v in mapping.bands.values() for b in v)})"
    )
    return mapping, about


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    """Map every scene with every setting; one record per (scene, setting), and the model's description."""
    import rasterio
    import torch

    torch.manual_seed(0)
    mapping, model = load_model(args.checkpoint)
    scenes = make_scenes(args.work_dir, args.scenes, args.size)
    warm = Setting(min(args.window_sizes), 0.0, "crop")
    map_probabilities(
        mapping, scenes[0], warm
    )  # first-call costs (allocator, oneDNN kernels) out of the timing
    records = []
    for scene in scenes:
        with rasterio.open(scene / "labels.tif") as src:
            labels, transform = src.read(1), src.transform
        ref_outline = glacier_outline((labels > 0) & (labels != 255), transform)
        for size in args.window_sizes:
            for setting in settings(size):
                result = score(map_probabilities(mapping, scene, setting), labels, transform, ref_outline)
                record = {"scene": scene.name, **setting.__dict__, **result}
                records.append(record)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}))
                sys.stdout.flush()
    return records, model


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting: means over scenes and differences from the 50 % Gaussian (mean, standard error)."""
    rows = []
    keys = sorted({(r["size"], r["overlap"], r["blend"], r["layout"]) for r in records}, key=_order)
    for size, overlap, blend, layout in keys:
        mine = {
            r["scene"]: r
            for r in records
            if (r["size"], r["overlap"], r["blend"], r["layout"]) == (size, overlap, blend, layout)
        }
        ref = {
            r["scene"]: r
            for r in records
            if (r["size"], r["overlap"], r["blend"], r["layout"]) == (size, *REFERENCE)
        }
        scenes = sorted(mine)
        row: dict[str, Any] = {
            "size": size,
            "overlap": overlap,
            "blend": blend,
            "layout": layout,
            "scenes": len(scenes),
        }
        for name in (
            "glacier_iou",
            "debris_iou",
            "polis_m",
            "seam_ratio",
            "windows",
            "evaluations_per_pixel",
            "seconds",
        ):
            row[name] = float(np.mean([mine[s][name] for s in scenes]))  # NaN: not scored (binary model)
            diffs = np.array([mine[s][name] - ref[s][name] for s in scenes if s in ref])
            row[f"d_{name}"] = float(diffs.mean()) if len(diffs) else math.nan
            row[f"se_{name}"] = (
                float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else math.nan
            )
        area = sum(mine[s]["km2_per_s"] * mine[s]["seconds"] for s in scenes)
        row["km2_per_s"] = area / sum(mine[s]["seconds"] for s in scenes)
        ref_seconds = sum(ref[s]["seconds"] for s in scenes if s in ref)
        row["speed_vs_reference"] = ref_seconds / sum(mine[s]["seconds"] for s in scenes if s in ref)
        rows.append(row)
    return rows


def _order(key: tuple[int, float, str, str]) -> tuple[int, int, float, int]:
    size, overlap, blend, layout = key
    return (-size, layout != "compact", overlap, BLENDS.index(blend))


def evaluations_factor(overlap: float) -> float:
    """Window evaluations per pixel of a large scene: ``(1 / (1 - overlap))^2``."""
    return float((1.0 / (1.0 - overlap)) ** 2)


def acceptable(row: dict[str, Any], rows: list[dict[str, Any]], seam_tolerance: float) -> bool:
    """Equal to the 50 % Gaussian within noise and no worse seams (the rule the default is chosen by).

    A metric is within noise when it is not worse than the 50 % Gaussian by more than the larger of twice the
    standard error of the scene-by-scene difference and the difference the shifted grid alone makes. The seam
    ratio may exceed the 50 % Gaussian's by at most ``seam_tolerance``.
    """
    same = [r for r in rows if r["size"] == row["size"]]
    ref = next(r for r in same if (r["overlap"], r["blend"], r["layout"]) == REFERENCE)
    shifted = next((r for r in same if (r["overlap"], r["blend"], r["layout"]) == SHIFTED), None)
    for name, sign in (("glacier_iou", 1.0), ("debris_iou", 1.0), ("polis_m", -1.0)):
        se = row[f"se_{name}"]
        if math.isnan(row[f"d_{name}"]):
            continue  # not scored (a binary model has no debris class)
        tol = max(2 * (0.0 if math.isnan(se) else se), abs(shifted[f"d_{name}"]) if shifted else 0.0)
        if sign * row[f"d_{name}"] < -tol:
            return False
    return bool(row["seam_ratio"] <= ref["seam_ratio"] + seam_tolerance)


def choose(rows: list[dict[str, Any]], size: int, seam_tolerance: float) -> dict[str, Any]:
    """The cheapest acceptable compact setting at one window size (ties: the smaller seam ratio)."""
    candidates = [
        r
        for r in rows
        if r["size"] == size and r["layout"] == "compact" and acceptable(r, rows, seam_tolerance)
    ]
    return min(candidates, key=lambda r: (evaluations_factor(r["overlap"]), r["seam_ratio"]))


def _pm(row: dict[str, Any], name: str, digits: int) -> str:
    d, se = row[f"d_{name}"], row[f"se_{name}"]
    if math.isnan(row[name]):
        return "n/a"
    if row["overlap"] == REFERENCE[0] and (row["blend"], row["layout"]) == REFERENCE[1:]:
        return "ref"
    return f"{d:+.{digits}f} ± {se:.{digits}f}" if not math.isnan(se) else f"{d:+.{digits}f}"


def _value(v: float, digits: int) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def markdown(rows: list[dict[str, Any]], header: str, chosen: dict[int, dict[str, Any]]) -> str:
    """The study's table (one per window size) with its conditions."""
    lines = [header, ""]
    for size in sorted({r["size"] for r in rows}, reverse=True):
        lines += [
            f"Window {size} px (scenes: {next(r['scenes'] for r in rows if r['size'] == size)}); differences "
            "from the 50 % Gaussian are means over the scenes ± their standard error:",
            "",
            "| overlap | blend | evaluations / px (large scene) | windows / scene | glacier IoU | Δ | debris IoU | Δ "
            "| PoLiS (m) | Δ | seam ratio | km2/s | speed vs 50 % Gaussian |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["size"] == size):
            name = r["blend"] + (" (reference grid)" if r["layout"] == "reference" else "")
            if r["overlap"] == 0:
                name = "any (plain tiling)"
            mark = " **(default)**" if chosen.get(size) is r else ""
            lines.append(
                f"| {r['overlap']:g} | {name}{mark} | {evaluations_factor(r['overlap']):.2f} | {r['windows']:.0f} "
                f"| {r['glacier_iou']:.4f} | {_pm(r, 'glacier_iou', 4)} | {_value(r['debris_iou'], 4)} "
                f"| {_pm(r, 'debris_iou', 4)} | {r['polis_m']:.2f} | {_pm(r, 'polis_m', 2)} "
                f"| {r['seam_ratio']:.3f} | {r['km2_per_s']:.2f} | {r['speed_vs_reference']:.2f} x |"
            )
        lines.append("")
    return "\n".join(lines)


def per_scene(records: list[dict[str, Any]], size: int) -> list[str]:
    """Glacier IoU and PoLiS of every scene and setting at one window size (what the means hide)."""
    mine = [r for r in records if r["size"] == size and r["layout"] == "compact"]
    scenes = sorted({r["scene"] for r in mine})
    lines = [
        f"Per scene, window {size} px: glacier IoU / PoLiS (m).",
        "",
        "| overlap | blend | " + " | ".join(scenes) + " |",
        "|---|---|" + "---|" * len(scenes),
    ]
    for key in sorted({(r["overlap"], r["blend"]) for r in mine}, key=lambda k: (k[0], BLENDS.index(k[1]))):
        cells = {r["scene"]: r for r in mine if (r["overlap"], r["blend"]) == key}
        name = "any (plain tiling)" if key[0] == 0 else key[1]
        lines.append(
            f"| {key[0]:g} | {name} | "
            + " | ".join(f"{cells[s]['glacier_iou']:.4f} / {cells[s]['polis_m']:.1f}" for s in scenes)
            + " |"
        )
    return [*lines, ""]


def write_section(section: str, path: Path, title: str) -> None:
    """Replace (or append) the section ``title`` of a Markdown file."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    start = text.find(title + "\n")  # the whole heading line: one title may begin another
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section.rstrip() + "\n" + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    path.write_text(text)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=list(DEFAULT_SCENES), help="held-out scenes, preset:seed")
    p.add_argument("--size", type=int, default=1024, help="scene side (px, 10 m)")
    p.add_argument("--window-sizes", type=int, nargs="+", default=[384, 128])
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/glaciermap_overlap_study"))
    p.add_argument("--seam-tolerance", type=float, default=0.1, help="allowed seam-ratio increase")
    p.add_argument("--records", type=Path, nargs="+", default=None, help="summarise earlier runs (JSON)")
    p.add_argument("--json", type=Path, default=Path("benchmarks/overlap_study.json"))
    p.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    p.add_argument(
        "--checkpoint", type=Path, default=None, help="trained model (.ckpt or weights; default: bundled)"
    )
    p.add_argument("--title", default="## Overlap and blending", help="section heading in RESULTS.md")
    return p.parse_args()


def _runs_text(saved: list[dict[str, Any]]) -> str:
    """Command, start time, machine and load before and after of each run."""
    parts = []
    for run_ in saved:
        after = run_["after"].split("load average ")[1].split(";")[0]
        parts.append(
            f"`{run_['command']}` started {run_['started']} on {run_['machine']} (load after: {after})"
        )
    return "; ".join(parts)


def main() -> None:
    """Run the study (or re-summarise earlier records), print and optionally write the tables."""
    args = parse_args()
    print(machine())
    if args.records:
        saved = [json.loads(path.read_text()) for path in args.records]
    else:
        started, about = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine()
        records, model = run(args)
        command = "python benchmarks/overlap_study.py " + " ".join(sys.argv[1:])
        saved = [
            {
                "command": command,
                "machine": about,
                "after": machine(),
                "started": started,
                "model": model,
                "records": records,
            }
        ]
        args.json.write_text(json.dumps(saved[0], indent=1))
    records = [r for run_ in saved for r in run_["records"]]
    rows = summarise(records)
    chosen = {size: choose(rows, size, args.seam_tolerance) for size in {r["size"] for r in rows}}
    scenes = sorted({r["scene"] for r in records})
    model = saved[0].get("model", "bundled `synthetic_cpu`")
    header = (
        f"{args.title}\n\n"
        f"Runs: {_runs_text(saved)}. Model: {model}; torch backend, CPU, float32, channels-last, "
        f"batch 8; held-out synthetic scenes {', '.join(scenes)} (10 m). Seconds and km2/s: "
        "reading, prediction and blending (no writing); the 2 cores were shared with other jobs (load averages "
        "above), so speeds are rough: the evaluations per pixel are exact. Summarised with "
        "`python benchmarks/overlap_study.py --records "
        + " ".join(str(p) for p in (args.records or [args.json]))
        + "`."
    )
    text = markdown(rows, header, chosen)
    for size in sorted(chosen, reverse=True):
        text += "\n" + "\n".join(per_scene(records, size))
    text += (
        "\nRule (`acceptable` and `choose` in the script): the cheapest compact setting whose glacier IoU, debris "
        "IoU and PoLiS are not worse than the 50 % Gaussian's by more than the larger of twice the standard "
        "error of the scene-by-scene difference and the difference the reference grid alone makes, and whose "
        f"seam ratio is at most the 50 % Gaussian's + {args.seam_tolerance:g}.\n"
    )
    for size, row in sorted(chosen.items(), reverse=True):
        text += f"\nChosen at {size} px: overlap {row['overlap']:g}, {row['blend']}.\n"
    print(text)
    if args.write_results:
        write_section(text, ROOT / "benchmarks" / "RESULTS.md", args.title)


if __name__ == "__main__":
    main()
