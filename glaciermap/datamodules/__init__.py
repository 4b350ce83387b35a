"""LightningDataModules and their samplers, one per dataset family.

* :class:`SceneDataModule`: scene folders (random training windows, grid evaluation, sharded by rank).
* :class:`KarakoramDataModule`: Karakoram ZY-3 folders (the U-Net+CBAM recipe on real inputs).
* :class:`TileBenchmarkDataModule`: the GlaViTU tile benchmark (HDF5), with the authors' epoch definition.
* :class:`SyntheticDataModule`: the synthetic world, scenes named ``PRESET:SEED`` generated on first use.
* :class:`SceneMappingDataModule`: whole scenes for ``glaciermap predict`` (:class:`MappingSceneSampler`).
* :class:`SplitImageDataModule`: labelled crevasse split-images, seeded stratified splits.
* :mod:`~glaciermap.datamodules.samplers`: window samplers (:class:`RandomWindows`, :class:`GridWindows`,
  :class:`ShardedWindowSampler`).
"""

from glaciermap.datamodules.karakoram import KARAKORAM_MODALITIES, KarakoramDataModule, KarakoramFolders
from glaciermap.datamodules.mapping import MappingSceneSampler, SceneList, SceneMappingDataModule
from glaciermap.datamodules.samplers import (
    GridWindows,
    RandomWindows,
    ShardedWindowSampler,
    WindowedScene,
    WindowSource,
    check_patch_fits,
    epoch_generator,
)
from glaciermap.datamodules.scenes import SceneDataModule, Split, worker_init
from glaciermap.datamodules.split_images import SplitImageDataModule, stratified_split
from glaciermap.datamodules.synthetic import SyntheticDataModule, parse_spec
from glaciermap.datamodules.tile_benchmark import TileBenchmarkDataModule, TileEpochSampler

__all__ = [
    "KARAKORAM_MODALITIES",
    "GridWindows",
    "KarakoramDataModule",
    "KarakoramFolders",
    "MappingSceneSampler",
    "RandomWindows",
    "SceneDataModule",
    "SceneList",
    "SceneMappingDataModule",
    "ShardedWindowSampler",
    "Split",
    "SplitImageDataModule",
    "SyntheticDataModule",
    "TileBenchmarkDataModule",
    "TileEpochSampler",
    "WindowSource",
    "WindowedScene",
    "check_patch_fits",
    "epoch_generator",
    "parse_spec",
    "stratified_split",
    "worker_init",
]
