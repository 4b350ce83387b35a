"""The ``glaciermap`` command line.

Each sub-command lives in its own module under :mod:`glaciermap.commands`, imported only when it runs so
that ``glaciermap --help`` stays fast. A command module defines::

    HELP: str                                            # one line for ``glaciermap --help``
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def main(args: argparse.Namespace) -> int

Errors caused by the user's input (:class:`~glaciermap.errors.GlaciermapError`) are printed as one line
naming the input and what was expected, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from glaciermap import __version__
from glaciermap.errors import GlaciermapError

COMMANDS: dict[str, str] = {
    "demo": "glaciermap.commands.demo",
    "synth": "glaciermap.commands.synth",
    "evaluate": "glaciermap.commands.evaluate",
    "fit-band-ratio": "glaciermap.commands.fit_band_ratio",
    "convert-keras": "glaciermap.commands.convert_keras",
    "models": "glaciermap.commands.models",
    "inventory": "glaciermap.commands.inventory",
    "compare-inventory": "glaciermap.commands.compare_inventory",
    "map": "glaciermap.commands.map",
    "export-onnx": "glaciermap.commands.export_onnx",
}
"""Sub-command name -> module implementing it."""


LIGHTNING_COMMANDS: dict[str, str] = {
    "fit": "train a model (LightningCLI: --config FILE, --print_config, ...)",
    "validate": "validate a checkpoint on validation scenes (LightningCLI)",
    "test": "test a checkpoint on test scenes (LightningCLI)",
    "predict": "map many scenes with a checkpoint across devices and nodes (LightningCLI)",
}
"""Sub-commands handed, with all their arguments, to LightningCLI (:mod:`glaciermap.commands.lightning`)."""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="glaciermap",
        description="Glacier mapping from satellite imagery: synthetic scenes, models, mapping, inventories.",
    )
    parser.add_argument("--version", action="version", version=f"glaciermap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in LIGHTNING_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from glaciermap.commands.lightning import run

        try:
            return run(argv)
        except GlaciermapError as err:
            print(f"glaciermap {argv[0]}: error: {err}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args._module.main(args))
    except GlaciermapError as err:
        print(f"glaciermap {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
