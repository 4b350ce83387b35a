"""``glaciermap convert-keras IN.h5 OUT.safetensors``: convert the GlaViTU authors' Keras weights.

Reads the Keras-2 HDF5 weights file with h5py (no TensorFlow), converts it with
:func:`glaciermap.models.keras.convert_keras_weights` and writes released weights (atomically) in the one
glaciermap layout, with the reference preprocessing (published min-max constants, SAR log10), bands, classes,
region codes and, with ``--calibrator``, one of the authors' calibrators: ``glaciermap map --checkpoint OUT``
and :func:`glaciermap.models.pretrained.load_pretrained` use it with no other argument.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from glaciermap.errors import ConfigError

HELP = "Convert a GlaViTU Keras .h5 weights file (the authors' release) into glaciermap pretrained weights."


def parse_modalities(items: Sequence[str]) -> dict[str, int]:
    """Parse ``["optical:6", "dem:2"]`` into an ordered ``{modality: channels}`` dict.

    Names are glaciermap modality keys or the authors' feature keys (``co_pol_sar`` -> ``sar``,
    ``cross_pol_sar`` -> ``sar_cross``, ``in_sar`` -> ``insar``); ``NAME`` alone takes all canonical bands.

    Args:
        items: ``NAME[:CHANNELS]`` strings, in fusion-branch order.

    Returns:
        The modality layout.

    Raises:
        ConfigError: If an item is not ``NAME:CHANNELS`` with an integer channel count, or a name repeats.
    """
    from glaciermap.constants import BANDS
    from glaciermap.models.keras import KERAS_MODALITIES

    out: dict[str, int] = {}
    for item in items:
        name, sep, channels = item.partition(":")
        name = KERAS_MODALITIES.get(name, name)
        if not sep and name in BANDS:
            channels = str(len(BANDS[name]))
        elif not sep or not channels.strip().isdigit():
            raise ConfigError(f"--modalities: expected NAME:CHANNELS such as optical:6, got {item!r}")
        if name in out:
            raise ConfigError(f"--modalities: modality {name!r} given twice")
        out[name] = int(channels)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("input", help="Keras-2 HDF5 weights file (e.g. glavitu_global_weights.h5)")
    parser.add_argument("output", help="output .safetensors file")
    parser.add_argument(
        "--modalities",
        nargs="+",
        default=["optical:6", "dem:2"],
        metavar="NAME:CHANNELS",
        help="fusion branches in the order the file was trained with (default: optical:6 dem:2); the "
        "authors' keys co_pol_sar, cross_pol_sar, in_sar are accepted (-> sar, sar_cross, insar)",
    )
    parser.add_argument(
        "--calibrator",
        choices=["global", "global_insar", "regionencoding"],
        default=None,
        help="attach one of the authors' confidence calibrators (kernel ridge, Laplacian kernel) by name",
    )
    parser.add_argument("--num-classes", type=int, default=2, help="number of classes (default: 2)")
    parser.add_argument(
        "--location-encoding",
        choices=["none", "region", "coordinates"],
        default="none",
        help="location encoding of the model (glavitu_regionencoding: region)",
    )
    parser.add_argument(
        "--region-codes",
        nargs="+",
        default=None,
        metavar="CODE",
        help="region codes of the region one-hot, in slot order (default: the 11 global codes)",
    )
    parser.add_argument(
        "--no-deep-supervision",
        action="store_true",
        help="drop the deep-supervision head (needed for files saved from the inference model)",
    )


def main(args: argparse.Namespace) -> int:
    """Convert the file; returns the exit status."""
    from glaciermap.models.glavitu import GLOBAL_REGION_CODES
    from glaciermap.models.keras import convert_keras_file

    out = convert_keras_file(
        args.input,
        args.output,
        parse_modalities(args.modalities),
        num_classes=args.num_classes,
        location_encoding=args.location_encoding,
        region_codes=args.region_codes or GLOBAL_REGION_CODES,
        deep_supervision=not args.no_deep_supervision,
        calibrator=args.calibrator,
    )
    print(f"wrote {out}")
    return 0
