"""Export a :class:`~glaciermap.models.pretrained.PretrainedModel` to ONNX, normalisation included.

The exported graph takes one stacked image ``image`` (B, sum C_m, H, W) of **raw physical values** in the
model's band order (the ``glaciermap.bands`` metadata entry lists it), plus ``location`` for
location-encoding models, and returns ``probabilities`` (B, K, H, W), the softmax of the main head. Batch is
dynamic; so are H and W for models without a learned position embedding (any multiple of
``size_multiple``); GlaViTU's position embedding fixes its ``img_size`` (384). The model's metadata
(``glaciermap``: bands, classes, normalisation) and the QGIS Deepness plugin's keys (``model_type``,
``class_names``) are written as ONNX metadata properties. See ``docs/onnx.md``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from glaciermap.errors import ConfigError, InputError
from glaciermap.io import atomic_output
from glaciermap.models.folding import fold_for_inference
from glaciermap.models.pretrained import PretrainedModel

OPSET = 17
"""ONNX opset of the export."""


class _Probabilities(nn.Module):
    """Stacked raw image (and location) -> softmax of the main head."""

    def __init__(self, model: PretrainedModel) -> None:
        super().__init__()
        self.pretrained = model

    def forward(self, image: Tensor, location: Tensor | None = None) -> Tensor:
        return torch.softmax(self.pretrained(image, location)["out"], dim=1)


class _NetworkProbabilities(nn.Module):
    """Normalised image (and location) -> softmax of the main head of a bare network."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: Tensor, location: Tensor | None = None) -> Tensor:
        return torch.softmax(self.network(image, location)["out"], dim=1)


def export_network(
    network: nn.Module,
    out: str | os.PathLike[str],
    *,
    size: int,
    channels: int,
    location: Tensor | None = None,
    opset: int = OPSET,
) -> Path:
    """Write a bare network's window prediction as ONNX: normalised ``image`` -> ``probabilities``.

    The graph the mapping backends run (:mod:`glaciermap.inference.backends`): input ``image``
    ``(B, channels, size, size)`` float32, already normalised (the scene reader normalises), optional input
    ``location`` shaped like the example given (a soft region vector ``(B, L)`` or coordinates ``(B, 2)``),
    output ``probabilities`` ``(B, K, size, size)``, the softmax of the main head. Only the batch is dynamic.
    The network is traced in evaluation mode, so dropout is not part of the graph.

    Args:
        network: The segmentation network (``forward(x, location) -> {"out": logits}``), on the CPU.
        out: The ``.onnx`` file to write (not atomically: a temporary file of the caller).
        size: Window side in pixels.
        channels: Input channels.
        location: Example location input of batch 1 (``None``: the network takes none).
        opset: ONNX opset.

    Returns:
        The written path.
    """
    was_training = network.training
    wrapper = _NetworkProbabilities(network.eval()).eval()
    image = torch.zeros(1, channels, size, size)
    args: tuple[Any, ...] = (image,) if location is None else (image, location[:1].cpu())
    names = ["image"] + ([] if location is None else ["location"])
    axes = {name: {0: "batch"} for name in [*names, "probabilities"]}
    try:
        _trace(wrapper, args, out, names, axes, opset)
    finally:
        network.train(was_training)
    return Path(out)


def _trace(
    module: nn.Module,
    args: tuple[Any, ...],
    path: str | os.PathLike[str],
    names: list[str],
    axes: dict[str, dict[int, str]],
    opset: int,
) -> None:
    """Trace ``module`` on ``args`` into the ONNX file ``path`` (output ``probabilities``, batch dynamic)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the Python-side input checks
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=["probabilities"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )


def fixed_size(model: PretrainedModel) -> int | None:
    """The input side the model is tied to (GlaViTU's position embedding), or ``None`` if H, W are free."""
    size = model.model.hparams.get("img_size")
    return int(size) if size is not None else None


def export_onnx(
    model: PretrainedModel, out: str | os.PathLike[str], *, size: int | None = None, opset: int = OPSET
) -> Path:
    """Write the model as ONNX (atomically), from its inference copy with batch norm folded.

    The graph is that of :func:`~glaciermap.models.folding.fold_for_inference` (no batch-norm nodes, the
    up-convolutions as transposed convolutions): the same probabilities with less work for ONNX Runtime.

    Args:
        model: The pretrained model (normalisation included in the graph).
        out: The ``.onnx`` file.
        size: Example side used for tracing (default: the fixed size, else 64 rounded to ``size_multiple``).
        opset: ONNX opset.

    Returns:
        The written path.

    Raises:
        ConfigError: If the model needs a location input it cannot export (none today) or ``size`` is invalid.
        InputError: If the output cannot be written.
    """
    fixed = fixed_size(model)
    multiple = int(getattr(model.model, "size_multiple", 16))
    side = fixed or size or max(multiple, 64 // multiple * multiple)
    if fixed is not None and size is not None and size != fixed:
        raise ConfigError(
            f"size {size}: this model's position embedding fixes the input to {fixed} x {fixed}"
        )
    channels = sum(len(b) for b in model.bands.values())
    model = fold_for_inference(model).cpu()  # batch norm folded; the caller's model is not touched
    wrapper = _Probabilities(model).eval()
    image = torch.rand(1, channels, side, side)
    args: tuple[Any, ...] = (image,)
    names = ["image"]
    axes: dict[str, dict[int, str]] = {"image": {0: "batch"}, "probabilities": {0: "batch"}}
    if fixed is None:
        axes["image"].update({2: "height", 3: "width"})
        axes["probabilities"].update({2: "height", 3: "width"})
    if model.location_encoding == "region":
        args = (image, torch.zeros(1, dtype=torch.long))
        names.append("location")
        axes["location"] = {0: "batch"}
    elif model.location_encoding == "coordinates":
        args = (image, torch.zeros(1, 2))
        names.append("location")
        axes["location"] = {0: "batch"}
    try:
        with atomic_output(out) as tmp:
            _trace(wrapper, args, tmp, names, axes, opset)
            _add_metadata(tmp, model)
    except OSError as err:
        raise InputError(f"{out}: cannot write the ONNX file ({err.strerror or err})") from None
    return Path(out)


def _add_metadata(path: Path, model: PretrainedModel) -> None:
    import onnx

    proto = onnx.load(str(path))
    meta = {
        "model_type": "Segmentor",
        "class_names": json.dumps(dict(enumerate(model.class_names))),
        "glaciermap": json.dumps(
            {
                "model": model.metadata.get("model") or model.info.get("model"),
                "bands": {m: list(b) for m, b in model.bands.items()},
                "class_names": list(model.class_names),
                "normalisation": model.norm.method if model.norm else None,
                "input": "raw physical values, bands stacked in this order",
                "fixed_size": fixed_size(model),
                "size_multiple": int(getattr(model.model, "size_multiple", 16)),
            }
        ),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def verify_onnx(
    model: PretrainedModel, path: str | os.PathLike[str], *, tolerance: float = 1e-4, seed: int = 0
) -> float:
    """Run the ONNX file with onnxruntime on random raw inputs and compare with PyTorch.

    Inputs: two batch sizes and, where H, W are dynamic, two sizes; values uniform in each band's
    normalisation range (min..max), with one NaN pixel.

    Args:
        model: The model the file was exported from.
        path: The ``.onnx`` file.
        tolerance: Largest accepted probability difference.
        seed: Random seed.

    Returns:
        The largest absolute probability difference.

    Raises:
        InputError: If onnxruntime cannot run the file or the difference exceeds ``tolerance``.
    """
    import numpy as np
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise InputError(
            f"{path}: onnxruntime cannot load the file ({str(err).splitlines()[0][:200]})"
        ) from None
    fixed = fixed_size(model)
    multiple = int(getattr(model.model, "size_multiple", 16))
    shapes = (
        [(1, fixed, fixed), (2, fixed, fixed)]
        if fixed
        else [(1, 4 * multiple, 4 * multiple), (2, 3 * multiple, 5 * multiple)]
    )
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch, h, w in shapes:
        parts = []
        for m, bands in model.bands.items():
            x = torch.rand(batch, len(bands), h, w, generator=gen)
            if model.norm is not None:
                s = model.norm.modalities[m]
                lo = torch.tensor(s.min).view(1, -1, 1, 1)
                hi = torch.tensor(s.max).view(1, -1, 1, 1)
                if model.norm.method == "reference":  # SAR bands are linear sigma0: sample 10**range
                    x = x * (hi - lo) + lo
                    from glaciermap.transforms.normalisation import LOG10_BANDS

                    mask = torch.tensor([b in LOG10_BANDS for b in bands]).view(1, -1, 1, 1)
                    x = torch.where(mask, 10 ** x.clamp(max=1.0), x)
                else:
                    x = x * (hi - lo) + lo
            parts.append(x)
        image = torch.cat(parts, dim=1)
        image[0, 0, 1, 1] = float("nan")
        feeds: dict[str, Any] = {"image": image.numpy()}
        location: Tensor | None = None
        if model.location_encoding == "region":
            location = torch.zeros(batch, dtype=torch.long)
        elif model.location_encoding == "coordinates":
            location = torch.zeros(batch, 2)
        if location is not None:
            feeds["location"] = location.numpy()
        with torch.no_grad():
            expected = torch.softmax(model(image, location)["out"], dim=1).numpy()
        got = session.run(["probabilities"], feeds)[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= tolerance:
        raise InputError(
            f"{path}: onnxruntime and PyTorch probabilities differ by {worst:.3g} (> {tolerance})"
        )
    return worst
