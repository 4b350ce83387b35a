"""LightningDataModules: scene folders (:class:`SceneDataModule`) and the synthetic world (:class:`SyntheticDataModule`)."""

from glaciermap.datamodules.scenes import SceneDataModule
from glaciermap.datamodules.synthetic import SyntheticDataModule

__all__ = ["SceneDataModule", "SyntheticDataModule"]
