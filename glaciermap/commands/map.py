"""``glaciermap map``: map scene folders of any size into class, confidence and probability COGs.

    glaciermap map --checkpoint model.ckpt --scene SCENE_DIR --out OUT_DIR [--tta] [--mc-passes N] ...
    glaciermap map --model band-ratio --scene SCENE_DIR --out OUT_DIR

With one scene folder the outputs go straight into ``OUT_DIR``; with several ``--scene`` folders, or a folder of
scene folders, each scene's go into ``OUT_DIR/<scene name>``.
The files (``classes.tif``, ``confidence.tif``, optional ``probabilities.tif``, ``calibrated_confidence.tif``,
``mc_std.tif``, ``uncertain.tif``, ``quicklook.png``, ``summary.json``) are described in ``docs/mapping.md``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glaciermap.errors import InputError
from glaciermap.inference.options import add_arguments as add_map_options

BAND_RATIO = "band-ratio"
"""``--model`` value of the band-ratio rule (:data:`glaciermap.baselines.BAND_RATIO`)."""

HELP = "map scene folders of any size: class map, confidence (GlaViTU Eq. 3), quick-look and summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument(
        "--checkpoint",
        type=Path,
        metavar="CKPT",
        help="a .ckpt written by 'glaciermap fit', or released .safetensors (export, convert-keras, save_pretrained)",
    )
    model.add_argument(
        "--model",
        choices=[BAND_RATIO],
        help="a model that needs no checkpoint: 'band-ratio' (red/swir1 > th1 and blue > th2)",
    )
    parser.add_argument(
        "--band-ratio-thresholds",
        type=Path,
        metavar="JSON",
        help="thresholds written by 'glaciermap fit-band-ratio' (default: the paper's 3.2 and 0.17)",
    )
    parser.add_argument(
        "--scene",
        type=Path,
        nargs="+",
        required=True,
        metavar="SCENE_DIR",
        help="scene folder(s), or folder(s) of scene folders",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    parser.add_argument("--probabilities", action="store_true", help="also write probabilities.tif")
    parser.add_argument("--no-quicklook", action="store_true", help="do not write quicklook.png")
    add_map_options(parser)  # one argument per MapOptions field
    parser.add_argument(
        "--region-vector",
        type=Path,
        default=None,
        metavar="JSON",
        help="soft region vector: a region_vector.json of --bias-optimisation (reused), a JSON list, or an "
        "object with 'region_vector'",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary lines")


def read_region_vector(path: Path) -> list[float]:
    """Read a soft region vector: a JSON list of numbers, or an object with a ``"region_vector"`` list.

    Args:
        path: The JSON file.

    Returns:
        The vector.

    Raises:
        InputError: If the file is missing, not JSON, or holds no list of numbers.
    """
    data = _read_json(path)
    if isinstance(data, dict):
        data = data.get("region_vector")
    if (
        not isinstance(data, list)
        or not data
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in data)
    ):
        raise InputError(
            f"--region-vector {path}: expected a JSON list of numbers or an object with 'region_vector'"
        )
    return [float(v) for v in data]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"--region-vector {path}: file not found (expected a JSON list of numbers)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"--region-vector {path}: not valid JSON ({err})") from None


def region_vector_options(path: Path | None, region_codes: Sequence[str]) -> dict[str, Any]:
    """The :class:`~glaciermap.inference.options.MapOptions` fields of ``--region-vector FILE``.

    A ``region_vector.json`` written by bias optimisation (it has a ``format``) is read with
    :func:`~glaciermap.inference.bias_optimisation.load_region_vector` (its slots must be the model's) and
    recorded in ``summary.json`` as reused; any other file is read by :func:`read_region_vector`.

    Args:
        path: The file, or ``None``.
        region_codes: The model's region codes.

    Returns:
        ``region_vector`` and ``region_vector_record`` (empty without a file).

    Raises:
        InputError: If the file cannot be read or is malformed.
        ConfigError: If a bias-optimisation vector's slots are not the model's.
    """
    from glaciermap.inference.bias_optimisation import load_region_vector

    if path is None:
        return {}
    data = _read_json(path)
    if isinstance(data, dict) and "format" in data:
        vector = load_region_vector(path, region_codes)
        record = {**vector.summary(), "file": str(path), "reused": True}
        return {"region_vector": list(vector.probabilities), "region_vector_record": record}
    values = read_region_vector(path)
    return {
        "region_vector": values,
        "region_vector_record": {"file": str(path), "reused": True, "vector": values},
    }


def main(args: argparse.Namespace) -> int:
    """Map the scenes; returns the exit status."""
    from rich.console import Console

    from glaciermap.datasets.scene_folder import find_scenes, holds_scenes
    from glaciermap.errors import ConfigError
    from glaciermap.inference.mapping import map_scene, map_scenes
    from glaciermap.inference.options import from_arguments
    from glaciermap.inference.predictor import FLOAT32_LAYERS_KEY
    from glaciermap.tasks.mapping import resolve_mapping_model

    if args.band_ratio_thresholds is not None and args.model != BAND_RATIO:
        raise ConfigError("--band-ratio-thresholds needs --model band-ratio")
    mapping = resolve_mapping_model(
        args.checkpoint if args.checkpoint is not None else args.model,
        band_ratio_thresholds=args.band_ratio_thresholds,
    )
    options = from_arguments(args, **region_vector_options(args.region_vector, mapping.region_codes))
    if len(args.scene) == 1 and not holds_scenes(args.scene[0]):
        # One scene: its outputs go straight into --out.
        results = [
            map_scene(
                mapping,
                args.scene[0],
                args.out,
                options,
                write_probabilities=args.probabilities,
                quicklook=not args.no_quicklook,
                progress=not args.quiet,
            )
        ]
    else:
        results = map_scenes(
            mapping,
            find_scenes(args.scene),
            args.out,
            rank=0,
            world_size=1,
            progress=not args.quiet,
            write_probabilities=args.probabilities,
            quicklook=not args.no_quicklook,
            options=options,
        )
    if not args.quiet:
        console = Console()
        for result in results:
            s = result.summary
            conf = s["mean_confidence"]
            calibrated = s.get("mean_calibrated_confidence")
            extra = "" if calibrated is None else f" (calibrated {calibrated:.3f})"
            if s.get("uncertain_fraction") is not None:
                extra += f", uncertain {100 * s['uncertain_fraction']:.1f} %"
            console.print(
                f"{s['scene']}: glacier {s['glacier_area_km2']:.3f} km2 of {s['scene_area_km2']:.3f} km2, "
                f"mean confidence {conf if conf is None else round(conf, 3)}{extra}, {s['seconds']:.1f} s "
                f"({s['km2_per_s']} km2/s, {'bf16' if s.get('precision') == 'bf16' else 'float32'}) "
                f"-> {result.out_dir}"
            )
            if s.get(FLOAT32_LAYERS_KEY):
                names = s[FLOAT32_LAYERS_KEY]
                more = f" and {len(names) - 3} more (summary.json)" if len(names) > 3 else ""
                console.print(
                    f"{s['scene']}: {', '.join(names[:3])}{more} ran in float32: this CPU computes their shape "
                    "wrongly in bf16 (docs/mapping.md, 'Precision on a CPU')"
                )
    return 0
