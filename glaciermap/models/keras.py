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

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from glaciermap.errors import InputError
from glaciermap.models.glavitu import GLOBAL_REGION_CODES, GlaViTU, LocationEncoding
from glaciermap.models.setr import TransformerBlock

Kind = Literal["conv", "dense_conv", "patch", "linear", "mha_in", "mha_in_bias", "mha_out", "vector", "table"]
"""How one Keras array maps onto one PyTorch tensor (see the module docstring)."""


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


KERAS_MODALITIES: dict[str, str] = {
    "optical": "optical",
    "dem": "dem",
    "thermal": "thermal",
    "co_pol_sar": "sar",
    "cross_pol_sar": "sar_cross",
    "in_sar": "insar",
}
"""The authors' feature keys (``-f/--features``; reference notes section 1.2) -> glaciermap modality keys."""


def keras_metadata(
    model: GlaViTU,
    *,
    source: str,
    source_sha256: str,
    calibrator: str | None = None,
) -> dict[str, Any]:
    """The released-weights metadata block of a converted GlaViTU (reference preprocessing and classes).

    Args:
        model: The (meta-device) model the weights fill.
        source: Name of the ``.h5`` file.
        source_sha256: Its sha256.
        calibrator: One of the authors' calibrators to attach (``"global"``, ``"global_insar"``,
            ``"regionencoding"``), or ``None``.

    Returns:
        The metadata block: reference normalisation (published min-max constants, SAR log10), canonical
        bands, class names, region codes for region-encoding models, calibrator and provenance.
    """
    from glaciermap import __version__
    from glaciermap.constants import BANDS, CLASS_NAMES
    from glaciermap.models.pretrained import glavitu_calibrator
    from glaciermap.transforms.normalisation import reference_norm_stats

    bands = {m: list(BANDS[m][:c]) for m, c in model.modalities.items()}
    norm = reference_norm_stats(list(bands)).select(bands)
    return {
        "version": __version__,
        "model": model.arch,
        "model_hparams": dict(model.hparams),
        "modalities": list(bands),
        "bands": bands,
        "norm_stats": norm.to_dict(),
        "target": "glacier" if model.num_classes == 2 else "classes",
        "class_names": list(
            CLASS_NAMES.get(model.num_classes, [f"class_{k}" for k in range(model.num_classes)])
        ),
        "region_codes": list(model.region_codes) if model.location_encoding == "region" else [],
        "location_encoding": model.location_encoding,
        "calibrator": glavitu_calibrator(calibrator) if calibrator else None,
        "provenance": {
            "source": "keras",
            "file": source,
            "file_sha256": source_sha256,
            "converter": f"glaciermap {__version__} convert-keras",
            "paper": "Maslov et al., Globally scalable glacier mapping by deep learning, Nat. Commun. 16:43 (2025)",
            "code": "https://github.com/konstantin-a-maslov/scalable_glacier_mapping",
            "licence": "as released by the authors (check their repository)",
            "normalisation": "GlaViTU reference dataset min-max constants (reference notes section 4.4)",
            "calibrator": f"the authors' glavitu_{calibrator} calibrator" if calibrator else None,
        },
    }


def convert_keras_file(
    h5_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    modalities: Mapping[str, int] | None = None,
    *,
    num_classes: int = 2,
    location_encoding: LocationEncoding = "none",
    region_codes: Sequence[str] = GLOBAL_REGION_CODES,
    deep_supervision: bool = True,
    calibrator: str | None = None,
) -> Path:
    """Convert a Keras ``.h5`` into released weights that ``glaciermap map`` and ``load_pretrained`` use as is.

    The file has the one glaciermap layout (:mod:`glaciermap.models.hub`) with the reference preprocessing
    (:func:`keras_metadata`), so ``PretrainedModel`` takes raw physical values.

    Args:
        h5_path: Keras-2 HDF5 weights file.
        out_path: Output ``.safetensors`` file (written atomically; nothing is written on error).
        modalities: See :func:`convert_keras_weights` (glaciermap keys; see :data:`KERAS_MODALITIES`).
        num_classes: See :func:`convert_keras_weights`.
        location_encoding: See :func:`convert_keras_weights`.
        region_codes: See :func:`convert_keras_weights`.
        deep_supervision: See :func:`convert_keras_weights`.
        calibrator: One of the authors' calibrators to attach by name, or ``None``.

    Returns:
        The written path.

    Raises:
        InputError: See :func:`convert_keras_weights`.
        ConfigError: If the calibrator name is unknown or a modality has no published constants.
    """
    from glaciermap.models.hub import write_weights
    from glaciermap.models.pretrained import file_sha256, glavitu_calibrator

    if calibrator is not None:
        glavitu_calibrator(calibrator)  # fail before the (slow) conversion
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
    meta = keras_metadata(
        model, source=Path(h5_path).name, source_sha256=file_sha256(h5_path), calibrator=calibrator
    )
    return write_weights(state, meta, out_path)
