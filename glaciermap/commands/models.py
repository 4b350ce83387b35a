"""``glaciermap models [list|info NAME]``: the model registry and the registered pretrained weights.

``list`` (the default) prints every architecture (name, inputs, outputs, citation) and every set of weights
(name, kind: segmentation or split-image classifier, architecture, modalities, classes, trained on); ``info NAME`` prints one architecture or one set of
weights in full (bands, normalisation, classes, regions, metrics, licence, sha256, hub revision, card).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from glaciermap.errors import ConfigError

HELP = "List the model architectures and pretrained weights, or show one ('models info NAME')."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument(
        "action", nargs="?", choices=["list", "info"], default="list", help="list (default) or info"
    )
    parser.add_argument("name", nargs="?", help="architecture or weights name (for info)")
    parser.add_argument("--json", action="store_true", help="print as JSON")


def _entry_dict(e: Any) -> dict[str, Any]:
    return {
        "name": e.name,
        "summary": e.summary,
        "inputs": e.inputs,
        "outputs": e.outputs,
        "citation": e.citation,
        "defaults": e.defaults,
    }


def main(args: argparse.Namespace) -> int:
    """Print the registry; returns the exit status."""
    from glaciermap.models.api import list_models
    from glaciermap.models.weights import WEIGHTS, list_weights

    entries = list_models()
    if args.action == "info":
        names = {e.name: e for e in entries}
        if not args.name:
            raise ConfigError("models info: expected a NAME (an architecture or a weights name)")
        if args.name in WEIGHTS:
            record = WEIGHTS[args.name].to_dict()
            if args.json:
                print(json.dumps(record, indent=2))
            else:
                for key, value in record.items():
                    print(f"{key + ':':14} {value if isinstance(value, str) else json.dumps(value)}")
            return 0
        if args.name in names:
            entry = _entry_dict(names[args.name])
            entry["weights"] = [w.name for w in list_weights(args.name)]
            if args.json:
                print(json.dumps(entry, indent=2))
            else:
                for key, value in entry.items():
                    print(f"{key + ':':10} {value if isinstance(value, str) else json.dumps(value)}")
            return 0
        raise ConfigError(
            f"models info: {args.name!r} is neither an architecture ({', '.join(names)}) nor weights "
            f"({', '.join(WEIGHTS)})"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "models": [_entry_dict(e) for e in entries],
                    "weights": [w.to_dict() for w in list_weights()],
                },
                indent=2,
            )
        )
        return 0
    print("Architectures")
    for e in entries:
        print(e.name)
        print(f"  {e.summary}")
        print(f"  inputs:   {e.inputs}")
        print(f"  outputs:  {e.outputs}")
        print(f"  citation: {e.citation}")
    print()
    print("Pretrained weights")
    for w in list_weights():
        where = "bundled" if w.repo_id is None else f"{w.repo_id}@{w.revision}"
        print(f"{w.name}  ({w.kind}: {w.model}, {where})")
        print(f"  modalities: {', '.join(w.modalities)}; classes: {', '.join(w.classes)}")
        print(f"  trained on: {w.trained_on}")
    return 0
