"""glaciermap.models: GlaViTU, the papers' baselines and the model registry (plain ``torch.nn`` modules).

See :mod:`glaciermap.models.api` for the interface every model shares and ``docs/models.md`` for a guide.
"""

from glaciermap.models.api import ModelEntry, get_model, get_weight, list_models, list_weights
from glaciermap.models.base import SegmentationModel
from glaciermap.models.glavitu import GLOBAL_REGION_CODES, GlaViTU, coordinate_vector, region_vector
from glaciermap.models.pretrained import PretrainedModel, load_pretrained

__all__ = [
    "GLOBAL_REGION_CODES",
    "GlaViTU",
    "ModelEntry",
    "PretrainedModel",
    "SegmentationModel",
    "coordinate_vector",
    "get_model",
    "get_weight",
    "list_models",
    "list_weights",
    "load_pretrained",
    "region_vector",
]
