"""Released weights: a training checkpoint exported to safetensors with its metadata, and read back.

A released weight file is a safetensors file whose tensors are the model's state dict and whose header
metadata holds ``{"glaciermap": <JSON of the checkpoint's metadata block>, "format": "glaciermap-weights/1"}``
(model name and arguments, bands, normalisation statistics, classes, region codes; see
:meth:`glaciermap.tasks.SegmentationTask.metadata`). Safetensors never unpickles anything, so such a file
is safe to load from anywhere; it is also about a third of a Lightning checkpoint (no optimiser state).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from glaciermap.errors import InputError
from glaciermap.io import atomic_output

WEIGHTS_FORMAT = "glaciermap-weights/1"
"""Value of the ``format`` metadata key of an exported weight file."""

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "weights"
"""Folder of the weights shipped inside the package."""


def export_weights(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the model weights and metadata of a training checkpoint as a safetensors file.

    Args:
        checkpoint: A ``.ckpt`` written by ``glaciermap fit`` (``SegmentationTask``).
        out: The ``.safetensors`` file to write (atomically).

    Returns:
        The written path.

    Raises:
        InputError: If the checkpoint is unreadable or carries no glaciermap metadata.
    """
    src = Path(checkpoint)
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(
            f"checkpoint {src}: not a readable PyTorch checkpoint ({type(err).__name__})"
        ) from None
    if not isinstance(ckpt, dict) or "glaciermap" not in ckpt or "state_dict" not in ckpt:
        raise InputError(f"checkpoint {src}: expected a checkpoint of glaciermap's SegmentationTask")
    state = {
        k.removeprefix("model."): v.contiguous()
        for k, v in ckpt["state_dict"].items()
        if k.startswith("model.")
    }
    meta = dict(ckpt["glaciermap"])
    meta.update({"epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step")})
    from safetensors.torch import save_file

    with atomic_output(out) as tmp:
        save_file(state, str(tmp), metadata={"glaciermap": json.dumps(meta), "format": WEIGHTS_FORMAT})
    return Path(out)


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read an exported weight file.

    Args:
        path: A ``.safetensors`` file written by :func:`export_weights`.

    Returns:
        The model's state dict and the metadata block.

    Raises:
        InputError: If the file is missing, not safetensors, or lacks glaciermap metadata.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"weights {p} not found; expected a .safetensors file exported by glaciermap")
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(p), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"weights {p}: not a readable safetensors file ({err})") from None
    if header.get("format") != WEIGHTS_FORMAT or "glaciermap" not in header:
        raise InputError(
            f"weights {p}: no glaciermap metadata (format {header.get('format')!r}); expected a file written by "
            "glaciermap.models.hub.export_weights"
        )
    return state, json.loads(header["glaciermap"])


def bundled_weights(name: str) -> Path:
    """Path of a weight file shipped inside the package (``glaciermap/weights/NAME.safetensors``).

    Raises:
        InputError: If no such file is bundled.
    """
    path = BUNDLED_DIR / f"{name}.safetensors"
    if not path.is_file():
        available = sorted(p.stem for p in BUNDLED_DIR.glob("*.safetensors"))
        raise InputError(f"no bundled weights {name!r}; available: {', '.join(available) or 'none'}")
    return path
