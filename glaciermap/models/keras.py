"""Convert the GlaViTU authors' Keras HDF5 weight files into a PyTorch state dict (h5py only, no TensorFlow).

The authors publish Keras-2 *weights-only* HDF5 files of their training model (GlaViTU paper,
"Code availability").
Keras loads them by **order**: the top-level layers that have weights (``[location_encoding_block]``,
``fusion_block``, ``SETR``, ``ResUNet``, ``[deepsupervision]``, ``output``), and inside each layer its arrays
in tracking order, trainable arrays first and BatchNormalization moving statistics last. The sub-layer names
(``conv2d_13``, ...) depend on build order and differ between files, so this converter never looks at them:
it walks the same order over the PyTorch modules and checks every array's shape.

Layout conversions (Keras is channels-last, PyTorch channels-first):

============================  =====================  ===========================================
Keras array                   Keras shape            PyTorch
============================  =====================  ===========================================
Conv2D kernel                 (kh, kw, in, out)      permute -> (out, in, kh, kw)
Dense kernel used as 1x1 conv (in, out)              transpose -> (out, in, 1, 1)
Dense kernel                  (in, out)              transpose -> (out, in)
patch-embedding Dense kernel  (16*16*in, E)          reshape (16, 16, in, E), permute -> (E, in, 16, 16)
MHA query/key/value kernel    (E, heads, d)          reshape (E, E), transpose
MHA query/key/value bias      (heads, d)             reshape (E,)
MHA attention_output kernel   (heads, d, E)          reshape (E, E), transpose
BN gamma/beta/mean/variance   (C,)                   weight / bias / running_mean / running_var
============================  =====================  ===========================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from glaciermap.errors import InputError
from glaciermap.io import atomic_output
from glaciermap.models.glavitu import GLOBAL_REGION_CODES, GlaViTU, LocationEncoding
from glaciermap.models.setr import TransformerBlock
from glaciermap.transforms.normalisation import NormStats
from glaciermap.transforms.reference import REFERENCE_MINMAX, reference_band_names, reference_stats

Kind = Literal["conv", "dense_conv", "patch", "linear", "mha_in", "mha_in_bias", "mha_out", "vector", "table"]
"""How one Keras array maps onto one PyTorch tensor (see the module docstring)."""

METADATA_ARCH = "glaciermap.arch"
METADATA_HPARAMS = "glaciermap.hparams"
METADATA_SOURCE = "glaciermap.source"
METADATA_NORM = "glaciermap.norm_stats"
"""Safetensors metadata key of the normalisation the weights expect (``NormStats.to_dict()`` as JSON)."""


@dataclass(frozen=True)
class Slot:
    """One PyTorch tensor filled from one Keras array.

    Attributes:
        key: State-dict key of the tensor.
        kind: Layout conversion to apply.
        heads: Attention heads (only for the ``mha_*`` kinds).
    """

    key: str
    kind: Kind
    heads: int = 0


@dataclass(frozen=True)
class GroupLayout:
    """The arrays of one top-level Keras layer, in file order.

    Attributes:
        name: Name of the layer in the authors' model (used in messages; files are matched by order).
        slots: Trainable arrays in tracking order followed by the BN moving statistics.
    """

    name: str
    slots: tuple[Slot, ...]


class _LayoutBuilder:
    """Collects trainable slots in Keras tracking order; BN statistics follow in the order of their gammas."""

    def __init__(self) -> None:
        self.trainable: list[Slot] = []
        self.bns: list[str] = []

    def conv(self, prefix: str, bias: bool = True) -> None:
        self.trainable.append(Slot(f"{prefix}.weight", "conv"))
        if bias:
            self.trainable.append(Slot(f"{prefix}.bias", "vector"))

    def dense_conv(self, prefix: str, bias: bool = True) -> None:
        self.trainable.append(Slot(f"{prefix}.weight", "dense_conv"))
        if bias:
            self.trainable.append(Slot(f"{prefix}.bias", "vector"))

    def linear(self, prefix: str) -> None:
        self.trainable += [Slot(f"{prefix}.weight", "linear"), Slot(f"{prefix}.bias", "vector")]

    def norm(self, prefix: str, batch_norm: bool = True) -> None:
        self.trainable += [Slot(f"{prefix}.weight", "vector"), Slot(f"{prefix}.bias", "vector")]
        if batch_norm:
            self.bns.append(prefix)

    def conv_bn_act_x2(self, prefix: str) -> None:
        for i in (1, 2):
            self.conv(f"{prefix}.conv{i}")
            self.norm(f"{prefix}.bn{i}")

    def residual_block(self, prefix: str) -> None:
        self.conv_bn_act_x2(f"{prefix}.conv")
        self.dense_conv(f"{prefix}.proj", bias=False)

    def up_conv(self, prefix: str) -> None:
        self.conv(f"{prefix}.conv", bias=False)
        self.norm(f"{prefix}.bn")

    def transformer_block(self, prefix: str, heads: int) -> None:
        self.norm(f"{prefix}.norm1", batch_norm=False)
        for proj in ("query", "key", "value"):
            self.trainable += [
                Slot(f"{prefix}.attn.{proj}.weight", "mha_in", heads),
                Slot(f"{prefix}.attn.{proj}.bias", "mha_in_bias", heads),
            ]
        self.trainable += [
            Slot(f"{prefix}.attn.out.weight", "mha_out", heads),
            Slot(f"{prefix}.attn.out.bias", "vector"),
        ]
        self.norm(f"{prefix}.norm2", batch_norm=False)
        self.linear(f"{prefix}.fc1")
        self.linear(f"{prefix}.fc2")

    def build(self, name: str) -> GroupLayout:
        stats = [
            Slot(f"{bn}.{stat}", "vector") for bn in self.bns for stat in ("running_mean", "running_var")
        ]
        return GroupLayout(name, (*self.trainable, *stats))


def keras_layout(model: GlaViTU) -> list[GroupLayout]:
    """The Keras HDF5 layout of a GlaViTU's weights, top-level layer by layer (the order Keras loads them in).

    Args:
        model: The model whose state dict is to be filled.

    Returns:
        One :class:`GroupLayout` per top-level Keras layer with weights, in file order.
    """
    groups: list[GroupLayout] = []
    if model.location_encoder is not None:
        b = _LayoutBuilder()
        for i in (1, 2):
            b.linear(f"location_encoder.fc{i}")
            b.norm(f"location_encoder.bn{i}")
        groups.append(b.build("location_encoding_block"))

    # Fusion block: every branch's convolutions, then the first SE dense of every branch, then the second.
    b = _LayoutBuilder()
    names = list(model.fusion.branches)
    for name in names:
        b.conv_bn_act_x2(f"fusion.branches.{name}.conv")
    for fc in ("fc1", "fc2"):
        for name in names:
            b.linear(f"fusion.branches.{name}.se.{fc}")
    groups.append(b.build("fusion_block"))

    b = _LayoutBuilder()
    b.trainable += [
        Slot("setr.patch_embed.proj.weight", "patch"),
        Slot("setr.patch_embed.proj.bias", "vector"),
    ]
    b.trainable.append(Slot("setr.pos_embed.weight", "table"))
    for i, block in enumerate(model.setr.blocks):
        assert isinstance(block, TransformerBlock)
        b.transformer_block(f"setr.blocks.{i}", block.attn.num_heads)
    for i in range(len(model.setr.decoder.convs)):
        b.conv(f"setr.decoder.convs.{i}")
        b.norm(f"setr.decoder.bns.{i}")
    b.conv("setr.decoder.out")
    groups.append(b.build("SETR"))

    b = _LayoutBuilder()
    unet = model.unet
    for i in range(len(unet.encoders)):
        b.residual_block(f"unet.encoders.{i}")
    b.residual_block("unet.bottleneck")
    for i in range(len(unet.upconvs)):
        b.up_conv(f"unet.upconvs.{i}")
        b.residual_block(f"unet.decoders.{i}")
    b.dense_conv("unet.out")
    groups.append(b.build("ResUNet"))

    if model.aux_head is not None:
        b = _LayoutBuilder()
        b.dense_conv("aux_head")
        groups.append(b.build("deepsupervision"))
    b = _LayoutBuilder()
    b.dense_conv("head")
    groups.append(b.build("output"))
    _check_layout_covers(model, groups)
    return groups


def _check_layout_covers(model: GlaViTU, groups: Sequence[GroupLayout]) -> None:
    """Assert that the layout names every parameter and BN statistic exactly once (a programming check)."""
    keys = [slot.key for g in groups for slot in g.slots]
    expected = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert sorted(keys) == sorted(expected), set(keys).symmetric_difference(expected)


def keras_shape(shape: Sequence[int], slot: Slot) -> tuple[int, ...]:
    """The Keras shape of the array that fills a PyTorch tensor of ``shape``.

    Args:
        shape: PyTorch tensor shape.
        slot: The slot (gives the conversion kind).

    Returns:
        The expected Keras array shape.
    """
    s = tuple(shape)
    if slot.kind == "conv":
        return (s[2], s[3], s[1], s[0])
    if slot.kind == "dense_conv":
        return (s[1], s[0])
    if slot.kind == "patch":
        return (s[2] * s[3] * s[1], s[0])
    if slot.kind == "linear":
        return (s[1], s[0])
    if slot.kind == "mha_in":
        return (s[1], slot.heads, s[0] // slot.heads)
    if slot.kind == "mha_in_bias":
        return (slot.heads, s[0] // slot.heads)
    if slot.kind == "mha_out":
        return (slot.heads, s[1] // slot.heads, s[0])
    return s


def keras_to_torch(array: np.ndarray, shape: Sequence[int], slot: Slot) -> Tensor:
    """Convert one Keras array (already checked to have :func:`keras_shape`) to the PyTorch layout.

    Args:
        array: The Keras array.
        shape: Target PyTorch shape.
        slot: The slot (gives the conversion kind).

    Returns:
        A contiguous float32 tensor of ``shape``.
    """
    a = torch.from_numpy(np.asarray(array, dtype=np.float32))
    if slot.kind == "conv":
        t = a.permute(3, 2, 0, 1)
    elif slot.kind == "dense_conv":
        t = a.t()[:, :, None, None]
    elif slot.kind == "patch":
        out_c, in_c, kh, kw = shape
        t = a.reshape(kh, kw, in_c, out_c).permute(3, 2, 0, 1)
    elif slot.kind == "linear":
        t = a.t()
    elif slot.kind in ("mha_in", "mha_out"):
        t = a.reshape(-1, a.shape[-1]).t() if slot.kind == "mha_out" else a.reshape(a.shape[0], -1).t()
    else:
        t = a.reshape(tuple(shape))
    assert tuple(t.shape) == tuple(shape), (slot, t.shape, shape)
    return t.contiguous().clone()


def _decode(name: Any) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def read_keras_h5(path: str | os.PathLike[str]) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Read the weight arrays of a Keras-2 HDF5 weights file, in Keras' loading order.

    Accepts weights-only files (``save_weights``) and full-model files (their ``model_weights`` group).

    Args:
        path: The ``.h5`` file.

    Returns:
        ``[(layer name, [(array name, array), ...]), ...]`` for every top-level layer that has weights.

    Raises:
        InputError: If the file is missing, not HDF5, or not a Keras-2 weights layout.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found (expected a Keras HDF5 weights file)")
    try:
        with h5py.File(p, "r") as f:
            root: Any = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in root.attrs:
                raise InputError(
                    f"{p}: not a Keras-2 HDF5 weights file (no 'layer_names' attribute; Keras-3 '.weights.h5' "
                    "files are not supported, re-save with tf_keras / Keras 2)"
                )
            groups = []
            for layer in (_decode(n) for n in root.attrs["layer_names"]):
                if layer not in root:
                    raise InputError(f"{p}: layer {layer!r} is listed in 'layer_names' but has no group")
                g = root[layer]
                names = [_decode(n) for n in g.attrs.get("weight_names", [])]
                arrays = []
                for name in names:
                    if name not in g:
                        raise InputError(
                            f"{p}: layer {layer!r} lists weight {name!r} but the array is missing"
                        )
                    arrays.append((name, np.asarray(g[name][()])))
                if arrays:
                    groups.append((layer, arrays))
    except OSError as err:
        raise InputError(f"{p}: not a readable HDF5 file (corrupt or truncated?): {err}") from None
    if not groups:
        raise InputError(f"{p}: the Keras file holds no weights")
    return groups


def convert_keras_weights(
    h5_path: str | os.PathLike[str],
    modalities: Mapping[str, int] | None = None,
    *,
    num_classes: int = 2,
    location_encoding: LocationEncoding = "none",
    region_codes: Sequence[str] = GLOBAL_REGION_CODES,
    deep_supervision: bool = True,
) -> dict[str, Tensor]:
    """Convert an authors' Keras GlaViTU weights file into a state dict for the matching :class:`GlaViTU`.

    The result loads with ``GlaViTU(modalities, num_classes, location_encoding=..., region_codes=...,
    deep_supervision=...).load_state_dict(state, strict=True)``.

    Args:
        h5_path: Keras-2 HDF5 weights file (training model with the ``deepsupervision`` head, or an inference
            model without it).
        modalities: Ordered ``{modality: channels}``, in the order of the authors' ``-f/--features`` list the
            file was trained with (default ``{"optical": 6, "dem": 2}``).
        num_classes: Number of classes K (2 in the authors' files).
        location_encoding: ``"region"`` or ``"coordinates"`` for the authors' location-encoding models.
        region_codes: Region codes of the region one-hot (the 11 global codes by default).
        deep_supervision: Keep the deep-supervision head (the file must contain it); ``False`` drops it.

    Returns:
        The state dict (float32 tensors, BN ``num_batches_tracked`` = 0).

    Raises:
        InputError: If the file is unreadable, its layers do not match the requested layout, or any array has
            an unexpected shape (the message names the layer and array).
        ConfigError: If the model arguments are invalid.
    """
    with torch.device("meta"):
        model = GlaViTU(
            modalities,
            num_classes,
            location_encoding=location_encoding,
            region_codes=region_codes,
            deep_supervision=True,
        )
    target_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    layout = keras_layout(model)
    groups = read_keras_h5(h5_path)
    p = Path(h5_path)
    file_names = [name for name, _ in groups]
    if "location_encoding_block" in file_names and location_encoding == "none":
        raise InputError(
            f"{p}: the file has a 'location_encoding_block'; convert it with location_encoding='region' "
            "or 'coordinates'"
        )
    if len(groups) == len(layout) - 1 and "deepsupervision" not in file_names:
        if deep_supervision:
            raise InputError(
                f"{p}: the file has no deep-supervision head (an inference model); convert with "
                "deep_supervision=False"
            )
        layout = [g for g in layout if g.name != "deepsupervision"]
    if len(groups) != len(layout):
        raise InputError(
            f"{p}: expected {len(layout)} layers with weights ({', '.join(g.name for g in layout)}) for "
            f"GlaViTU(modalities={model.modalities}, location_encoding={location_encoding!r}), "
            f"the file has {len(groups)} ({', '.join(file_names)})"
        )
    _check_fusion_branches(p, groups[[g.name for g in layout].index("fusion_block")], model)

    state: dict[str, Tensor] = {}
    for spec, (layer, arrays) in zip(layout, groups):
        if len(arrays) != len(spec.slots):
            raise InputError(
                f"{p}: layer {layer!r} holds {len(arrays)} arrays, expected {len(spec.slots)} for the "
                f"{spec.name} of GlaViTU(modalities={model.modalities}, location_encoding={location_encoding!r})"
            )
        for i, (slot, (name, array)) in enumerate(zip(spec.slots, arrays)):
            expected = keras_shape(target_shapes[slot.key], slot)
            if tuple(array.shape) != expected:
                raise InputError(
                    f"{p}: layer {layer!r} array {i} {name!r} has shape {tuple(array.shape)}, expected "
                    f"{expected} (for {slot.key}); check modalities, num_classes and location_encoding"
                )
            state[slot.key] = keras_to_torch(array, target_shapes[slot.key], slot)
    for key in target_shapes:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
    if not deep_supervision:
        state = {k: v for k, v in state.items() if not k.startswith("aux_head.")}
    return state


def _check_fusion_branches(
    path: Path, group: tuple[str, list[tuple[str, np.ndarray]]], model: GlaViTU
) -> None:
    """Give a clear message when the file's fusion branches do not match ``modalities``."""
    layer, arrays = group
    first_kernels = [a.shape[2] for _, a in arrays if a.ndim == 4 and a.shape[3] == 64][0::2]
    expected = list(model.modalities.values())
    if first_kernels != expected:
        raise InputError(
            f"{path}: layer {layer!r} has {len(first_kernels)} fusion branches taking {first_kernels} channels, "
            f"but modalities={model.modalities} asks for {expected}; pass the modalities (in order) the file "
            "was trained with"
        )


def save_state_dict(
    state: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    hparams: Mapping[str, Any],
    arch: str = "glavitu",
    source: str = "",
    norm: NormStats | None = None,
) -> Path:
    """Write a state dict as safetensors with the model's hyper-parameters in the metadata (atomically).

    Args:
        state: The state dict.
        path: Output ``.safetensors`` file.
        hparams: Constructor arguments of the model (``model.hparams``), stored as JSON.
        arch: Registry name of the architecture.
        source: Where the weights came from (e.g. the ``.h5`` file name).
        norm: The normalisation the weights expect, stored under :data:`METADATA_NORM`.

    Returns:
        The written path.
    """
    from safetensors.torch import save_file

    metadata = {
        METADATA_ARCH: arch,
        METADATA_HPARAMS: json.dumps(dict(hparams), sort_keys=True),
        METADATA_SOURCE: source,
    }
    if norm is not None:
        metadata[METADATA_NORM] = json.dumps(norm.to_dict(), sort_keys=True)
    out = Path(path)
    with atomic_output(out) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
    return out


def load_safetensors_model(path: str | os.PathLike[str]) -> nn.Module:
    """Build the model recorded in a safetensors file written by :func:`save_state_dict` and load its weights.

    Args:
        path: The ``.safetensors`` file.

    Returns:
        The model in ``eval()`` mode.

    Raises:
        InputError: If the file is missing, unreadable or lacks the glaciermap metadata.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from glaciermap.models.api import get_model

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found (expected a .safetensors file written by glaciermap)")
    try:
        with safe_open(str(p), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(p))
    except (SafetensorError, OSError) as err:
        raise InputError(f"{p}: not a readable safetensors file: {err}") from None
    if METADATA_ARCH not in metadata or METADATA_HPARAMS not in metadata:
        raise InputError(
            f"{p}: no glaciermap metadata ({METADATA_ARCH}, {METADATA_HPARAMS}); cannot rebuild the model"
        )
    model = get_model(metadata[METADATA_ARCH], **json.loads(metadata[METADATA_HPARAMS]))
    model.load_state_dict(state, strict=True)
    return model.eval()


def convert_keras_file(
    h5_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    modalities: Mapping[str, int] | None = None,
    *,
    num_classes: int = 2,
    location_encoding: LocationEncoding = "none",
    region_codes: Sequence[str] = GLOBAL_REGION_CODES,
    deep_supervision: bool = True,
) -> Path:
    """Convert a Keras ``.h5`` into a ``.safetensors`` file that :func:`load_safetensors_model` rebuilds.

    Args:
        h5_path: Keras-2 HDF5 weights file.
        out_path: Output ``.safetensors`` file (written atomically; nothing is written on error).
        modalities: See :func:`convert_keras_weights`.
        num_classes: See :func:`convert_keras_weights`.
        location_encoding: See :func:`convert_keras_weights`.
        region_codes: See :func:`convert_keras_weights`.
        deep_supervision: See :func:`convert_keras_weights`.

    Returns:
        The written path.

    Raises:
        InputError: See :func:`convert_keras_weights`.
    """
    state = convert_keras_weights(
        h5_path,
        modalities,
        num_classes=num_classes,
        location_encoding=location_encoding,
        region_codes=region_codes,
        deep_supervision=deep_supervision,
    )
    with torch.device("meta"):
        model = GlaViTU(
            modalities,
            num_classes,
            location_encoding=location_encoding,
            region_codes=region_codes,
            deep_supervision=deep_supervision,
        )
    layout = dict(modalities) if modalities is not None else {"optical": 6, "dem": 2}
    norm = None
    if all(m in REFERENCE_MINMAX and len(reference_band_names(m)) == c for m, c in layout.items()):
        norm = reference_stats(list(layout))  # the authors' inputs: GlaViTU reference notes 4.4
    return save_state_dict(
        state, out_path, hparams=model.hparams, arch=model.arch, source=Path(h5_path).name, norm=norm
    )


def load_norm_stats(path: str | os.PathLike[str]) -> NormStats | None:
    """The normalisation recorded in a safetensors file by :func:`save_state_dict`, if any.

    Files converted from the authors' Keras weights carry the GlaViTU reference min-max constants
    (:mod:`glaciermap.transforms.reference`; backscatter modalities expect log10 inputs first).

    Args:
        path: The ``.safetensors`` file.

    Returns:
        The statistics, or ``None`` when the file records none.

    Raises:
        InputError: If the file is unreadable or the recorded statistics are malformed.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise InputError(f"{path}: not a readable safetensors file: {err}") from None
    if METADATA_NORM not in metadata:
        return None
    return NormStats.from_dict(json.loads(metadata[METADATA_NORM]))
