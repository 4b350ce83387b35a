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
import errno
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Literal

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
    "split": "glaciermap.commands.split",
    "classify": "glaciermap.commands.classify",
    "synth-crevasses": "glaciermap.commands.synth_crevasses",
    "prepare": "glaciermap.commands.prepare",
    "export-onnx": "glaciermap.commands.export_onnx",
    "label": "glaciermap.commands.label",
    "calibrate": "glaciermap.commands.calibrate",
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


OUTPUTS: dict[str, tuple[str, Literal["dir", "file"]]] = {
    "map": ("out", "dir"),
    "inventory": ("out", "file"),
    "evaluate": ("out", "dir"),
    "synth": ("out", "dir"),
    "demo": ("out", "dir"),
    "fit-band-ratio": ("out", "file"),
    "convert-keras": ("output", "file"),
    "compare-inventory": ("out_dir", "dir"),
    "split": ("out", "dir"),
    "synth-crevasses": ("out", "dir"),
    "prepare": ("out", "dir"),
    "export-onnx": ("output", "file"),
    "label": ("labels", "file"),
    "calibrate": ("out", "file"),
    "classify": ("out", "dir"),
}
"""Sub-command -> (argument, kind) of its output location, checked before the command does any work."""

EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (SIGINT), as shells report it (128 + 2)."""

EXIT_TERMINATED = 143
"""Exit status after SIGTERM (``timeout``, SLURM, ``docker stop``), as shells report it (128 + 15)."""


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM, so every clean-up handler runs."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _check_output(command: str, args: argparse.Namespace) -> None:
    """Reject an unusable output location before the command starts (one clear line, nothing written)."""
    from glaciermap.io import check_output_dir, check_output_file

    spec = OUTPUTS.get(command)
    value = getattr(args, spec[0], None) if spec is not None else None
    if spec is None or value is None:
        return
    flag = spec[0] if spec[0] == "output" else "--" + spec[0].replace("_", "-")
    (check_output_dir if spec[1] == "dir" else check_output_file)(value, flag)


def _output_is_full(argv: list[str]) -> bool:
    """Whether the file system of the command's ``--out``/``--output`` has (almost) no free space left."""
    import shutil

    for flag in ("--out", "--output"):
        if flag in argv[:-1]:
            folder = Path(argv[argv.index(flag) + 1]).absolute()
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            try:
                return shutil.disk_usage(folder).free < 4 * 1024 * 1024
            except OSError:
                return False
    return False


def _describe_os_error(err: OSError, argv: list[str] | None = None) -> str:
    """One line for an operating-system error while reading or writing (disk full, permission, ...)."""
    where = f" {err.filename}" if err.filename else ""
    # rasterio reports a full disk as RasterioIOError, an OSError without errno: check the output's space
    if err.errno == errno.ENOSPC or (err.errno is None and argv is not None and _output_is_full(argv)):
        return f"no space left on the device while writing{where}; free some space or choose another --out"
    reason = err.strerror or type(err).__name__
    return f"cannot read or write{where}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status.

    User mistakes (:class:`~glaciermap.errors.GlaciermapError`) and operating-system errors (disk full,
    permission denied) print one line and exit 2; Ctrl-C exits 130 and SIGTERM 143, after the temporary files
    of the interrupted outputs are removed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "glaciermap"
    # GDAL's own error lines would repeat what the one-line error says (e.g. a full disk, line after line).
    logging.getLogger("rasterio").addHandler(logging.NullHandler())
    logging.getLogger("rasterio").propagate = False
    os.environ.setdefault("CPL_LOG", os.devnull)  # GDAL's C-level messages; set CPL_LOG to see them
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(argv)
    except GlaciermapError as err:
        print(f"glaciermap {command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"glaciermap {command}: error: {_describe_os_error(err, argv)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glaciermap {command}: interrupted; no partial output was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"glaciermap {command}: terminated; no partial output was kept", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str]) -> int:
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from glaciermap.commands.lightning import run

        return run(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _check_output(args.command, args)
    return int(args._module.main(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
