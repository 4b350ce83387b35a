"""LightningModules: glacier segmentation (:class:`SegmentationTask`) and scene mapping (:class:`SceneMappingTask`).

* :mod:`~glaciermap.tasks.segmentation`: the training task (loss, optimiser, schedule, augmentation, metrics).
* :mod:`~glaciermap.tasks.losses`: focal, Dice and cross-entropy losses that honour ``ignore_index``.
* :mod:`~glaciermap.tasks.schedules`: the learning-rate schedules, stepped every batch.
* :mod:`~glaciermap.tasks.classification`: split-image crevasse classification (VarioMLP, ResNet-18, VarioNet).
* :mod:`~glaciermap.tasks.mapping`: ``glaciermap predict``: whole scenes mapped under DDP, each written once.
* :mod:`~glaciermap.tasks.cpu_precision`: bf16 on a CPU without wrongly computed convolutions.
"""

from glaciermap.tasks.classification import SplitImageClassificationTask, load_submodel_weights
from glaciermap.tasks.cpu_precision import guard_trainer_bf16
from glaciermap.tasks.losses import (
    CrossEntropyLoss,
    DeepSupervisionLoss,
    DiceLoss,
    FocalLoss,
    LossName,
    build_loss,
)
from glaciermap.tasks.mapping import SceneMappingTask, ScenePredictionWriter, resolve_mapping_model
from glaciermap.tasks.schedules import ScheduleName, build_schedule
from glaciermap.tasks.segmentation import CLASS_NAMES_BY_TARGET, MONITOR, SegmentationTask

__all__ = [
    "CLASS_NAMES_BY_TARGET",
    "MONITOR",
    "CrossEntropyLoss",
    "DeepSupervisionLoss",
    "DiceLoss",
    "FocalLoss",
    "LossName",
    "SceneMappingTask",
    "ScenePredictionWriter",
    "ScheduleName",
    "SegmentationTask",
    "SplitImageClassificationTask",
    "build_loss",
    "build_schedule",
    "guard_trainer_bf16",
    "load_submodel_weights",
    "resolve_mapping_model",
]
