"""``glaciermap models``: list the model registry (name, inputs, outputs, citation)."""

from __future__ import annotations

import argparse
import json

HELP = "List the available model architectures with their inputs, outputs and citations."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("--json", action="store_true", help="print the registry as JSON")


def main(args: argparse.Namespace) -> int:
    """Print the registry; returns the exit status."""
    from glaciermap.models.api import list_models

    entries = list_models()
    if args.json:
        rows = [
            {
                "name": e.name,
                "summary": e.summary,
                "inputs": e.inputs,
                "outputs": e.outputs,
                "citation": e.citation,
                "defaults": e.defaults,
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for e in entries:
        print(e.name)
        print(f"  {e.summary}")
        print(f"  inputs:   {e.inputs}")
        print(f"  outputs:  {e.outputs}")
        print(f"  citation: {e.citation}")
    return 0
