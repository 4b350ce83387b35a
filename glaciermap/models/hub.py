"""The one released weights layout: safetensors with the glaciermap metadata block, written and read here.

A released weight file is a safetensors file whose tensors are the network's state dict and whose header
metadata holds ``{"glaciermap": <JSON of the metadata block>, "format": "glaciermap-weights/1"}``. The block
(see :meth:`glaciermap.tasks.SegmentationTask.metadata` and :meth:`PretrainedModel.to_metadata
<glaciermap.models.pretrained.PretrainedModel.to_metadata>`) holds ``model``, ``model_hparams``,
``modalities``, ``bands``, ``norm_stats`` (with its ``method``), ``target``, ``class_names``,
``region_codes``, ``location_encoding``, ``calibrator`` (a ``{"kind": ...}`` dict or null) and
``provenance`` (``source``: ``"training"``, ``"keras"``, ...; ``paper``, ``licence``, ``epoch``,
``global_step``, ...). Training export (:func:`export_weights`), ``glaciermap convert-keras`` and
``PretrainedModel.save_pretrained`` all write it through :func:`write_weights`; one loader reads it
(:func:`glaciermap.models.pretrained.load_pretrained`). Safetensors never unpickles anything, so such a
file is safe to load from anywhere; it is also about a third of a Lightning checkpoint (no optimiser state).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
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
    provenance = dict(meta.get("provenance") or {})
    provenance.update(
        {
            "source": provenance.get("source", "training"),
            "checkpoint": src.name,
            "epoch": ckpt.get("epoch"),
            "global_step": ckpt.get("global_step"),
            "glaciermap_version": meta.get("version"),
        }
    )
    meta["provenance"] = provenance
    meta.setdefault("calibrator", None)
    return write_weights(state, meta, out)


REQUIRED_KEYS = ("model", "model_hparams", "bands", "class_names")
"""Metadata keys every segmentation weight file must carry."""

CLASSIFIER_KEYS = ("model", "model_kwargs", "class_names")
"""Metadata keys every split-image classifier weight file (``"task": "split_image_classification"``) carries."""


def write_weights(
    state: Mapping[str, Tensor], metadata: Mapping[str, Any], out: str | os.PathLike[str]
) -> Path:
    """Write a state dict and its metadata block in the released layout (atomically).

    Args:
        state: The network's state dict.
        metadata: The metadata block (plain JSON values).
        out: The ``.safetensors`` file to write.

    Returns:
        The written path.

    Raises:
        InputError: If the output cannot be written.
    """
    from safetensors.torch import save_file

    header = {"glaciermap": json.dumps(dict(metadata), sort_keys=True), "format": WEIGHTS_FORMAT}
    try:
        with atomic_output(out) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp), metadata=header)
    except OSError as err:
        raise InputError(f"{out}: cannot write the weights ({err.strerror or err})") from None
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
    try:
        meta = json.loads(header["glaciermap"])
    except json.JSONDecodeError as err:
        raise InputError(f"weights {p}: the glaciermap metadata is not valid JSON ({err})") from None
    classifier = isinstance(meta, dict) and meta.get("task") == "split_image_classification"
    required = CLASSIFIER_KEYS if classifier else REQUIRED_KEYS
    missing = [k for k in required if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise InputError(
            f"weights {p}: the glaciermap metadata lacks {', '.join(missing)}; expected a file written by "
            "glaciermap (export_weights, convert-keras or save_pretrained)"
        )
    return state, meta


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


def model_card(metadata: Mapping[str, Any], sha256: str | None = None) -> str:
    """A Hugging Face model card (YAML front matter + Markdown) generated from a metadata block.

    Args:
        metadata: The weights' metadata block.
        sha256: sha256 of the weight file, recorded in the front matter.

    Returns:
        The card text.
    """
    provenance = dict(metadata.get("provenance") or {})
    bands = {str(m): [str(b) for b in v] for m, v in dict(metadata.get("bands") or {}).items()}
    classes = [str(c) for c in metadata.get("class_names") or ()]
    licence = str(provenance.get("licence") or "other")
    name = str(provenance.get("name") or metadata.get("model") or "glaciermap model")
    front = [
        "---",
        "library_name: glaciermap",
        f"license: {licence}",
        "pipeline_tag: image-segmentation",
        "tags:",
        "- glaciermap",
        "- glacier-mapping",
        "- remote-sensing",
        "- semantic-segmentation",
        f"- {metadata.get('model')}",
        "datasets:",
        *[f"- {json.dumps(str(d))}" for d in provenance.get("datasets") or ["unspecified"]],
        "metrics:",
        "- iou",
        "glaciermap:",
        f"  name: {json.dumps(name)}",
        f"  model: {json.dumps(metadata.get('model'))}",
        f"  bands: {json.dumps(bands)}",
        f"  classes: {json.dumps(classes)}",
        f"  normalisation: {json.dumps((metadata.get('norm_stats') or {}).get('method'))}",
        f"  sha256: {json.dumps(sha256)}",
        "---",
    ]
    body = [
        f"# {name}",
        "",
        f"glaciermap `{metadata.get('model')}` weights ({provenance.get('source', 'unknown source')}).",
        "",
        "```python",
        "from glaciermap.models import PretrainedModel",
        'model = PretrainedModel.from_pretrained("<this folder or repo id>")',
        'logits = model({"optical": optical, "dem": dem})["out"]  # raw physical values in',
        "```",
        "",
        "* Inputs: " + "; ".join(f"`{m}`: {', '.join(b)}" for m, b in bands.items()),
        "* Classes: " + ", ".join(classes),
        f"* Region codes: {', '.join(metadata.get('region_codes') or []) or 'none'}",
        f"* Calibrator: {(metadata.get('calibrator') or {}).get('name', 'none')}",
        f"* Provenance: {json.dumps(provenance, sort_keys=True)}",
        "",
        "Limitations: glacier maps are least reliable under shadow, on debris-covered ice, at calving fronts with "
        "melange and for small glaciers; check the training data above before use.",
        "",
    ]
    return "\n".join(front + body)
