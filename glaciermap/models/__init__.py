"""glaciermap.models: GlaViTU, the papers' baselines and the model registry (plain ``torch.nn`` modules).

See :mod:`glaciermap.models.api` for the interface every model shares and ``docs/models.md`` for a guide.
Released weights are safetensors files with their metadata (:mod:`~glaciermap.models.hub`); the authors'
Keras weights convert with :mod:`~glaciermap.models.keras`.
"""

from glaciermap.models.api import (
    ClassifierEntry,
    ModelEntry,
    get_classifier,
    get_model,
    get_weight,
    list_classifiers,
    list_models,
    list_weights,
)
from glaciermap.models.base import ModelInputs, SegmentationModel
from glaciermap.models.cpu_bf16 import guard_cpu_bf16
from glaciermap.models.deeplab import DeepLabV3Plus
from glaciermap.models.folding import fold_for_inference
from glaciermap.models.glavitu import (
    GLOBAL_REGION_CODES,
    GlaViTU,
    LocationEncoder,
    LocationEncoding,
    coordinate_vector,
    count_trainable,
    region_vector,
)
from glaciermap.models.hub import bundled_weights, export_weights, read_weights
from glaciermap.models.keras import convert_keras_file, convert_keras_weights
from glaciermap.models.pretrained import PretrainedModel, load_pretrained, load_pretrained_classifier
from glaciermap.models.resunet import FusionResUNet, ResUNet
from glaciermap.models.setr import SETR, FusionSETR
from glaciermap.models.unet_cbam import UNetCBAM
from glaciermap.models.vario import ResNet18, VarioMLP, VarioNet, adaptive_weights, confidence
from glaciermap.models.winograd import use_winograd

__all__ = [
    "GLOBAL_REGION_CODES",
    "SETR",
    "ClassifierEntry",
    "DeepLabV3Plus",
    "FusionResUNet",
    "FusionSETR",
    "GlaViTU",
    "LocationEncoder",
    "LocationEncoding",
    "ModelEntry",
    "ModelInputs",
    "PretrainedModel",
    "ResNet18",
    "ResUNet",
    "SegmentationModel",
    "UNetCBAM",
    "VarioMLP",
    "VarioNet",
    "adaptive_weights",
    "bundled_weights",
    "confidence",
    "convert_keras_file",
    "convert_keras_weights",
    "coordinate_vector",
    "count_trainable",
    "export_weights",
    "fold_for_inference",
    "get_classifier",
    "get_model",
    "get_weight",
    "guard_cpu_bf16",
    "list_classifiers",
    "list_models",
    "list_weights",
    "load_pretrained",
    "load_pretrained_classifier",
    "read_weights",
    "region_vector",
    "use_winograd",
]
