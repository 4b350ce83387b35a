"""Model registry: ``get_model(name, **kwargs)``, ``list_models()``; weights: ``list_weights()``, ``get_weight()``.

``get_model(name, weights="synthetic_cpu")`` (a registry name or a :class:`~glaciermap.models.weights.Weights`)
returns the :class:`~glaciermap.models.pretrained.PretrainedModel` with those weights (raw values in);
``get_classifier("varionet_eq7", weights="crevasse_varionet_synthetic")`` the trained split-image classifier.

Every registered model follows one interface (see :mod:`glaciermap.models.base` and ``docs/models.md``)::

    model = get_model("glavitu", modalities={"optical": 6, "dem": 2}, num_classes=2)
    logits = model(inputs, location=None)        # {"out": (B, K, H, W)[, "aux": (B, K, H, W)]}
    probs = model.predict_proba(inputs)          # same keys, softmax over K
    model.modalities, model.num_classes          # input layout and classes
    get_model(model.arch, **model.hparams)       # rebuilds the same architecture (checkpoints store both)
    model.set_mc_dropout(True)                   # Monte-Carlo dropout, also in eval()

``inputs`` is ``{modality: (B, C_m, H, W)}`` or one stacked image; H and W must be multiples of 16. Logits
are what losses take; ``"aux"`` is the deep-supervision output (GlaViTU only, when built with
``deep_supervision=True``). ``location`` is only used by GlaViTU with region or coordinate encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from torch import nn

from glaciermap.errors import ConfigError
from glaciermap.models.base import SegmentationModel

if TYPE_CHECKING:
    from glaciermap.models.pretrained import PretrainedModel
    from glaciermap.models.weights import Weights, WeightsKind


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry.

    Attributes:
        name: Registry name.
        summary: One-line description.
        inputs: Expected inputs (modalities and channels, location).
        outputs: Output keys and shapes.
        citation: Paper (and section) the architecture follows.
        factory: Returns the model class; imported lazily so listing stays fast.
        defaults: Constructor arguments of this preset (overridable by ``get_model`` kwargs).
    """

    name: str
    summary: str
    inputs: str
    outputs: str
    citation: str
    factory: Callable[[], type[SegmentationModel]]
    defaults: dict[str, Any] = field(default_factory=dict)


def _glavitu() -> type[SegmentationModel]:
    from glaciermap.models.glavitu import GlaViTU

    return GlaViTU


def _resunet() -> type[SegmentationModel]:
    from glaciermap.models.resunet import FusionResUNet

    return FusionResUNet


def _light_region() -> type[SegmentationModel]:
    from glaciermap.models.light_region import LightRegionResUNet

    return LightRegionResUNet


def _setr() -> type[SegmentationModel]:
    from glaciermap.models.setr import FusionSETR

    return FusionSETR


def _deeplab() -> type[SegmentationModel]:
    from glaciermap.models.deeplab import DeepLabV3Plus

    return DeepLabV3Plus


def _unet_cbam() -> type[SegmentationModel]:
    from glaciermap.models.unet_cbam import UNetCBAM

    return UNetCBAM


_GLAVITU_PAPER = (
    "Maslov et al., Globally scalable glacier mapping by deep learning, Nat. Commun. 16:43 (2025)"
)
_MODALITY_INPUTS = "dict of modalities (any subset of optical, dem, thermal, sar, sar_cross, insar; default optical 6 + dem 2)"

_REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "glavitu",
            "GlaViTU: fusion block, SETR subnet, residual U-Net, deep supervision, optional location encoding",
            _MODALITY_INPUTS + "; location (region one-hot / indices, or lat/lon degrees) when encoded",
            "out (B,K,H,W) logits; aux (B,K,H,W) deep-supervision logits when deep_supervision=True",
            _GLAVITU_PAPER + "; Methods, GlaViTU; Supplementary Figs. 8-10",
            _glavitu,
        ),
        ModelEntry(
            "fusion_resunet",
            "Fusion block (64) + residual U-Net (4 poolings, bottleneck 1024) + 1x1 classifier",
            _MODALITY_INPUTS,
            "out (B,K,H,W) logits",
            _GLAVITU_PAPER + "; authors' baseline FusionResUNet (their code)",
            _resunet,
        ),
        ModelEntry(
            "light_fusion_resunet",
            "Fusion block (32) + residual U-Net (3 poolings, 32/64/128, bottleneck 256)",
            _MODALITY_INPUTS,
            "out (B,K,H,W) logits",
            _GLAVITU_PAPER + "; authors' baseline LightFusionResUNet (their code)",
            _resunet,
            {"filters": 32, "depth": 3},
        ),
        ModelEntry(
            "light_region_resunet",
            "Fusion block (16) + GlaViTU's region-encoding block + residual U-Net (16/32/64, bottleneck 128)",
            _MODALITY_INPUTS + "; region one-hot / indices / soft vector",
            "out (B,K,H,W) logits",
            _GLAVITU_PAPER + "; region encoding and bias optimisation (Eqs. 1-2) on a CPU-sized network",
            _light_region,
        ),
        ModelEntry(
            "fusion_setr_ln16",
            "Fusion block (32) + SETR-PUP: patch 16, E 64, 24 blocks, 4 heads, MLP 256, PUP 64",
            _MODALITY_INPUTS,
            "out (B,K,H,W) logits (log of the upsampled softmax, as the reference upsamples probabilities)",
            "Zheng et al., SETR, CVPR 2021; " + _GLAVITU_PAPER + "; authors' FusionSETR_LN16 (their code)",
            _setr,
        ),
        ModelEntry(
            "fusion_setr_b16",
            "Fusion block (64) + SETR-PUP: patch 16, E 768, 12 blocks, 12 heads, MLP 3072, PUP 256",
            _MODALITY_INPUTS,
            "out (B,K,H,W) logits (log of the upsampled softmax, as the reference upsamples probabilities)",
            "Zheng et al., SETR, CVPR 2021; " + _GLAVITU_PAPER + "; authors' FusionSETR_B16 (their code)",
            _setr,
            {
                "fusion_filters": 64,
                "embed_dim": 768,
                "depth": 12,
                "num_heads": 12,
                "mlp_dim": 3072,
                "pup_filters": 256,
            },
        ),
        ModelEntry(
            "deeplabv3plus",
            "DeepLabv3+ (segmentation-models-pytorch, ResNeSt-101, OS 16) behind the fusion block",
            _MODALITY_INPUTS + " (fusion=False: concatenated into one image)",
            "out (B,K,H,W) logits",
            "Chen et al., DeepLabv3+, ECCV 2018; " + _GLAVITU_PAPER + "; authors' DeepLabV3Plus, smp variant",
            _deeplab,
        ),
        ModelEntry(
            "unet_cbam",
            "U-Net (64..1024) with CBAM attention after every encoder level and the bottleneck",
            "optical 4 (pan-sharpened ZY-3 B,G,R,NIR) + thermal 1 (LST) + dem 1 (slope), concatenated",
            "out (B,3,H,W) logits: background, clean ice, debris-covered ice",
            "Yang et al., Karakoram 2 m glacier inventory (2026), section 3.3.1; Woo et al., CBAM, ECCV 2018",
            _unet_cbam,
        ),
    )
}


def list_models() -> list[ModelEntry]:
    """All registered models, in registry order.

    Returns:
        The :class:`ModelEntry` of every model (name, summary, inputs, outputs, citation, defaults).
    """
    return list(_REGISTRY.values())


@overload
def get_model(name: str, weights: None = None, **kwargs: Any) -> SegmentationModel: ...


@overload
def get_model(name: str, weights: str | Weights, **kwargs: Any) -> PretrainedModel: ...


def get_model(
    name: str, weights: str | Weights | None = None, **kwargs: Any
) -> SegmentationModel | PretrainedModel:
    """Build a registered model, randomly initialised or with registered weights.

    Args:
        name: Registry name (see :func:`list_models`).
        weights: ``None`` (random initialisation), or a weights name (see :func:`list_weights`) or record
            of this architecture.
        **kwargs: Constructor arguments; they override the preset's defaults (not with ``weights``: the
            weights fix the architecture).

    Returns:
        The model (in training mode, randomly initialised), or with ``weights`` the
        :class:`~glaciermap.models.pretrained.PretrainedModel` (``eval()``; its ``model`` is the network).

    Raises:
        ConfigError: If the name or weights are unknown, the weights are of another architecture, or an
            argument is not accepted by the model.
        InputError: If the weight file cannot be read or fetched, or its sha256 differs.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"model {name!r}: unknown; available models: {', '.join(_REGISTRY)}")
    if weights is not None:
        record = get_weight(weights) if isinstance(weights, str) else weights
        if record.model != name:
            raise ConfigError(f"weights {record.name!r} are for model {record.model!r}, not {name!r}")
        if kwargs:
            raise ConfigError(f"model {name!r}: arguments {sorted(kwargs)} cannot change pretrained weights")
        return record.load()
    entry = _REGISTRY[name]
    cls = entry.factory()
    try:
        return cls(**{**entry.defaults, **kwargs})
    except TypeError as err:
        raise ConfigError(f"model {name!r}: invalid arguments {sorted(kwargs)}: {err}") from None


def list_weights(model: str | None = None, kind: WeightsKind | None = None) -> list[Weights]:
    """Registered pretrained weights (see :mod:`glaciermap.models.weights`).

    Args:
        model: Only the weights of this architecture.
        kind: Only ``"segmentation"`` or only ``"classifier"`` weights.

    Returns:
        The :class:`~glaciermap.models.weights.Weights` records.
    """
    from glaciermap.models.weights import list_weights as _list

    return _list(model, kind)


def get_weight(name: str) -> Weights:
    """The :class:`~glaciermap.models.weights.Weights` record of a registered set of weights.

    Raises:
        ConfigError: If the name is unknown.
    """
    from glaciermap.models.weights import get_weight as _get

    return _get(name)


# --- split-image classifiers (GEOCLASS-image v2.0) -------------------------------------------------------

_GEOCLASS_PAPER = "GEOCLASS-image v2.0 crevasse classification (2025)"


@dataclass(frozen=True)
class ClassifierEntry:
    """One split-image classifier of the registry.

    Attributes:
        name: Registry name.
        summary: One-line description.
        citation: Paper (and section) the architecture follows.
        factory: Returns the model class (imported lazily).
        defaults: Constructor arguments of this preset.
    """

    name: str
    summary: str
    citation: str
    factory: Callable[[], type[nn.Module]]
    defaults: dict[str, Any] = field(default_factory=dict)


def _vario_mlp() -> type[nn.Module]:
    from glaciermap.models.vario import VarioMLP

    return VarioMLP


def _resnet18() -> type[nn.Module]:
    from glaciermap.models.vario import ResNet18

    return ResNet18


def _varionet() -> type[nn.Module]:
    from glaciermap.models.vario import VarioNet

    return VarioNet


_CLASSIFIERS: dict[str, ClassifierEntry] = {
    e.name: e
    for e in (
        ClassifierEntry(
            "vario_mlp",
            "MLP over the vario vector (hidden widths k x input length, LeakyReLU 0.01)",
            _GEOCLASS_PAPER + ", Sec. 2.2",
            _vario_mlp,
        ),
        ClassifierEntry(
            "resnet18",
            "ResNet-18 with a 1-channel stem (raw 0-255 tile or resize-and-normalise)",
            _GEOCLASS_PAPER + ", Sec. 2.3; He et al., CVPR 2016",
            _resnet18,
        ),
        ClassifierEntry(
            "varionet",
            "VarioNet, discrete fusion weights (alpha 0.45 VarioMLP, beta 0.55 ResNet-18)",
            _GEOCLASS_PAPER + ", Sec. 2.3",
            _varionet,
            {"fusion": "discrete"},
        ),
        ClassifierEntry(
            "varionet_eq6",
            "VarioNet, adaptive per-sample weights by Eq. 6 (beta = ResNet-18 confidence)",
            _GEOCLASS_PAPER + ", Sec. 2.3, Eq. 6",
            _varionet,
            {"fusion": "eq6"},
        ),
        ClassifierEntry(
            "varionet_eq7",
            "VarioNet, adaptive per-sample weights by Eq. 7 (symmetric in both confidences)",
            _GEOCLASS_PAPER + ", Sec. 2.3, Eq. 7",
            _varionet,
            {"fusion": "eq7"},
        ),
    )
}


def list_classifiers() -> list[ClassifierEntry]:
    """All registered split-image classifiers, in registry order.

    Returns:
        The :class:`ClassifierEntry` of every classifier.
    """
    return list(_CLASSIFIERS.values())


def get_classifier(name: str, weights: str | Weights | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered split-image classifier (``model(image, vario) -> (B, C) logits``).

    Args:
        name: Registry name (see :func:`list_classifiers`).
        weights: ``None`` (random initialisation), or the name (see :func:`list_weights`) or record of
            registered classifier weights of this architecture, e.g. ``"crevasse_varionet_synthetic"``.
        **kwargs: Constructor arguments; they override the preset's defaults (not with ``weights``).

    Returns:
        The model (training mode, randomly initialised), or with ``weights`` the trained model in ``eval()``.

    Raises:
        ConfigError: If the name or weights are unknown, the weights are of another architecture or kind,
            or an argument is not accepted.
        InputError: If the weight file cannot be read or its sha256 differs.
    """
    if name not in _CLASSIFIERS:
        raise ConfigError(f"classifier {name!r}: unknown; available: {', '.join(_CLASSIFIERS)}")
    if weights is not None:
        record = get_weight(weights) if isinstance(weights, str) else weights
        if record.model != name:
            raise ConfigError(f"weights {record.name!r} are for model {record.model!r}, not {name!r}")
        if kwargs:
            raise ConfigError(
                f"classifier {name!r}: arguments {sorted(kwargs)} cannot change pretrained weights"
            )
        return record.load_classifier()[0]
    entry = _CLASSIFIERS[name]
    try:
        return entry.factory()(**{**entry.defaults, **kwargs})
    except TypeError as err:
        raise ConfigError(f"classifier {name!r}: invalid arguments {sorted(kwargs)}: {err}") from None
