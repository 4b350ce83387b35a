"""``glaciermap export-onnx WEIGHTS OUT.onnx``: export pretrained weights to ONNX, normalisation included.

``WEIGHTS`` is a registered weights name (``glaciermap models list``), a ``.safetensors`` file, a
``save_pretrained`` folder or a ``.ckpt``. The graph takes raw physical values stacked in the model's band
order and returns class probabilities; batch (and H, W where the model allows) are dynamic. With
``--verify`` (default) the file is run with onnxruntime on random inputs and compared with PyTorch
(max |dp| <= 1e-4). See ``docs/onnx.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from glaciermap.errors import InputError

HELP = "Export pretrained weights to ONNX (normalisation included; for onnxruntime or QGIS Deepness)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument(
        "weights", help="registered weights name, .safetensors, save_pretrained folder or .ckpt"
    )
    parser.add_argument("output", type=Path, help="output .onnx file")
    parser.add_argument(
        "--size", type=int, default=None, help="tracing side (default: the model's fixed size or 64)"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")


def main(args: argparse.Namespace) -> int:
    """Export (and verify); returns the exit status."""
    from glaciermap.models.onnx import export_onnx, verify_onnx
    from glaciermap.models.pretrained import PretrainedModel
    from glaciermap.models.weights import WEIGHTS

    source = str(args.weights)
    if source in WEIGHTS:
        if WEIGHTS[source].kind != "segmentation":
            raise InputError(f"{source}: a split-image classifier; ONNX export covers segmentation weights")
        model = WEIGHTS[source].load()
    elif Path(source).suffix == ".ckpt":
        from glaciermap.models.pretrained import load_pretrained

        model = load_pretrained(source)
    elif Path(source).exists():
        model = PretrainedModel.from_pretrained(source)
    else:
        raise InputError(
            f"{source}: neither a registered weights name ({', '.join(WEIGHTS)}) nor an existing weights file"
        )
    out = export_onnx(model, args.output, size=args.size)
    print(f"wrote {out}")
    if not args.no_verify:
        diff = verify_onnx(model, out)
        print(f"onnxruntime vs PyTorch on random inputs: max |dp| = {diff:.2e}")
    return 0
