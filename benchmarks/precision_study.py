"""bf16 against float32 on a CPU: what ``precision="auto"`` chooses here, and what bf16 costs in accuracy (issue 20).

With ``--compare convolution`` it sets Winograd convolutions against direct ones instead, both in float32
(:mod:`glaciermap.models.winograd`), and reports what ``convolution="auto"`` chooses here.

Maps held-out synthetic scenes (those of ``overlap_study.py``: other seeds than training, and the alps preset
never seen) with the bundled ``synthetic_cpu`` model, or ``--checkpoint``, at the mapping defaults (1/8 overlap,
cosine blending, the model's window, batch 1, channels-last), once in float32 and once under bf16 autocast,
alternating, and reports per scene and in the mean: glacier and debris IoU against the exact labels, PoLiS of
the glacier outline, the largest probability difference and the share of pixels whose label changes between
the two maps, seconds of each, and the convolutions run in float32 because this CPU computes their shape wrongly
in bf16 (:mod:`glaciermap.models.cpu_bf16`). It also prints the CPU probe's verdict in either memory layout
(:func:`glaciermap.inference.predictor.cpu_bf16_is_faster`) and what ``auto`` picks.

On a CPU without native bf16 the bf16 maps are emulated and several times slower; the accuracy columns still
hold. Speed of full-size GlaViTU in bf16: ``python benchmarks/map_benchmark.py --backends --anchor-configs
torch-b1-cl torch-b1-cl-bf16``.

Usage::

    python benchmarks/precision_study.py                       # 4 scenes of 1024 px, a few minutes
    python benchmarks/precision_study.py --write-results       # also update benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overlap_study import (
    DEFAULT_SCENES,
    ROOT,
    Setting,
    glacier_outline,
    load_model,
    machine,
    make_scenes,
    map_probabilities,
    score,
    write_section,
)

PRECISIONS = ("32", "bf16")
TITLE = "## Precision on a CPU: bf16 against float32"
ARMS = {"precision": PRECISIONS, "convolution": ("direct", "winograd")}
"""``--compare``: the two settings each scene is mapped with (the first is the reference)."""
TITLES = {"precision": TITLE, "convolution": "## Convolutions on a CPU: Winograd against direct"}


def probe_line() -> str:
    """The CPU flags' and the probe's verdicts, and what ``precision="auto"`` picks on this CPU."""
    import torch

    from glaciermap.inference.predictor import (
        CPU_BF16_ENV,
        auto_bf16,
        cpu_bf16_is_faster,
        cpu_has_native_bf16,
    )

    native = cpu_has_native_bf16()
    layouts = {cl: cpu_bf16_is_faster(cl) for cl in (True, False)}
    auto = auto_bf16(torch.device("cpu"))
    return (
        f"native bf16 in the CPU flags: {'yes' if native else 'no'}; probe (bf16 at least 2x faster): "
        f"channels-last {'yes' if layouts[True] else 'no'}, contiguous {'yes' if layouts[False] else 'no'}; "
        f'`precision="auto"` maps in {"bf16" if auto else "float32"} here '
        f"(${CPU_BF16_ENV}={os.environ.get(CPU_BF16_ENV, 'auto')})"
    )


def convolution_line(model: Any) -> str:
    """ATen's CPU capability and what ``convolution="auto"`` picks for ``model`` on this CPU."""
    import torch

    from glaciermap.inference.predictor import resolve_convolution
    from glaciermap.models.winograd import WINOGRAD_ENV, wide_enough, winograd_available

    auto = resolve_convolution("auto", torch.device("cpu"), "32", "torch", model)
    return (
        f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}; NNPACK "
        f"{'works' if winograd_available() else 'unavailable'}; the model's 3x3 layers are "
        f'{"" if wide_enough(model) else "not "}mostly wide; `convolution="auto"` maps this model with '
        f"{'Winograd' if auto == 'winograd' else 'direct'} convolutions here "
        f"(${WINOGRAD_ENV}={os.environ.get(WINOGRAD_ENV, 'auto')})"
    )


def compare(mapping: Any, scene: Path, window: int, kind: str = "precision") -> dict[str, Any]:
    """Map ``scene`` with both settings of ``kind`` (:data:`ARMS`) at the defaults, float32 unless bf16 is one of
    them; scores of both and how far apart they are."""
    import rasterio

    with rasterio.open(scene / "labels.tif") as src:
        labels, transform = src.read(1), src.transform
    outline = glacier_outline((labels > 0) & (labels != 255), transform)
    setting = Setting(window, 0.125, "cosine")
    first, second = ARMS[kind]
    mapped = {
        arm: map_probabilities(
            mapping,
            scene,
            setting,
            batch_size=1,
            **({"precision": arm} if kind == "precision" else {"precision": "32", "convolution": arm}),
        )
        for arm in (first, second)
    }
    valid = ~mapped[first]["invalid"]
    a, b = mapped[first]["probs"], mapped[second]["probs"]
    record: dict[str, Any] = {
        "scene": scene.name,
        "max_probability_difference": float(np.abs(a - b)[:, valid].max()),
        "changed_labels": float((a.argmax(0) != b.argmax(0))[valid].mean()),
        "float32_layers": mapped[second]["extra"].get("float32_layers", []),
        "convolutions": [mapped[arm]["convolution"] for arm in (first, second)],
    }
    for p in (first, second):
        scores = score(mapped[p], labels, transform, outline)
        record.update({f"{k}_{p}": scores[k] for k in ("glacier_iou", "debris_iou", "polis_m", "seconds")})
    return record


def markdown(
    records: list[dict[str, Any]], about: str, env: str, probe: str, command: str, kind: str = "precision"
) -> str:
    """The section of ``benchmarks/RESULTS.md``: one row per scene and their mean."""
    first, second = ARMS[kind]
    names = f"{first} / {second}"
    # Winograd moves only the rounding: its differences need more digits than bf16's
    dp, changed = (".3f", ".3f") if kind == "precision" else (".1e", ".4f")
    lines = [
        TITLES[kind],
        "",
        f"Run: `{command}`. Machine: {env}.",
        "",
        f"Model: {about}. {probe}.",
        "",
        f"| scene | glacier IoU {names} | debris IoU {names} | PoLiS (m) {names} | max \\|dp\\| | labels changed "
        f"| seconds {names} | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    mean = {k: float(np.mean([r[k] for r in records])) for k, v in records[0].items() if isinstance(v, float)}
    for r in [*records, {"scene": "mean", **mean}]:

        def pair(col: str, digits: int, r: dict[str, Any] = r) -> str:
            return f"{r[f'{col}_{first}']:.{digits}f} / {r[f'{col}_{second}']:.{digits}f}"

        lines.append(
            f"| {r['scene']} | {pair('glacier_iou', 4)} | {pair('debris_iou', 4)} | {pair('polis_m', 1)} | "
            f"{r['max_probability_difference']:{dp}} | {100 * r['changed_labels']:{changed}} % | {pair('seconds', 1)} | "
            f"{r[f'seconds_{first}'] / r[f'seconds_{second}']:.2f}x |"
        )
    if kind != "precision":
        return "\n".join([*lines, ""])
    wrapped = sorted({name for r in records for name in r["float32_layers"]})
    lines += [
        "",
        "Convolutions run in float32 under bf16 because this CPU computes their shape wrongly in bf16: "
        + (", ".join(f"`{n}`" for n in wrapped) if wrapped else "none"),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", nargs="+", default=list(DEFAULT_SCENES), help="held-out scenes, preset:seed")
    p.add_argument("--size", type=int, default=1024, help="scene side (px, 10 m)")
    p.add_argument("--checkpoint", type=Path, default=None, help="another trained model (default: bundled)")
    p.add_argument("--window-size", type=int, default=384)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/glaciermap_overlap_study"))
    p.add_argument("--json", type=Path, default=None, help="also save the records here")
    p.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    p.add_argument(
        "--compare",
        choices=tuple(ARMS),
        default="precision",
        help="bf16 against float32 (default), or Winograd against direct convolutions in float32",
    )
    args = p.parse_args()
    import torch

    torch.manual_seed(0)
    env = machine()
    mapping, about = load_model(args.checkpoint)
    scenes = make_scenes(args.work_dir, args.scenes, args.size)
    probe = probe_line() if args.compare == "precision" else convolution_line(mapping.model)
    print(probe, flush=True)
    map_probabilities(mapping, scenes[0], Setting(args.window_size, 0.0, "crop"))  # warm-up, untimed
    records = []
    for scene in scenes:
        records.append(compare(mapping, scene, args.window_size, args.compare))
        print(json.dumps(records[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    command = "python benchmarks/precision_study.py " + " ".join(
        a for a in sys.argv[1:] if a != "--write-results"
    )
    section = markdown(records, about, env, probe, command.strip(), args.compare)
    print(section)
    if args.write_results:
        write_section(section, ROOT / "benchmarks" / "RESULTS.md", TITLES[args.compare])


if __name__ == "__main__":
    main()
