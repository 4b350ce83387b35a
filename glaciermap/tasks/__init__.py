"""LightningModules: :class:`SegmentationTask` (glacier segmentation) and its losses and schedules."""

from glaciermap.tasks.segmentation import SegmentationTask

__all__ = ["SegmentationTask"]
